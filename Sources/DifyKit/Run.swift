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
            context.markHeadReceived(response.headers, status: Int(response.status.code))
            let status = Int(response.status.code)
            let buffer = try await Self.collect(response.body, limit: 64 * 1024 * 1024)
            let json = try self.parseSuccess(Exchange(status: status, headers: response.headers, body: buffer),
                                             endpoint: endpoint, isRun: true)
            var result = try self.decode(json, endpoint: endpoint, isRun: true) {
                try BlockingResponse.result(mode: mode, json: $0)
            }
            result.serverDate = context.serverDate
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
            context.markHeadReceived(response.headers, status: Int(response.status.code))
            let status = Int(response.status.code)
            let contentType = response.headers.first(name: "Content-Type")?.lowercased() ?? ""
            guard status == 200, contentType.contains("text/event-stream") else {
                // Errors before the stream are ordinary JSON errors; a JSON 200 is a blocking-style answer.
                let buffer = try await Self.collect(response.body, limit: 64 * 1024 * 1024)
                let json = try self.parseSuccess(Exchange(status: status, headers: response.headers, body: buffer),
                                                 endpoint: endpoint, isRun: true)
                var result = try self.decode(json, endpoint: endpoint, isRun: true) {
                    try BlockingResponse.result(mode: mode, json: $0)
                }
                result.serverDate = context.serverDate
                context.record(result.runStarted)
                try await context.runCallback { try await onStarted(result.runStarted) }
                return result
            }
            context.touch()  // arms the idle watchdog
            var parser = SSEParser()
            var accumulator = RunAccumulator(mode: mode)

            func finished() -> RunResult {
                var result = accumulator.result()
                result.serverDate = context.serverDate
                return result
            }

            func handle(_ events: [SSEEvent]) async throws -> RunResult? {
                for sse in events {
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
                        var error = self.inStreamError(event, endpoint: endpoint, runStarted: accumulator.runStarted)
                        error.serverDate = context.serverDate
                        throw error
                    }
                }
                return nil
            }

            for try await chunk in response.body {
                context.touch()
                if let result = try await handle(parser.feed(chunk.readableBytesView)) { return result }
            }
            if let result = try await handle(parser.finish()) { return result }
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
