import Foundation

extension Duration {
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}

/// ISO 8601 parsing for log filters and Python-style timestamps.
enum ISO8601 {
    /// Accepts `2026-11-27T05:28:01Z`, fractional seconds, offsets, and naive times (taken as UTC).
    static func parse(_ s: String) -> Date? {
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let d = plain.date(from: s) { return d }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = fractional.date(from: s) { return d }
        if !s.hasSuffix("Z"), !s.contains("+") {
            return plain.date(from: s + "Z") ?? fractional.date(from: s + "Z")
        }
        return nil
    }

    /// `2026-11-27 05:28:01.287582` (UTC).
    static func pythonTimestamp(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss.SSSSSS"
        return f.string(from: date)
    }
}
