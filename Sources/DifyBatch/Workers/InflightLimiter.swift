/// Counts documents in flight across every job (`--max-inflight`). Job loops take a slot with ``tryAcquire()``
/// and look again on their next wake-up when none is free.
public actor InflightLimiter {
    private let limit: Int
    private var held = 0

    public init(limit: Int) { self.limit = max(1, limit) }

    /// Takes a slot only if one is free now.
    public func tryAcquire() -> Bool {
        guard held < limit else { return false }
        held += 1
        return true
    }

    public func release() {
        held = max(0, held - 1)
    }

}

/// Spaces requests to at most `perMinute` per minute (a job's `rate_limit`).
public actor RateLimiter {
    private let interval: Duration
    private var next: ContinuousClock.Instant?
    private let clock: any PipelineClock

    public init(perMinute: Int, clock: any PipelineClock) {
        interval = .milliseconds(Int64(60_000 / max(1, perMinute)))
        self.clock = clock
    }

    /// Reserves the next send slot and returns how long to wait for it (zero when it is free now).
    public func reserve() -> Duration {
        let now = clock.instant()
        let slot = max(now, next ?? now)
        next = slot.advanced(by: interval)
        return now.duration(to: slot)
    }
}
