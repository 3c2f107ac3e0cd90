import Foundation

/// Parses the dates users give to `--since`/`--until`.
public enum DateArgument {
    /// Accepts `2026-11-27` (UTC midnight), RFC 3339 (`2026-11-27T06:00:00Z`), or an age such as `24h`, `7d`, `30m`
    /// meaning that long before `now`.
    public static func parse(_ text: String, now: Date = Date()) -> Date? {
        if let age = HumanDuration.parse(text), text != "0" {
            return now.addingTimeInterval(-age.seconds)
        }
        let full = ISO8601DateFormatter()
        full.formatOptions = [.withInternetDateTime]
        if let date = full.date(from: text) { return date }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = fractional.date(from: text) { return date }
        let day = ISO8601DateFormatter()
        day.formatOptions = [.withFullDate]
        day.timeZone = TimeZone(identifier: "UTC")
        return day.date(from: text)
    }
}
