import Foundation

/// RFC 9110's preferred HTTP date, IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), read without a `DateFormatter`
/// (issue 14: every response's `Date` header was parsed by a newly made ICU formatter, twice per document).
/// Only that exact 29-byte form is read here; anything else (the obsolete RFC 850 and asctime forms, other zones,
/// out-of-range fields, years before 1583, which the formatters count in the Julian calendar) gives nil and the
/// caller falls back to ``Lenient/httpDate(_:)``'s formatters. The weekday must be a weekday name but is not
/// checked against the date, as the formatters do not check it either.
enum HTTPDate {
    private static let weekdays: [[UInt8]] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].map { Array($0.utf8) }
    private static let months: [[UInt8]] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].map { Array($0.utf8) }

    /// The date of an IMF-fixdate in GMT; nil when `text` is not exactly one.
    static func imfFixdate(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { parse($0) }
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Date? {
        guard bytes.count == 29, bytes[3] == UInt8(ascii: ","), bytes[4] == 0x20, bytes[7] == 0x20, bytes[11] == 0x20,
              bytes[16] == 0x20, bytes[19] == UInt8(ascii: ":"), bytes[22] == UInt8(ascii: ":"), bytes[25] == 0x20,
              bytes[26] == UInt8(ascii: "G"), bytes[27] == UInt8(ascii: "M"), bytes[28] == UInt8(ascii: "T"),
              weekdays.contains(where: { $0[0] == bytes[0] && $0[1] == bytes[1] && $0[2] == bytes[2] }),
              let monthIndex = months.firstIndex(where: { $0[0] == bytes[8] && $0[1] == bytes[9] && $0[2] == bytes[10] }),
              let day = digits(bytes, 5, 2), let year = digits(bytes, 12, 4), let hour = digits(bytes, 17, 2),
              let minute = digits(bytes, 20, 2), let second = digits(bytes, 23, 2),
              year >= 1583, hour < 24, minute < 60, second < 60,
              day >= 1, day <= CivilTime.daysInMonth(monthIndex + 1, year: year) else { return nil }
        let days = CivilTime.days(year: year, month: monthIndex + 1, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        return Date(timeIntervalSince1970: Double(seconds))
    }

    private static func digits(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> Int? {
        var value = 0
        for index in start..<(start + count) {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }
}
