import AsyncHTTPClient
import Foundation
import NIOCore

/// The deadlines of one HTTP request, kept by a single timer on an event loop (issue 14: it replaces a watchdog
/// task racing every request in a task group, whose child tasks, sleeps and cancellations cost thread hops).
///
/// - total: from the call's start, whatever the phase (``WatchdogFired/total(_:)``).
/// - head: from the call's start until the response head arrives (``WatchdogFired/head(_:)``); nil where the
///   head may take as long as the call (blocking runs, uploads: their head follows the work or the body).
/// - idle: once armed (the head of an SSE stream), no body bytes for `idle` (``WatchdogFired/idle(_:)``); time
///   in the caller's `onStarted` is not silence (``RequestContext/idleSince``).
///
/// When a deadline passes the request's AHC task is failed with the matching error, which reaches the caller as
/// the failure of the request; when the total and the head deadline pass together, the total one is reported.
/// The timer is re-armed only when the next deadline moves (head received, idle armed, bytes after a quiet spell).
final class RequestWatchdog: @unchecked Sendable {  // `state` only under `lock`
    private struct State {
        var fail: (@Sendable (any Error) -> Void)?
        var scheduled: Scheduled<Void>?
        var wake: NIODeadline?
        var headPending = true
        var idleArmed = false
        var finished = false
    }

    let eventLoop: any EventLoop
    let context: RequestContext
    private let total: Duration
    private let totalDeadline: NIODeadline
    private let head: Duration?
    private let headDeadline: NIODeadline?
    private let idle: Duration?
    private let lock = NSLock()
    private var state = State()

    init(eventLoop: any EventLoop, context: RequestContext, total: Duration, head: Duration?, idle: Duration?) {
        let now = NIODeadline.now()
        self.eventLoop = eventLoop
        self.context = context
        self.total = total
        self.totalDeadline = now + DifyClient.timeAmount(total)
        self.head = head
        self.headDeadline = head.map { now + DifyClient.timeAmount($0) }
        self.idle = idle
    }

    /// Connects the watchdog to the request it guards and starts the timer (unless the request already ended).
    func attach<Response>(_ task: HTTPClient.Task<Response>) {
        withState { state in
            state.fail = { task.fail(reason: $0) }
            reschedule(&state)
        }
        task.futureResult.whenComplete { _ in self.stop() }
    }

    /// The response head arrived; `armIdle`: it opens an SSE stream, so body silence now counts. The timer moves
    /// only when the idle deadline comes first; a later deadline is armed when the timer fires (most calls end
    /// before it does, so their timer is set once and cancelled once).
    func headReceived(armIdle: Bool) {
        if armIdle { context.touch() }
        withState { state in
            state.headPending = false
            state.idleArmed = armIdle && idle != nil
            if state.idleArmed { reschedule(&state) }
        }
    }

    /// The request ended: no deadline applies any more.
    func stop() {
        let scheduled = withState { state -> Scheduled<Void>? in
            state.finished = true
            state.fail = nil
            defer { state.scheduled = nil }
            return state.scheduled
        }
        scheduled?.cancel()
    }

    private func withState<T>(_ body: (inout State) -> T) -> T {
        lock.withLock { body(&state) }
    }

    /// The earliest deadline that can still fire.
    private func nextWake(_ state: State, now: NIODeadline) -> NIODeadline {
        var wake = totalDeadline
        if state.headPending, let headDeadline { wake = min(wake, headDeadline) }
        if state.idleArmed, let idle {
            let since = context.idleSince.map { NIODeadline.now() - DifyClient.timeAmount(ContinuousClock.now - $0) } ?? now
            wake = min(wake, since + DifyClient.timeAmount(idle))
        }
        return wake
    }

    private func reschedule(_ state: inout State) {
        guard !state.finished, state.fail != nil else { return }
        let now = NIODeadline.now()
        // Never in the past: the idle check uses ContinuousClock, the timer NIO's clock; a wake a hair early
        // re-arms once instead of spinning.
        let wake = max(nextWake(state, now: now), now + .microseconds(100))
        if state.wake == wake, state.scheduled != nil { return }
        state.scheduled?.cancel()
        state.wake = wake
        state.scheduled = eventLoop.scheduleTask(deadline: wake) { self.fire() }
    }

    private func fire() {
        let now = NIODeadline.now()
        let expired: (any Error, @Sendable (any Error) -> Void)? = withState { state in
            guard !state.finished, let fail = state.fail else { return nil }
            state.scheduled = nil
            state.wake = nil
            if now >= totalDeadline { return (WatchdogFired.total(total), fail) }
            if state.headPending, let headDeadline, let head, now >= headDeadline { return (WatchdogFired.head(head), fail) }
            if state.idleArmed, let idle, let since = context.idleSince,
               ContinuousClock.now - since >= idle {
                return (WatchdogFired.idle(idle), fail)
            }
            reschedule(&state)
            return nil
        }
        if let (error, fail) = expired { fail(error) }
    }
}
