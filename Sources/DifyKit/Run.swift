import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat

extension DifyClient {
    /// Runs a workflow, completion or chat app. Sends exactly one request: DifyKit never repeats a run request.
    ///
    /// - Streaming (default): events are parsed as they arrive; `onStarted` is awaited as soon as
    ///   `workflow_started` (or the first message event carrying `task_id`/`message_id`) arrives — persist the ids there.
    ///   If the stream is silent for `timeouts.streamIdle`, `.streamStalled` is thrown (classified `.ambiguous`,
    ///   `runMayHaveStarted == true`), with `runStarted` filled when ids were known. A stall before any id means the
    ///   request was sent and its outcome is unknown: Dify 1.14 answers invalid inputs with 200 + one ping + silence
    ///   (no run exists; captures 39b/39c), but a buffering proxy holding back a real run looks the same. The caller
    ///   looks the run up (`/workflows/logs` by `user` and Dify's time, ``DifyError/serverDate``) and decides.
    /// - Blocking: `onStarted` is called once with the ids from the response before returning.
    ///
    /// A workflow that ends `failed` (HTTP 200) is returned with `status == .failed`, not thrown. A workflow that
    /// pauses for human input (Dify ≥ 1.13 Human Input node: stream event `workflow_paused`, or a blocking body with
    /// `data.status == "paused"`) is returned with `status == .paused` and its `workflowRunID`: the run exists and is
    /// waiting; poll ``workflowRunDetail(id:)`` until it ends. An in-stream `error` event is thrown as `.inStreamError`.
    /// ``RunResult/serverDate`` carries the response's `Date` header (Dify's clock).
    public func run(_ request: RunRequest,
                    onStarted: @Sendable (RunStarted) async throws -> Void = { _ in }) async throws -> RunResult {
        var result = try await withoutActuallyEscaping(onStarted) { onStarted in
            switch request.responseMode {
            case .blocking: return try await runBlocking(request, onStarted: onStarted)
            case .streaming: return try await runStreaming(request, onStarted: onStarted)
            }
        }
        // The workflow's error text came from the network: no key in it, whatever it is later cut to.
        result.error = result.error.map(redact)
        return result
    }

    func runTarget(_ request: RunRequest) throws -> (path: String, body: JSONValue) {
        var body: [String: JSONValue] = [
            "inputs": .object(request.inputs),
            "user": .string(request.user),
            "response_mode": .string(request.responseMode.rawValue),
        ]
        if let files = request.files { body["files"] = .array(files) }
        switch request.mode {
        case .workflow:
            let path = request.workflowID.map { "/workflows/\(Self.pathComponent($0))/run" } ?? "/workflows/run"
            return (path, .object(body))
        case .completion:
            if let query = request.query { body["query"] = .string(query) }
            return ("/completion-messages", .object(body))
        case .chat, .advancedChat, .agentChat, .agent:
            body["query"] = .string(request.query ?? "")
            body["conversation_id"] = ""
            body["auto_generate_name"] = false
            if let workflowID = request.workflowID { body["workflow_id"] = .string(workflowID) }
            return ("/chat-messages", .object(body))
        case .unknown(let mode):
            throw DifyError(code: .invalidRequest, message: "unsupported app mode '\(mode)': no generate endpoint is known",
                            endpoint: "POST (none)", requestSent: false, classification: .configuration)
        }
    }

    private func runRequest(path: String, body: JSONValue) throws -> HTTPClient.Request {
        try httpRequest(.POST, path: path, headers: Self.jsonContentType, body: .byteBuffer(Self.jsonBody(body)))
    }

    func runBlocking(_ request: RunRequest,
                     onStarted: @escaping @Sendable (RunStarted) async throws -> Void) async throws -> RunResult {
        let (path, body) = try runTarget(request)
        let endpoint = "POST \(path)"
        let context = RequestContext()
        // Dify sends a blocking run's head only when the run has finished: wait up to the total deadline.
        return try await guarded(endpoint: endpoint, isRun: true, context: context) {
            let exchange = try await collect(try runRequest(path: path, body: body), context: context, headTimeout: nil,
                                             limit: 64 * 1024 * 1024)
            return try await blockingResult(exchange, mode: request.mode, endpoint: endpoint, context: context,
                                            onStarted: onStarted)
        }
    }

    /// A run's whole JSON answer (blocking, or a JSON answer to a streaming request): the result, `onStarted`
    /// called once with its ids; a non-2xx answer is thrown as its ``DifyError``.
    private func blockingResult(_ exchange: Exchange, mode: AppMode, endpoint: String, context: RequestContext,
                                onStarted: @Sendable (RunStarted) async throws -> Void) async throws -> RunResult {
        let json = try parseSuccess(exchange, endpoint: endpoint, isRun: true)
        var result = try decode(json, endpoint: endpoint, isRun: true) { try BlockingResponse.result(mode: mode, json: $0) }
        result.serverDate = context.serverDate
        context.record(result.runStarted)
        try await context.runCallback { try await onStarted(result.runStarted) }
        return result
    }

    func runStreaming(_ request: RunRequest,
                      onStarted: @escaping @Sendable (RunStarted) async throws -> Void) async throws -> RunResult {
        let (path, body) = try runTarget(request)
        let endpoint = "POST \(path)"
        let context = RequestContext()
        let mode = request.mode
        return try await guarded(endpoint: endpoint, isRun: true, context: context) {
            let http = try runRequest(path: path, body: body)
            let eventLoop = httpClient.eventLoopGroup.any()
            let watchdog = RequestWatchdog(eventLoop: eventLoop, context: context, total: configuration.timeouts.total,
                                           head: configuration.timeouts.responseHead, idle: configuration.timeouts.streamIdle)
            let mailbox = Mailbox<StreamMessage>()
            let delegate = StreamingRunDelegate(mode: mode, watchdog: watchdog, mailbox: mailbox) { event, started in
                self.inStreamError(event, endpoint: endpoint, runStarted: started)
            }
            let task = httpClient.execute(request: http, delegate: delegate, eventLoop: .delegate(on: eventLoop),
                                          deadline: nil, logger: nil)
            watchdog.attach(task)
            task.futureResult.whenComplete { mailbox.send(.ended($0)) }
            return try await withTaskCancellationHandler {
                while true {
                    switch await mailbox.next() {
                    case .started(let ids, let resume):
                        do {
                            try await context.runCallback { try await onStarted(ids) }
                        } catch {
                            task.cancel()
                            resume.succeed(())
                            throw error
                        }
                        resume.succeed(())
                    case .finished(let result):
                        return result
                    case .failed(let error):
                        throw error
                    case .ended(.failure(let error)):
                        throw error
                    case .ended(.success(.exchange(let exchange))):
                        // Errors before the stream are ordinary JSON errors; a JSON 200 is a blocking-style answer.
                        return try await blockingResult(exchange, mode: mode, endpoint: endpoint, context: context,
                                                        onStarted: onStarted)
                    case .ended(.success(.stream(let accumulator, let tail))):
                        return try await streamEnded(accumulator, tail: tail, endpoint: endpoint, context: context,
                                                     onStarted: onStarted)
                    }
                }
            } onCancel: {
                task.cancel()
            }
        }
    }

    /// The end of a stream without a terminal event read so far: applies the events its end completed, then
    /// returns the result, or throws `streamEndedEarly` (ambiguous: the run may exist).
    private func streamEnded(_ accumulator: RunAccumulator, tail: [SSEEvent], endpoint: String, context: RequestContext,
                             onStarted: @Sendable (RunStarted) async throws -> Void) async throws -> RunResult {
        var accumulator = accumulator
        func finished() -> RunResult {
            var result = accumulator.result()
            result.serverDate = context.serverDate
            return result
        }
        for sse in tail {
            guard let event = StreamEventFastDecoder.decode(sse) else { continue }
            let step = accumulator.apply(event)
            context.record(accumulator.runStarted)
            if let started = accumulator.takeStartedIfNew() {
                try await context.runCallback { try await onStarted(started) }
            }
            switch step {
            case .proceed: continue
            case .finished: return finished()
            case .failed(let event):
                var error = inStreamError(event, endpoint: endpoint, runStarted: accumulator.runStarted)
                error.serverDate = context.serverDate
                throw error
            }
        }
        if accumulator.hasResult { return finished() }
        let started = accumulator.runStarted
        throw DifyError(
            code: .streamEndedEarly,
            message: started.isEmpty
                ? "stream ended without a terminal event and before any run id arrived"
                : "stream ended without a terminal event (no workflow_finished / message_end / error)",
            endpoint: endpoint, runStarted: started.isEmpty ? nil : started, requestSent: true,
            classification: .ambiguous, runMayHaveStarted: true, serverDate: context.serverDate)
    }

    func inStreamError(_ event: StreamErrorEvent, endpoint: String, runStarted: RunStarted) -> DifyError {
        DifyError(
            code: .inStreamError, httpStatus: event.status, difyCode: event.code, message: redact(event.message),
            endpoint: endpoint, runStarted: runStarted.isEmpty ? nil : runStarted, requestSent: true,
            classification: ErrorClassifier.classify(status: event.status, difyCode: event.code,
                                                     message: event.message, isRun: true, inStream: true),
            runMayHaveStarted: true)
    }
}
