import Foundation

/// Time as the pipeline sees it: wall time for the ledger and outputs, and sleeping for backoff, settle and
/// polling. A seam for injecting time; the pipeline's tests use the system clock with millisecond backoff and settle.
public protocol PipelineClock: Sendable {
    /// The current wall time.
    func now() -> Date
    /// A monotonic instant, for settle tracking.
    func instant() -> ContinuousClock.Instant
    /// Sleeps for `duration` (cancellable).
    func sleep(for duration: Duration) async throws
}

/// The real clock.
public struct SystemPipelineClock: PipelineClock {
    public init() {}
    public func now() -> Date { Date() }
    public func instant() -> ContinuousClock.Instant { ContinuousClock.now }
    public func sleep(for duration: Duration) async throws {
        guard duration > .zero else { return try Task.checkCancellation() }
        try await Task.sleep(for: duration)
    }
}
