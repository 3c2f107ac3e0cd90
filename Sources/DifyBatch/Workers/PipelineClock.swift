import Foundation

/// Time as the pipeline sees it: wall time for the ledger and outputs, and sleeping for backoff, settle and
/// polling. Injected so tests run backoff and settle logic without waiting.
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

/// A clock whose sleeps are divided by `factor`: a 5 s backoff takes 5 ms at factor 1000. Wall time advances
/// by the full requested duration, so ledger times stay consistent with the waits the pipeline believes it made.
public final class AcceleratedPipelineClock: PipelineClock, @unchecked Sendable {
    private let lock = NSLock()
    private var offset: TimeInterval = 0
    private let factor: Double

    public init(factor: Double) { self.factor = max(1, factor) }

    public func now() -> Date { lock.withLock { Date().addingTimeInterval(offset) } }
    public func instant() -> ContinuousClock.Instant {
        let skew = lock.withLock { offset }
        return ContinuousClock.now.advanced(by: .milliseconds(Int64(skew * 1000)))
    }

    public func sleep(for duration: Duration) async throws {
        guard duration > .zero else { return try Task.checkCancellation() }
        let real = duration.seconds / factor
        try await Task.sleep(for: .milliseconds(max(1, Int64(real * 1000))))
        lock.withLock { offset += duration.seconds - real }
    }
}
