import Foundation

/// `2026-11-27T07:00:00Z` by arithmetic (issue 14): the text `Date.ISO8601FormatStyle()` gives (UTC, whole seconds
/// rounded down, `Z`), without building its calendar and time-zone state on every call (the outbox's `finished_at`
/// of every document). Dates before 1900 (the format style counts days of the Julian calendar before 1582) and after
/// 9999 are left to it. `UTCTimestampTests` compares both.
enum UTCTimestamp {
    /// The timestamp, or nil outside years 1900–9999 (the caller then formats it with Foundation).
    static func text(_ date: Date) -> String? {
        let interval = date.timeIntervalSince1970
        // 1900-01-01T00:00:00Z and 10000-01-01T00:00:00Z.
        guard interval.isFinite, interval >= -2_208_988_800, interval < 253_402_300_800 else { return nil }
        let seconds = Int(interval.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        var bytes = [UInt8](repeating: 0, count: 20)
        func put(_ value: Int, at offset: Int, digits: Int) {
            var value = value
            for index in stride(from: offset + digits - 1, through: offset, by: -1) {
                bytes[index] = UInt8(48 + value % 10)
                value /= 10
            }
        }
        put(year, at: 0, digits: 4)
        bytes[4] = UInt8(ascii: "-")
        put(month, at: 5, digits: 2)
        bytes[7] = UInt8(ascii: "-")
        put(day, at: 8, digits: 2)
        bytes[10] = UInt8(ascii: "T")
        put(secondOfDay / 3600, at: 11, digits: 2)
        bytes[13] = UInt8(ascii: ":")
        put(secondOfDay / 60 % 60, at: 14, digits: 2)
        bytes[16] = UInt8(ascii: ":")
        put(secondOfDay % 60, at: 17, digits: 2)
        bytes[19] = UInt8(ascii: "Z")
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Year, month, day of a count of days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's
    /// `civil_from_days`).
    static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
