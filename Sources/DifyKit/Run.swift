import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat

extension DifyClient {
    /// Runs a workflow, completion or chat app.
    ///
    /// - Streaming (default): events are parsed as they arrive; `onStarted` is awaited as soon as
    ///   `workflow_started` (or the first message event carrying `task_id`/`message_id`) arrives — persist the ids there.
    ///   If the stream is silent for `timeouts.streamIdle` before any run id arrived (Dify 1.14 answers invalid inputs
    ///   with 200 + one ping, then silence), the same request is repeated once in **blocking** mode to learn the real
    ///   reason, which is thrown (its message says it was diagnosed after a stall). If a run id was known, a
    ///   `.streamStalled` error classified `.ambiguous` is thrown with `runStarted` filled.
    /// - Blocking: `onStarted` is called once with the ids from the response before returning.
    ///
    /// A workflow that ends `failed` (HTTP 200) is returned with `status == .failed`, not thrown.
    /// An in-stream `error` event is thrown as `.inStreamError`.
    public func run(_ request: RunRequest,
                    onStarted: @Sendable (RunStarted) async throws -> Void = { _ in }) async throws -> RunResult {
        try await withoutActuallyEscaping(onStarted) { onStarted in
            try await runEscaping(request, onStarted: onStarted)
        }
    }

    private func runEscaping(_ request: RunRequest,
                             onStarted: @escaping @Sendable (RunStarted) async throws -> Void) async throws -> RunResult {
        switch request.responseMode {
        case .blocking:
            return try await runBlocking(request, onStarted: onStarted)
        case .streaming:
            do {
                return try await runStreaming(request, onStarted: onStarted)
            } catch let error as DifyError
                where error.code == .streamStalled && (error.runStarted?.isEmpty ?? true) && request.mode.supportsBlocking {
                // Dify 1.14 answers invalid inputs on a stream with 200 + ping, then silence until it closes the
                // stream after ~300 s: no run exists. The blocking form of the same request returns the reason.
                // A stream that *closes* early is not repeated (a proxy may have cut a run that did start): it is
                // thrown as `.streamEndedEarly` (ambiguous).
                return try await diagnoseStall(request, stall: error, onStarted: onStarted)
            }
        }
    }

    /// Repeats a stalled streaming request once in blocking mode. Dify answers the blocking form of an invalid
    /// request with a 400 carrying the reason; that error is thrown with a note. If the repeat succeeds, its result
    /// is returned. If the repeat itself fails without an HTTP answer, the original stall is thrown.
    private func diagnoseStall(_ request: RunRequest, stall: DifyError,
                               onStarted: @escaping @Sendable (RunStarted) async throws -> Void) async throws -> RunResult {
        var blocking = request
        blocking.responseMode = .blocking
        configuration.logger.debug("stream stalled before workflow_started; repeating once in blocking mode",
                                   metadata: ["endpoint": "\(stall.endpoint)"])
        do {
            return try await runBlocking(blocking, onStarted: onStarted)
        } catch var error as DifyError where error.code == .http {
            error.message += " (diagnosed by repeating the request in blocking mode after the stream stalled: "
                + stall.message + ")"
            throw error
        } catch var error as DifyError {
            if error.code == .cancelled { throw error }
            var original = stall
            original.message += "; the blocking repeat to diagnose it also failed: \(error.message)"
            error = original
            throw error
        }
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

    private func runRequest(path: String, body: JSONValue) -> HTTPClientRequest {
        var http = baseRequest(method: .POST, path: path)
        http.headers.add(name: "Content-Type", value: "application/json")
        http.body = .bytes(Self.jsonBody(body))
        return http
    }

    func runBlocking(_ request: RunRequest,
                     onStarted: @escaping @Sendable (RunStarted) async throws -> Void) async throws -> RunResult {
        let (path, body) = try runTarget(request)
        let endpoint = "POST \(path)"
        let http = runRequest(path: path, body: body)
        let context = RequestContext()
        let mode = request.mode
        // Dify sends a blocking run's head only when the run has finished: wait up to the total deadline.
        return try await guarded(endpoint: endpoint, isRun: true, context: context, idle: nil) {
            let response = try await self.httpClient.execute(
                http, deadline: .now() + Self.timeAmount(self.configuration.timeouts.total))
            context.markHeadReceived(status: Int(response.status.code))
            let status = Int(response.status.code)
            let buffer = try await Self.collect(response.body, limit: 64 * 1024 * 1024)
            let json = try self.parseSuccess(Exchange(status: status, headers: response.headers, body: buffer),
                                             endpoint: endpoint, isRun: true)
            let result = try self.decode(json, endpoint: endpoint, isRun: true) {
                try BlockingResponse.result(mode: mode, json: $0)
            }
            context.record(result.runStarted)
            try await context.runCallback { try await onStarted(result.runStarted) }
            return result
        }
    }

    func runStreaming(_ request: RunRequest,
                      onStarted: @escaping @Sendable (RunStarted) async throws -> Void) async throws -> RunResult {
        let (path, body) = try runTarget(request)
        let endpoint = "POST \(path)"
        let http = runRequest(path: path, body: body)
        let context = RequestContext()
        let mode = request.mode
        return try await guarded(endpoint: endpoint, isRun: true, context: context,
                                 idle: configuration.timeouts.streamIdle) {
            let response = try await self.httpClient.execute(
                http, deadline: .now() + Self.timeAmount(self.configuration.timeouts.responseHead))
            context.markHeadReceived(status: Int(response.status.code))
            let status = Int(response.status.code)
            let contentType = response.headers.first(name: "Content-Type")?.lowercased() ?? ""
            guard status == 200, contentType.contains("text/event-stream") else {
                // Errors before the stream are ordinary JSON errors; a JSON 200 is a blocking-style answer.
                let buffer = try await Self.collect(response.body, limit: 64 * 1024 * 1024)
                let json = try self.parseSuccess(Exchange(status: status, headers: response.headers, body: buffer),
                                                 endpoint: endpoint, isRun: true)
                let result = try self.decode(json, endpoint: endpoint, isRun: true) {
                    try BlockingResponse.result(mode: mode, json: $0)
                }
                context.record(result.runStarted)
                try await context.runCallback { try await onStarted(result.runStarted) }
                return result
            }
            context.touch()  // arms the idle watchdog
            var parser = SSEParser()
            var accumulator = RunAccumulator(mode: mode)

            func handle(_ events: [SSEEvent]) async throws -> RunResult? {
                for sse in events {
                    guard let event = DifyStreamEvent.decode(sse) else { continue }
                    let step = accumulator.apply(event)
                    context.record(accumulator.runStarted)
                    if let started = accumulator.takeStartedIfNew() {
                        try await context.runCallback { try await onStarted(started) }
                    }
                    switch step {
                    case .proceed: continue
                    case .finished: return accumulator.result()
                    case .failed(let event): throw self.inStreamError(event, endpoint: endpoint,
                                                                      runStarted: accumulator.runStarted)
                    }
                }
                return nil
            }

            for try await chunk in response.body {
                context.touch()
                if let result = try await handle(parser.feed(chunk.readableBytesView)) { return result }
            }
            if let result = try await handle(parser.finish()) { return result }
            if accumulator.hasResult { return accumulator.result() }
            let started = accumulator.runStarted
            throw DifyError(
                code: .streamEndedEarly,
                message: started.isEmpty
                    ? "stream ended without a terminal event and before any run id arrived"
                    : "stream ended without a terminal event (no workflow_finished / message_end / error)",
                endpoint: endpoint, runStarted: started.isEmpty ? nil : started, requestSent: true,
                classification: .ambiguous)
        }
    }

    func inStreamError(_ event: StreamErrorEvent, endpoint: String, runStarted: RunStarted) -> DifyError {
        DifyError(
            code: .inStreamError, httpStatus: event.status, difyCode: event.code, message: redact(event.message),
            endpoint: endpoint, runStarted: runStarted.isEmpty ? nil : runStarted, requestSent: true,
            classification: ErrorClassifier.classify(status: event.status, difyCode: event.code,
                                                     message: event.message, isRun: true, inStream: true))
    }
}
