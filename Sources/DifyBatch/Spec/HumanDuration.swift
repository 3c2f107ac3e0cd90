/// Parses and prints durations written as `500ms`, `2s`, `5m`, `1h` or sums like `1h30m`.
public enum HumanDuration {
    /// The duration for `text`, or nil when it is not one. Units: ms, s, m, h, d. A bare `0` means zero.
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed == "0" { return .zero }
        var total = Duration.zero
        var rest = Substring(trimmed)
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isNumber || $0 == "." }
            guard !digits.isEmpty, let value = Double(digits), value >= 0 else { return nil }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            let millis: Double
            switch unit {
            case "ms": millis = value
            case "s": millis = value * 1_000
            case "m": millis = value * 60_000
            case "h": millis = value * 3_600_000
            case "d": millis = value * 86_400_000
            default: return nil
            }
            total += .milliseconds(Int64(millis.rounded()))
        }
        return total
    }

    /// `1.5s`, `250ms`, `5m`, `2h`.
    public static func format(_ duration: Duration) -> String {
        let millis = duration.milliseconds
        if millis % 3_600_000 == 0 && millis > 0 { return "\(millis / 3_600_000)h" }
        if millis % 60_000 == 0 && millis > 0 { return "\(millis / 60_000)m" }
        if millis % 1_000 == 0 { return "\(millis / 1_000)s" }
        if millis < 1_000 { return "\(millis)ms" }
        return String(format: "%.1fs", Double(millis) / 1_000)
    }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }

    /// Seconds as a floating-point number.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

import Foundation
