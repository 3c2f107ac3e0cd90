/// Exponential backoff with full jitter.
///
/// After attempt `n` fails the delay is `random(0 ... min(maxDelay, baseDelay × 2^(n-1)))`. A `Retry-After` from
/// the server is a floor: the delay is `max(retryAfter, jittered)`, and then not capped at `maxDelay` (the server
/// knows best). Delays are computed in whole nanoseconds.
public struct Backoff: Sendable, Equatable {
    public let policy: RetryPolicy

    public init(policy: RetryPolicy) {
        self.policy = policy
    }

    /// The delay before the next attempt.
    /// - Parameters:
    ///   - attempt: 1-based number of the attempt that just failed (values below 1 count as 1).
    ///   - retryAfter: the server's `Retry-After`, if any (negative counts as zero).
    ///   - random: the jitter source; inject a ``SeededRandom`` to replay exactly.
    public func delay(afterAttempt attempt: Int, retryAfter: Duration? = nil,
                      using random: inout some RandomNumberGenerator) -> Duration {
        let ceiling = ceilingNanoseconds(afterAttempt: attempt)
        let jittered = ceiling == 0 ? 0 : UInt64.random(in: 0...ceiling, using: &random)
        guard let retryAfter else { return .nanoseconds(Int64(jittered)) }
        let floor = Self.nanoseconds(retryAfter)
        return .nanoseconds(Int64(max(floor, jittered)))
    }

    /// The delay with the system's random numbers.
    public func delay(afterAttempt attempt: Int, retryAfter: Duration? = nil) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(afterAttempt: attempt, retryAfter: retryAfter, using: &generator)
    }

    /// The jitter's upper bound after `attempt`: `min(maxDelay, baseDelay × 2^(attempt-1))`.
    public func ceiling(afterAttempt attempt: Int) -> Duration {
        .nanoseconds(Int64(ceilingNanoseconds(afterAttempt: attempt)))
    }

    /// Whether another attempt is allowed after `attempt` failed (`attempt < maxAttempts`).
    public func allowsAnotherAttempt(after attempt: Int) -> Bool {
        attempt < policy.maxAttempts
    }

    private func ceilingNanoseconds(afterAttempt attempt: Int) -> UInt64 {
        let base = Self.nanoseconds(policy.baseDelay)
        let cap = Self.nanoseconds(policy.maxDelay)
        let shift = max(attempt, 1) - 1
        // base << shift, saturating: any overflow is beyond every representable cap.
        let grown: UInt64
        if base == 0 {
            grown = 0
        } else if shift >= 64 || base > (UInt64(Int64.max) >> UInt64(shift)) {
            grown = UInt64(Int64.max)
        } else {
            grown = base << UInt64(shift)
        }
        return min(cap, grown)
    }

    /// A duration as whole nanoseconds, clamped to `0 ... Int64.max`.
    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let (wholeNanos, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return UInt64(Int64.max) }
        let (total, overflow2) = wholeNanos.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return UInt64(Int64.max) }
        return UInt64(max(total, 0))
    }
}

/// A seedable random number generator (SplitMix64), for tests and reproducible jitter.
public struct SeededRandom: RandomNumberGenerator, Sendable, Equatable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
