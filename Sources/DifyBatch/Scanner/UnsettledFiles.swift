import Foundation

/// Files a job has seen that have not settled yet (issue 16): how many, and the one changing the longest.
public struct UnsettledFiles: Sendable, Equatable {
    /// Files seen and still changing (given-up files excluded).
    public var count: Int
    /// The inbox-relative path of the file that has been changing the longest.
    public var oldestPath: String?
    /// How long that file has been seen changing.
    public var oldestFor: Duration

    public init(count: Int = 0, oldestPath: String? = nil, oldestFor: Duration = .zero) {
        self.count = count
        self.oldestPath = oldestPath
        self.oldestFor = oldestFor
    }

    public static let none = UnsettledFiles()

    /// `waiting for 2 file(s) to settle (oldest: logs/app.log, changing for 5m)`, or nil when there are none.
    public var summary: String? {
        guard count > 0 else { return nil }
        let oldest = oldestPath.map { "oldest: \($0), changing for \(Self.format(oldestFor))" }
        return "waiting for \(count) file(s) to settle" + (oldest.map { " (\($0))" } ?? "")
    }

    /// Whole units for people: `45s`, `5m`, `2h 10m`.
    static func format(_ duration: Duration) -> String {
        let seconds = max(0, Int(duration.seconds.rounded(.down)))
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m" }
        let minutes = (seconds % 3600) / 60
        return "\(seconds / 3600)h" + (minutes > 0 ? " \(minutes)m" : "")
    }

    /// Several jobs' unsettled files as one: counts summed, the oldest file kept.
    public static func merged(_ parts: some Sequence<UnsettledFiles>) -> UnsettledFiles {
        var total = UnsettledFiles()
        for part in parts where part.count > 0 {
            total.count += part.count
            if total.oldestPath == nil || part.oldestFor > total.oldestFor {
                total.oldestPath = part.oldestPath
                total.oldestFor = part.oldestFor
            }
        }
        return total
    }
}
