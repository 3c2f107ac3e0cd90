import Synchronization

/// Work that must outlive the HTTP exchange that started it (a run whose client disconnected keeps going).
/// Jobs run as children of the simulator's own task group, so they are structured: `DifySimulator.run()`
/// does not return before they end, and cancelling it cancels them.
final class BackgroundWork: Sendable {
    typealias Job = @Sendable () async -> Void
    private let stream: AsyncStream<Job>
    private let continuation: AsyncStream<Job>.Continuation

    init() {
        (stream, continuation) = AsyncStream<Job>.makeStream()
    }

    /// Queues `job`; it starts immediately while the simulator runs.
    func submit(_ job: @escaping Job) {
        continuation.yield(job)
    }

    /// Runs queued jobs until ``finish()`` and all jobs are done.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await job in stream {
                group.addTask { await job() }
            }
        }
    }

    func finish() { continuation.finish() }
}

/// Set once graceful shutdown begins, so long waits (invalid-input stalls, run processing) end early.
final class ShutdownFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
