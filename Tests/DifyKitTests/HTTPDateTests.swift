import Foundation
import Testing
@testable import DifyKit

/// The fast IMF-fixdate parser must agree with Foundation's formatter it replaced on the hot path (issue 14).
@Suite struct HTTPDateTests {
    private static func foundationParse(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)
    }

    private static func foundationFormat(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: date)
    }

    @Test func imfFixdate_parsesTheCapturedDateHeader() {
        // A Date line of a real Dify 1.14.1 response (dify-captures).
        #expect(IMFFixdate.parse("Fri, 27 Nov 2026 05:28:01 GMT") == Date(timeIntervalSince1970: 1_795_757_281))
        #expect(Lenient.httpDate("Fri, 27 Nov 2026 05:28:01 GMT") == Date(timeIntervalSince1970: 1_795_757_281))
    }

    @Test func imfFixdate_agreesWithFoundation_overRandomDatesFrom1970To2200() {
        var generator = SystemRandomNumberGenerator()
        var dates: [Date] = [Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 951_782_400),  // 2000-02-29
                             Date(timeIntervalSince1970: 4_107_542_399)]  // 2100-02-28 23:59:59
        for _ in 0..<2000 { dates.append(Date(timeIntervalSince1970: TimeInterval(Int64.random(in: 0...7_258_118_400, using: &generator)))) }
        for date in dates {
            let text = Self.foundationFormat(date)
            #expect(IMFFixdate.parse(text) == Self.foundationParse(text), "\(text)")
            #expect(IMFFixdate.parse(text) == date, "\(text)")
        }
    }

    @Test func imfFixdate_refusesWhatIsNotExactlyOne_andLenientStillReadsTheOlderForms() {
        for text in ["Fri, 27 Nov 2026 05:28:01 UTC", "Fri, 27 Nov 2026 5:28:01 GMT", "Fri, 31 Nov 2026 05:28:01 GMT",
                     "Fri, 29 Feb 2026 05:28:01 GMT", "Fri, 27 Now 2026 05:28:01 GMT", "Xyz, 27 Nov 2026 05:28:01 GMT",
                     "Fri, 27 Nov 2026 24:00:00 GMT", "Fri, 27 Nov 2026 05:28:01 GMT ", "", "2026-11-27T05:28:01Z"] {
            #expect(IMFFixdate.parse(text) == nil, "\(text)")
        }
        #expect(IMFFixdate.parse("Mon, 29 Feb 2028 00:00:00 GMT") != nil)
        // RFC 850 and asctime forms go to the formatters.
        #expect(Lenient.httpDate("Sunday, 06-Nov-94 08:49:37 GMT") == Date(timeIntervalSince1970: 784_111_777))
        #expect(Lenient.httpDate("Sun Nov  6 08:49:37 1994") == Date(timeIntervalSince1970: 784_111_777))
    }

    @Test func iso8601Text_isTheSameAsISO8601DateFormatters_wholeSecondsInUTC() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        for seconds in [0.0, 1.999, 1_795_757_281.5, 951_782_400.25, 4_107_542_399.999, 59.0] {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(Lenient.iso8601(date) == formatter.string(from: date), "\(seconds)")
        }
    }
}
