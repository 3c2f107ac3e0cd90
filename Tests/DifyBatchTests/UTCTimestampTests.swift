import Foundation
import Testing
@testable import DifyBatch

/// Issue 14: timestamps by arithmetic give the text of `Date.ISO8601FormatStyle()` (the outbox's `finished_at`).
@Suite struct UTCTimestampTests {
    @Test func text_isTheISO8601FormatStylesText_forRandomAndEdgeDates() {
        var random = SeededRandom(seed: 3339)
        var dates: [TimeInterval] = [0, -0.5, -1, 0.999_999, 59.999, 86_399.9999, 86_400, 951_782_400 /* 2000-02-29 */,
                                     4_107_542_400 /* 2100-03-01 */, 1_795_763_600, -2_208_988_800 /* 1900-01-01 */,
                                     -2_208_988_799.5, 253_402_300_799.75, -1_000_000_000.25, 946_684_799.999]
        for _ in 0..<5000 {
            let span = Double(random.next() % 255_000_000_000) - 2_208_988_800   // 1900 to about 9950
            dates.append(span + Double(random.next() % 1000) / 1000)
        }
        for interval in dates {
            let date = Date(timeIntervalSince1970: interval)
            let expected = date.formatted(Date.ISO8601FormatStyle())
            #expect(UTCTimestamp.text(date) == expected, "\(interval)")
            #expect(ReportFormatting.timestamp(date) == expected)
        }
    }

    @Test func text_leavesDatesBefore1900AndAfter9999ToTheFormatStyle() {
        for interval in [-2_208_988_800.5, -12_219_292_800 /* 1582-10-15 */, -62_135_596_800, 253_402_300_800, .infinity] {
            let date = Date(timeIntervalSince1970: interval)
            #expect(UTCTimestamp.text(date) == nil)
            if interval.isFinite { #expect(ReportFormatting.timestamp(date) == date.formatted(Date.ISO8601FormatStyle())) }
        }
    }
}
