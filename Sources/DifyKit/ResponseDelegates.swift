import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Collects a whole response (head, then the body up to `limit` bytes; the rest is read and dropped) on the
/// request's event loop, for the calls whose answer is one JSON document (GETs, JSON POSTs, blocking runs,
/// uploads). Issue 14: with AHC's delegate API a request costs no Swift task and no hop per body chunk.
final class CollectingDelegate: HTTPClientResponseDelegate, @unchecked Sendable {  // state only on the event loop
    typealias Response = DifyClient.Exchange

    private let watchdog: RequestWatchdog
    private let limit: Int
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()

    init(watchdog: RequestWatchdog, limit: Int) {
        self.watchdog = watchdog
        self.limit = limit
    }

    func didReceiveHead(task: HTTPClient.Task<Response>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        self.head = head
        watchdog.context.markHeadReceived(head.headers, status: Int(head.status.code))
        watchdog.headReceived(armIdle: false)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Response>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        if body.readableBytes < limit {
            var buffer = buffer
            body.writeBuffer(&buffer)
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didFinishRequest(task: HTTPClient.Task<Response>) throws -> Response {
        guard let head else { throw HTTPClientError.remoteConnectionClosed }
        return DifyClient.Exchange(status: Int(head.status.code), headers: head.headers, body: body)
    }
}

/// Hands messages from a response delegate (on an event loop) to the one task awaiting them, in order.
final class Mailbox<Message: Sendable>: @unchecked Sendable {  // `queue` and `waiter` only under `lock`
    private let lock = NSLock()
    private var queue: [Message] = []
    private var waiter: CheckedContinuation<Message, Never>?

    func send(_ message: Message) {
        let waiter: CheckedContinuation<Message, Never>? = lock.withLock {
            guard let waiter = self.waiter else {
                queue.append(message)
                return nil
            }
            self.waiter = nil
            return waiter
        }
        waiter?.resume(returning: message)
    }

    /// The next message; waits for one. Only one caller may wait at a time.
    func next() async -> Message {
        await withCheckedContinuation { continuation in
            let ready: Message? = lock.withLock {
                if !queue.isEmpty { return queue.removeFirst() }
                waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// What a streaming run's delegate tells the awaiting caller.
enum StreamMessage: Sendable {
    /// New run ids: the delegate has stopped reading until `resume` is completed (from any thread; always).
    case started(RunStarted, resume: EventLoopPromise<Void>)
    /// The terminal event arrived (the stream's close may follow).
    case finished(RunResult)
    /// An in-stream `error` event; the request is being cancelled.
    case failed(DifyError)
    /// The request ended: a non-stream answer, the stream's end (with events still to apply), or its failure.
    case ended(Result<StreamingRunDelegate.Response, any Error>)
}

/// Reads a streaming run's response on the request's event loop: a `text/event-stream` 200 is parsed and folded
/// (``SSEParser``, ``StreamEventFastDecoder``, ``RunAccumulator``) as the bytes arrive, and the caller hears only
/// of new run ids (reading pauses until the caller's `onStarted` is done: backpressure, and the idle deadline is
/// suspended), the terminal event, an in-stream error, and the end. Any other answer is collected whole.
final class StreamingRunDelegate: HTTPClientResponseDelegate, @unchecked Sendable {  // state only on the event loop
    enum Response: Sendable {
        case exchange(DifyClient.Exchange)
        /// The stream ended; `tail` are the events completed by the end of the stream, not yet applied.
        case stream(RunAccumulator, tail: [SSEEvent])
    }

    private let watchdog: RequestWatchdog
    private let mailbox: Mailbox<StreamMessage>
    private let inStreamError: @Sendable (StreamErrorEvent, RunStarted) -> DifyError
    private var head: HTTPResponseHead?
    private var isStream = false
    private var done = false
    private var body = ByteBuffer()
    private var parser = SSEParser()
    private var accumulator: RunAccumulator

    init(mode: AppMode, watchdog: RequestWatchdog, mailbox: Mailbox<StreamMessage>,
         inStreamError: @escaping @Sendable (StreamErrorEvent, RunStarted) -> DifyError) {
        self.watchdog = watchdog
        self.mailbox = mailbox
        self.inStreamError = inStreamError
        self.accumulator = RunAccumulator(mode: mode)
    }

    func didReceiveHead(task: HTTPClient.Task<Response>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        self.head = head
        watchdog.context.markHeadReceived(head.headers, status: Int(head.status.code))
        isStream = head.status.code == 200
            && ASCIIText.contains(head.headers.first(name: "Content-Type") ?? "", caseInsensitive: "text/event-stream")
        watchdog.headReceived(armIdle: isStream)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Response>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        guard isStream else {
            if body.readableBytes < 64 * 1024 * 1024 {
                var buffer = buffer
                body.writeBuffer(&buffer)
            }
            return task.eventLoop.makeSucceededVoidFuture()
        }
        watchdog.context.touch()
        guard !done else { return task.eventLoop.makeSucceededVoidFuture() }
        return apply(parser.feed(buffer.readableBytesView)[...], on: task.eventLoop)
    }

    private func apply(_ events: ArraySlice<SSEEvent>, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        var index = events.startIndex
        while index < events.endIndex, !done {
            let sse = events[index]
            index += 1
            guard let event = StreamEventFastDecoder.decode(sse) else { continue }
            let step = accumulator.apply(event)
            watchdog.context.record(accumulator.runStarted)
            if let started = accumulator.takeStartedIfNew() {
                // Reading stops until the caller's onStarted is done; then this event's step is acted on and the
                // rest of the part applied.
                let resume = eventLoop.makePromise(of: Void.self)
                mailbox.send(.started(started, resume: resume))
                let rest = events[index...]
                return resume.futureResult.flatMap { self.end(step, on: eventLoop) ?? self.apply(rest, on: eventLoop) }
            }
            if let end = end(step, on: eventLoop) { return end }
        }
        return eventLoop.makeSucceededVoidFuture()
    }

    /// nil when the stream goes on; else the future for the body part (the terminal event, an in-stream error).
    private func end(_ step: RunAccumulator.Step, on eventLoop: any EventLoop) -> EventLoopFuture<Void>? {
        switch step {
        case .proceed:
            return nil
        case .finished:
            done = true
            var result = accumulator.result()
            result.serverDate = watchdog.context.serverDate
            mailbox.send(.finished(result))
            return eventLoop.makeSucceededVoidFuture()
        case .failed(let event):
            done = true
            var error = inStreamError(event, accumulator.runStarted)
            error.serverDate = watchdog.context.serverDate
            mailbox.send(.failed(error))
            return eventLoop.makeFailedFuture(error)
        }
    }

    func didFinishRequest(task: HTTPClient.Task<Response>) throws -> Response {
        guard let head else { throw HTTPClientError.remoteConnectionClosed }
        guard isStream else {
            return .exchange(DifyClient.Exchange(status: Int(head.status.code), headers: head.headers, body: body))
        }
        return .stream(accumulator, tail: done ? [] : parser.finish())
    }
}
