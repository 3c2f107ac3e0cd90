import Foundation
import Synchronization

/// One backpressure state per job, shared by its workers (issue 10 rule 4), so N workers hitting a 429 wait once
/// instead of hammering the limit N times.
///
/// Each 429 (Dify's `too_many_requests`, its concurrency cap, or a gateway's rate limit) that arrives after the
/// previous wait ended raises the level by one: the wait is full jitter over `min(retry.max_delay,
/// retry.base_delay × 2^(level-1))`, and never shorter than the server's `Retry-After`. 429s that arrive while a
/// wait is already running join it. Any answer that is not a 429 ends the backpressure. Attempts are not used.
/// `continuous` is how long 429s have been answered without a break, compared with `retry.max_backpressure`.
/// Times are monotonic instants passed in by the caller (tests drive it in zero wall time).
public final class Backpressure: Sendable {
    struct State {
        var level = 0
        var openAt: ContinuousClock.Instant?
        var since: ContinuousClock.Instant?
        var random: SeededRandom
    }

    private let backoff: Backoff
    private let state: Mutex<State>

    public init(policy: RetryPolicy, seed: UInt64 = UInt64.random(in: 1...UInt64.max)) {
        backoff = Backoff(policy: policy)
        state = Mutex(State(random: SeededRandom(seed: seed)))
    }

    /// Records a 429 seen at `now`; returns how long to wait from `now`.
    @discardableResult
    public func record429(retryAfter: Duration?, now: ContinuousClock.Instant) -> Duration {
        state.withLock { state in
            if state.since == nil { state.since = now }
            if let openAt = state.openAt, now < openAt {
                // Already waiting: join the running wait, honouring a longer Retry-After.
                if let retryAfter, now + retryAfter > openAt { state.openAt = now + retryAfter }
                return state.openAt! - now
            }
            state.level += 1
            let delay = backoff.delay(afterAttempt: state.level, retryAfter: retryAfter, using: &state.random)
            state.openAt = now + delay
            return delay
        }
    }

    /// Records an answer that was not a 429: backpressure is over.
    public func recordAnswer() {
        state.withLock { state in
            state.level = 0
            state.openAt = nil
            state.since = nil
        }
    }

    /// How long a worker must still wait before sending, at `now` (zero when the way is open).
    public func remainingWait(now: ContinuousClock.Instant) -> Duration {
        state.withLock { state in
            guard let openAt = state.openAt, now < openAt else { return .zero }
            return openAt - now
        }
    }

    /// How long 429s have been answered without a break, at `now` (zero when none).
    public func continuous(now: ContinuousClock.Instant) -> Duration {
        state.withLock { state in state.since.map { now - $0 } ?? .zero }
    }

    /// The current level (number of growing waits so far).
    public var level: Int { state.withLock { $0.level } }
}
