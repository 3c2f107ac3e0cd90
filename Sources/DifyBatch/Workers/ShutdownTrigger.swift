import Synchronization

/// A one-shot signal with listeners (issue 16). Used for the second SIGTERM/SIGINT, which cancels the drain of every
/// job (``PipelineOptions/drainCancellation``: in-flight documents keep their ledger state, recovered on the next
/// start, never re-sent blindly), and for stopping one job whose spec was removed or changed (`watch` reloads).
public final class ShutdownTrigger: Sendable {
    private let state = Mutex<(fired: Bool, next: Int, handlers: [Int: @Sendable () -> Void])>((false, 0, [:]))

    public init() {}

    /// Fires the trigger: every registered handler runs once, now; later registrations run at once.
    public func fire() {
        let handlers = state.withLock { value -> [@Sendable () -> Void] in
            guard !value.fired else { return [] }
            value.fired = true
            return Array(value.handlers.values)
        }
        for handler in handlers { handler() }
    }

    public var isFired: Bool { state.withLock { $0.fired } }

    /// Registers `handler` (run at once when already fired); returns a token for ``remove(_:)``.
    func onFire(_ handler: @escaping @Sendable () -> Void) -> Int {
        let (token, runNow) = state.withLock { value -> (Int, Bool) in
            value.next += 1
            if !value.fired { value.handlers[value.next] = handler }
            return (value.next, value.fired)
        }
        if runNow { handler() }
        return token
    }

    func remove(_ token: Int) {
        _ = state.withLock { $0.handlers.removeValue(forKey: token) }
    }
}
