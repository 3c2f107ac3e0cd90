import Foundation

/// The HTTP `Date` header's preferred form, IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`,
/// always 29 ASCII bytes, always GMT. Every response of Dify 1.14.1 carries one (captures: `Date:` lines in
/// `dify-captures/*.http`), and the client reads it on every response head to measure clock skew, so this is
/// parsed by arithmetic instead of a Foundation `DateFormatter` (which builds an ICU formatter on each call:
/// 5.7 % of the daemon's CPU in issue 14's profile). Other forms (RFC 850, asctime) fall back to
/// ``Lenient/httpDate(_:)``'s formatters.
enum IMFFixdate {
    private static let months: [[UInt8]] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .map { Array($0.utf8) }
    private static let days: [[UInt8]] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].map { Array($0.utf8) }

    /// The date, or nil when `text` is not exactly an IMF-fixdate (wrong length, names, digits, ranges or zone).
    static func parse(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { bytes -> Date? in
            guard bytes.count == 29, bytes[3] == UInt8(ascii: ","), bytes[4] == 0x20, bytes[7] == 0x20,
                  bytes[11] == 0x20, bytes[16] == 0x20, bytes[19] == UInt8(ascii: ":"), bytes[22] == UInt8(ascii: ":"),
                  bytes[25] == 0x20, bytes[26] == UInt8(ascii: "G"), bytes[27] == UInt8(ascii: "M"),
                  bytes[28] == UInt8(ascii: "T"),
                  days.contains(where: { $0.elementsEqual(bytes[0..<3]) }),
                  let monthIndex = months.firstIndex(where: { $0.elementsEqual(bytes[8..<11]) }),
                  let day = number(bytes, 5, 2), let year = number(bytes, 12, 4), let hour = number(bytes, 17, 2),
                  let minute = number(bytes, 20, 2), let second = number(bytes, 23, 2),
                  day >= 1, day <= daysIn(month: monthIndex + 1, year: year), hour < 24, minute < 60, second < 61
            else { return nil }
            let days = daysFromCivil(year: year, month: monthIndex + 1, day: day)
            let seconds = ((days * 24 + hour) * 60 + minute) * 60 + second
            return Date(timeIntervalSince1970: TimeInterval(seconds))
        }
    }

    private static func number(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> Int? {
        var value = 0
        for index in start..<(start + count) {
            let digit = Int(bytes[index]) - 48
            guard digit >= 0, digit <= 9 else { return nil }
            value = value * 10 + digit
        }
        return value
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's `days_from_civil`).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
