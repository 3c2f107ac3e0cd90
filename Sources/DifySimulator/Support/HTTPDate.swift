import Foundation

/// IMF-fixdate (`Sun, 29 Nov 2026 19:30:00 GMT`), the `Date` header format (RFC 9110 §5.6.7).
enum HTTPDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func string(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(1900 + parts.tm_year) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}

extension DifySimulator {
    /// The simulator's clock: real time shifted by ``FaultPlan/clockOffset``. Every timestamp Dify would write
    /// (`created_at`, `finished_at`, `Date`) comes from it.
    var now: Date { Date().addingTimeInterval(configuration.faults.clockOffset.seconds) }

    /// ``now`` as whole epoch seconds, like Dify's `CURRENT_TIMESTAMP(0)` columns.
    var nowSeconds: Int { Int(now.timeIntervalSince1970) }
}
