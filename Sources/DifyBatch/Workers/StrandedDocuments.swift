import Foundation

/// Documents a worker left in flight after a ledger or file-system error it could not record
/// (``DocumentOutcome/stranded(documentID:)``), each with when to sort it again: 1 s after its first failure, then
/// doubling with each failure in this invocation (stranded again, or a ledger still unwritable when sorting it), at
/// most 60 s apart. `run` gives a document up after `limit` failures (``PipelineOptions/localRetriesPerRun``): it
/// stays in flight in the ledger and the next start sorts it like any leftover; `watch` never gives up.
struct StrandedDocuments {
    /// When each waiting document is sorted again.
    private var waiting: [Int64: Date] = [:]
    /// Failures per document in this invocation (kept after it is sorted, so a document that keeps failing backs off).
    private var failures: [Int64: Int] = [:]

    var isEmpty: Bool { waiting.isEmpty }
    /// How many documents wait to be sorted again.
    var count: Int { waiting.count }

    /// A worker left `id` in flight, or sorting it failed: returns the wait before the next try.
    @discardableResult
    mutating func add(_ id: Int64, now: Date) -> Duration {
        let count = (failures[id] ?? 0) + 1
        failures[id] = count
        let delay = Self.delay(afterFailures: count)
        waiting[id] = now.addingTimeInterval(delay.seconds)
        return delay
    }

    /// `id` was sorted (requeued, handed to recovery), or is no longer in flight, or belongs to another process now.
    mutating func resolved(_ id: Int64) { waiting[id] = nil }

    /// The waiting documents whose wait is over (with `limit`: only those with fewer failures), oldest id first.
    func due(at now: Date, limit: Int?) -> [Int64] {
        waiting.filter { entry in entry.value <= now && limit.map { (failures[entry.key] ?? 0) < $0 } ?? true }.keys.sorted()
    }

    /// Whether a waiting document has had fewer than `limit` failures (`run` waits for it).
    func hasRetriesLeft(limit: Int) -> Bool { waiting.keys.contains { (failures[$0] ?? 0) < limit } }

    /// 1 s, 2 s, 4 s, … at most 60 s: ``Backoff``'s ceiling (no jitter), as a document's local failures use it.
    private static let backoff = Backoff(policy: RetryPolicy(baseDelay: .seconds(1), maxDelay: .seconds(60)))

    static func delay(afterFailures count: Int) -> Duration { backoff.ceiling(afterAttempt: count) }
}
