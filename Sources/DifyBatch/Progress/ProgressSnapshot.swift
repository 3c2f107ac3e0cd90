import Foundation

/// What a progress display shows at one moment. A plain value: rendering is a pure function of it.
public struct ProgressSnapshot: Sendable, Equatable {
    /// Documents by the state they last settled in during this process (succeeded, failed, dead, rejected, skipped, pending).
    public var counts: [DocumentState: Int] = [:]
    /// Documents in flight now, summed over jobs.
    public var inFlight = 0
    /// Documents waiting (pending or failed with a retry time), summed over jobs.
    public var waiting = 0
    /// Documents that reached a terminal state during this process.
    public var finished = 0
    /// Tokens recorded so far.
    public var tokens = 0
    /// Seconds since the display started.
    public var elapsedSeconds: Double = 0
    /// Files seen and still changing, over every job (issue 16).
    public var unsettled = UnsettledFiles.none

    public init(counts: [DocumentState: Int] = [:], inFlight: Int = 0, waiting: Int = 0, finished: Int = 0, tokens: Int = 0,
                elapsedSeconds: Double = 0, unsettled: UnsettledFiles = .none) {
        self.unsettled = unsettled
        self.counts = counts
        self.inFlight = inFlight
        self.waiting = waiting
        self.finished = finished
        self.tokens = tokens
        self.elapsedSeconds = elapsedSeconds
    }

    /// Finished documents per second, or nil before there is anything to measure.
    public var throughput: Double? {
        guard finished > 0, elapsedSeconds > 0.5 else { return nil }
        return Double(finished) / elapsedSeconds
    }

    /// Seconds until the work known now is done at the current throughput, or nil when unknown.
    public var etaSeconds: Double? {
        let remaining = inFlight + waiting
        if remaining == 0 { return finished > 0 ? 0 : nil }
        guard let throughput, throughput > 0 else { return nil }
        return Double(remaining) / throughput
    }
}
