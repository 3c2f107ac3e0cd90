import Foundation
import Testing
@testable import DifyBatch

@Suite("Backoff")
struct BackoffTests {
    let backoff = Backoff(policy: RetryPolicy(maxAttempts: 5, baseDelay: .seconds(1), maxDelay: .seconds(300)))

    @Test func splitMix64MatchesTheReferenceSequence() {
        // Reference values of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        var random = SeededRandom(seed: 0)
        #expect(random.next() == 0xE220_A839_7B1D_CDAF)
        #expect(random.next() == 0x6E78_9E6A_A1B9_65F4)
        #expect(random.next() == 0x06C4_5D18_8009_454F)
    }

    @Test func delaysStayWithinTheJitterBoundsForManyAttempts() {
        var random = SeededRandom(seed: 42)
        for attempt in 1...70 {
            let ceiling = min(Duration.seconds(300), .seconds(1) * (attempt > 20 ? 1 << 20 : 1 << (attempt - 1)))
            #expect(backoff.ceiling(afterAttempt: attempt) == ceiling)
            for _ in 0..<200 {
                let delay = backoff.delay(afterAttempt: attempt, using: &random)
                #expect(delay >= .zero && delay <= ceiling, "attempt \(attempt): \(delay) not in 0...\(ceiling)")
            }
        }
    }

    @Test func jitterIsFullRange() {
        var random = SeededRandom(seed: 7)
        let delays = (0..<2_000).map { _ in backoff.delay(afterAttempt: 4, using: &random) } // ceiling 8s
        #expect(delays.min()! < .milliseconds(200))
        #expect(delays.max()! > .milliseconds(7_800))
        #expect(Set(delays).count > 1_900)
    }

    @Test func sameSeedReplaysExactly() {
        var first = SeededRandom(seed: 2026)
        var second = SeededRandom(seed: 2026)
        var other = SeededRandom(seed: 2027)
        let attempts = Array(1...12) + Array(1...12)
        let a = attempts.map { backoff.delay(afterAttempt: $0, using: &first) }
        let b = attempts.map { backoff.delay(afterAttempt: $0, using: &second) }
        let c = attempts.map { backoff.delay(afterAttempt: $0, using: &other) }
        #expect(a == b)
        #expect(a != c)
    }

    @Test func delayIsCappedAtMaxDelay() {
        var random = SeededRandom(seed: 1)
        #expect(backoff.ceiling(afterAttempt: 9) == .seconds(256))
        #expect(backoff.ceiling(afterAttempt: 10) == .seconds(300))
        for attempt in [10, 50, 63, 64, 65, 1_000, Int.max] {
            #expect(backoff.ceiling(afterAttempt: attempt) == .seconds(300))
            #expect(backoff.delay(afterAttempt: attempt, using: &random) <= .seconds(300))
        }
        let tiny = Backoff(policy: RetryPolicy(baseDelay: .milliseconds(250), maxDelay: .milliseconds(900)))
        #expect(tiny.ceiling(afterAttempt: 1) == .milliseconds(250))
        #expect(tiny.ceiling(afterAttempt: 2) == .milliseconds(500))
        #expect(tiny.ceiling(afterAttempt: 3) == .milliseconds(900))
    }

    @Test func attemptsBelowOneCountAsTheFirst() {
        #expect(backoff.ceiling(afterAttempt: 0) == .seconds(1))
        #expect(backoff.ceiling(afterAttempt: -3) == .seconds(1))
    }

    @Test func zeroBaseDelayMeansNoWait() {
        var random = SeededRandom(seed: 3)
        let none = Backoff(policy: RetryPolicy(baseDelay: .zero, maxDelay: .seconds(10)))
        #expect(none.delay(afterAttempt: 5, using: &random) == .zero)
    }

    @Test func retryAfterIsAFloorAndNotCapped() {
        var random = SeededRandom(seed: 9)
        // Longer than the jitter ceiling: exactly Retry-After.
        #expect(backoff.delay(afterAttempt: 1, retryAfter: .seconds(10), using: &random) == .seconds(10))
        // Longer than maxDelay: still Retry-After, the server knows best.
        #expect(backoff.delay(afterAttempt: 30, retryAfter: .seconds(600), using: &random) == .seconds(600))
        // Shorter than the jitter: never below it, never above the ceiling.
        for _ in 0..<500 {
            let delay = backoff.delay(afterAttempt: 6, retryAfter: .seconds(2), using: &random)
            #expect(delay >= .seconds(2) && delay <= .seconds(32))
        }
        // Zero or negative Retry-After is no floor.
        let delay = backoff.delay(afterAttempt: 3, retryAfter: .seconds(-5), using: &random)
        #expect(delay >= .zero && delay <= .seconds(4))
    }

    @Test func retryAfterConsumesTheSameRandomNumbers() {
        var a = SeededRandom(seed: 11), b = SeededRandom(seed: 11)
        _ = backoff.delay(afterAttempt: 2, retryAfter: .seconds(100), using: &a)
        _ = backoff.delay(afterAttempt: 2, using: &b)
        #expect(a == b)
    }

    @Test func attemptsLeftFollowMaxAttempts() {
        #expect(backoff.allowsAnotherAttempt(after: 1))
        #expect(backoff.allowsAnotherAttempt(after: 4))
        #expect(!backoff.allowsAnotherAttempt(after: 5))
        #expect(!backoff.allowsAnotherAttempt(after: 6))
    }
}
