import Synchronization

/// The second shutdown signal (issue 16): the drain after the first SIGTERM/SIGINT is cancelled at once. Every job
/// cancels its in-flight documents, whose ledger state (`running`, `recovering`, `uploading`, …) the next start
/// recovers; nothing is re-sent blindly.
public final class DrainCancellation: Sendable {
    private let state = Mutex<(cancelled: Bool, next: Int, handlers: [Int: @Sendable () -> Void])>((false, 0, [:]))

    public init() {}

    /// Cancels the drain: every registered handler runs once, now; later registrations run at once.
    public func cancel() {
        let handlers = state.withLock { value -> [@Sendable () -> Void] in
            guard !value.cancelled else { return [] }
            value.cancelled = true
            return Array(value.handlers.values)
        }
        for handler in handlers { handler() }
    }

    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Registers `handler` (run at once when already cancelled); returns a token for ``remove(_:)``.
    func onCancel(_ handler: @escaping @Sendable () -> Void) -> Int {
        let (token, runNow) = state.withLock { value -> (Int, Bool) in
            value.next += 1
            if !value.cancelled { value.handlers[value.next] = handler }
            return (value.next, value.cancelled)
        }
        if runNow { handler() }
        return token
    }

    func remove(_ token: Int) {
        _ = state.withLock { $0.handlers.removeValue(forKey: token) }
    }
}
