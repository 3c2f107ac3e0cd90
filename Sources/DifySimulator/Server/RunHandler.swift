import Foundation
import Hummingbird

/// The four generate endpoints: request checks in Dify's order, HTTP-level faults, then the run.
struct RunHandler {
    let simulator: DifySimulator
    let app: SimulatedApp
    let kind: RunKind

    struct BodyFailure: Error { let response: Response }

    /// Reads a JSON object body like Flask's `get_json()`: 415 when the Content-Type is not JSON, 400 when the
    /// body is empty or not a JSON object.
    static func readJSONBody(_ request: Request) async throws -> Result<JSONValue, BodyFailure> {
        let mime = (request.headers[.contentType] ?? "").split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        guard mime == "application/json" || (mime.hasPrefix("application/") && mime.hasSuffix("+json")) else {
            return .failure(
                BodyFailure(
                    response: Responses.error(
                        415, "unsupported_media_type",
                        "Did not attempt to load JSON data because the request Content-Type was not 'application/json'.")))
        }
        var request = request
        let buffer = try await request.collectBody(upTo: 64 * 1024 * 1024)
        let bytes = Array(buffer.readableBytesView)
        guard let value = try? JSONParser.parse(bytes), case .object = value else {
            return .failure(
                BodyFailure(response: Responses.error(400, "bad_request", "Invalid JSON payload received or JSON payload is empty.")))
        }
        return .success(value)
    }

    private var modeMismatch: Response? {
        switch kind {
        case .workflow where app.mode != "workflow":
            return Responses.error(400, "not_workflow_app", "Please check if your app mode matches the right API route.")
        case .completion where app.mode != "completion":
            return Responses.error(400, "app_unavailable", "App unavailable, please check your app configurations.")
        case .chat where !["chat", "advanced-chat", "agent-chat"].contains(app.mode):
            return Responses.error(400, "not_chat_app", "Please check if your app mode matches the right API route.")
        default:
            return nil
        }
    }

    /// pydantic-style validation of the payload shape (`inputs`, `query`, `response_mode`).
    private func payloadErrors(_ body: JSONValue) -> String? {
        var errors: [(loc: String, msg: String, type: String, input: JSONValue)] = []
        if kind == .chat {
            switch body["query"] {
            case nil: errors.append(("query", "Field required", "missing", body))
            case .string?: break
            case let other?: errors.append(("query", "Input should be a valid string", "string_type", other))
            }
        }
        switch body["inputs"] {
        case nil: errors.append(("inputs", "Field required", "missing", body))
        case .object?: break
        case let other?: errors.append(("inputs", "Input should be a valid dictionary", "dict_type", other))
        }
        if let mode = body["response_mode"], !mode.isNull, mode != "blocking", mode != "streaming" {
            errors.append(("response_mode", "Input should be 'blocking' or 'streaming'", "literal_error", mode))
        }
        guard !errors.isEmpty else { return nil }
        var text = "\(errors.count) validation error\(errors.count == 1 ? "" : "s") for \(kind.payloadName)"
        for e in errors {
            text += "\n\(e.loc)\n  \(e.msg) [type=\(e.type), input_value=\(e.input.pydanticRepr), input_type=\(e.input.pythonTypeName)]"
            text += "\n    For further information visit https://errors.pydantic.dev/2.12/v/\(e.type)"
        }
        return text
    }

    private var tooManyRequests: Response {
        let max = simulator.configuration.faults.maxActive ?? 1
        var response = Responses.error(
            429, "too_many_requests",
            "Too many requests. Please try again later. The current maximum concurrent requests allowed for \(app.name) is \(max).")
        if let retryAfter = simulator.configuration.faults.tooManyRequestsRetryAfter {
            response.headers[.retryAfter] = String(Int(retryAfter.seconds.rounded(.up)))
        }
        return response
    }

    static var sseHeaders: HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        return headers
    }

    static let pingFrame = ByteBuffer(string: "event: ping\n\n")

    func handle(_ request: Request, pinnedWorkflowID: String?) async throws -> Response {
        let faults = simulator.configuration.faults
        let state = simulator.state
        simulator.recorder.runRequestReceived()
        if faults.slowHeaders > .zero { try await Task.sleep(for: faults.slowHeaders) }
        // A CDN in front of Dify answers before Dify sees the request.
        if state.roll(faults.gatewayRateLimitRate) { return Responses.gatewayRateLimit(retryAfter: faults.gatewayRetryAfter) }
        let body: JSONValue
        switch try await Self.readJSONBody(request) {
        case let .success(v): body = v
        case let .failure(f): return f.response
        }
        guard let user = body["user"]?.stringValue, !user.isEmpty else {
            return Responses.invalidParam("Arg user must be provided.")
        }
        if let mismatch = modeMismatch { return mismatch }
        if let message = payloadErrors(body) { return Responses.invalidParam(message) }
        if let pinned = pinnedWorkflowID {
            guard UUID(uuidString: pinned) != nil else { return Responses.error(400, "bad_request", "Invalid workflow ID format") }
            guard pinned.lowercased() == app.workflowID else {
                return Responses.error(404, "not_found", "Workflow not found with id: \(pinned)")
            }
        }
        let streaming = body["response_mode"] == "streaming"
        var conversationID = ""
        if kind == .chat {
            guard let id = state.conversation(body["conversation_id"]?.stringValue, apiKey: app.apiKey, user: user) else {
                return Responses.error(404, "not_found", "Conversation Not Exists.")
            }
            conversationID = id
        }
        if state.roll(faults.badGatewayRate) { return Responses.badGateway }
        if state.roll(faults.serverErrorRate) { return Responses.internalServerError }
        if state.roll(faults.tooManyRequestsRate) { return tooManyRequests }
        guard state.acquireSlot(max: faults.maxActive) else { return tooManyRequests }
        if state.roll(faults.dropBeforeRunRate) {
            state.releaseSlot()
            simulator.recorder.runDroppedBeforeRun()
            return Responses.dropConnection
        }

        let validation = InputValidation(form: app.userInputForm, apiKey: app.apiKey, user: user, state: state)
        let validated: (inputs: [(String, JSONValue)], files: [ResolvedFile])
        let result = validation.validate(body["inputs"]?.objectValue ?? []).flatMap { v in
            guard kind != .workflow, v.files.isEmpty else { return Result<(inputs: [(String, JSONValue)], files: [ResolvedFile]), InputValidation.Failure>.success(v) }
            return validation.validateTopLevelFiles(body["files"], allowedTypes: app.fileUploadTypes).map { (inputs: v.inputs, files: $0) }
        }
        switch result {
        case let .success(v):
            validated = v
        case let .failure(failure):
            guard streaming else {
                state.releaseSlot()
                return Responses.invalidParam(failure.message)
            }
            // Dify: 200, one ping, silence, then the stream closes (~300 s later).
            let wait = simulator.configuration.invalidInputStreamClose
            let shutdown = simulator.shutdown
            return Response(
                status: .ok, headers: Self.sseHeaders,
                body: ResponseBody { writer in
                    defer { state.releaseSlot() }
                    try await writer.write(Self.pingFrame)
                    let deadline = ContinuousClock.now + wait
                    while ContinuousClock.now < deadline, !shutdown.isSet {
                        try await Task.sleep(for: min(.milliseconds(100), deadline - ContinuousClock.now))
                    }
                    try await writer.finish(nil)
                })
        }
        let plan = makePlan(user: user, validated: validated, streaming: streaming, conversationID: conversationID)
        let record = RunRecord(
            id: plan.runID, taskID: plan.taskID, logID: StableID.random(), apiKey: app.apiKey, workflowID: app.workflowID,
            user: user, endUserID: plan.endUserID, mode: app.mode, status: "running",
            inputsString: runDetailInputs(plan), createdAt: plan.createdAt, startedAt: .now)
        state.addRun(record)
        simulator.recorder.runStarted(sha256: plan.sha256, uploadFileID: plan.uploadFileID)
        let dropAfterStart = streaming && state.roll(faults.dropAfterStartRate)
        let dropBlocking = !streaming && state.roll(faults.dropBlockingAfterStartRate)
        let silence = faults.silenceBeforeStart
        let shutdown = simulator.shutdown

        let (frames, continuation) = AsyncStream<StreamFrame>.makeStream()
        let executor = RunExecutor(simulator: simulator, plan: plan)
        simulator.background.submit { await executor.execute(continuation) }

        if streaming {
            return Response(
                status: .ok, headers: Self.sseHeaders,
                body: ResponseBody { [kind] writer in
                    // Workflows open with a ping; completion streams start with the first `message` (capture `llm/11`).
                    if kind != .completion { try await writer.write(Self.pingFrame) }
                    if silence > .zero {
                        // A buffering proxy: nothing reaches the client for a while; the run goes on meanwhile.
                        let until = ContinuousClock.now + silence
                        while ContinuousClock.now < until, !shutdown.isSet {
                            try await Task.sleep(for: min(.milliseconds(50), until - ContinuousClock.now))
                        }
                    }
                    for await frame in frames {
                        switch frame {
                        case .ping:
                            try await writer.write(Self.pingFrame)
                        case let .event(event, isStart):
                            try await writer.write(ByteBuffer(string: "data: " + event.encoded(.stream) + "\n\n"))
                            if isStart && dropAfterStart { throw DroppedConnection() }
                        case .done:
                            break
                        }
                    }
                    try await writer.finish(nil)
                })
        }
        if dropBlocking { return Responses.dropConnection }  // the run continues in the background
        var outcome: RunOutcome?
        for await frame in frames {
            if case let .done(o) = frame { outcome = o }
        }
        switch outcome {
        case let .workflow(run)?:
            return Responses.json(200, blockingWorkflowBody(run), style: .python, contentType: "application/json; charset=utf-8")
        case let .paused(run, pausedNodes)?:
            return Responses.json(
                200, blockingPausedBody(run, pausedNodes: pausedNodes), style: .python, contentType: "application/json; charset=utf-8")
        case let .message(run, answer, usage)?:
            var pairs: [(String, JSONValue)] = [
                ("event", "message"), ("task_id", .string(run.taskID)), ("id", .string(run.id)), ("message_id", .string(run.id)),
            ]
            if kind == .chat { pairs.append(("conversation_id", .string(plan.conversationID))) }
            pairs += [
                ("mode", .string(app.mode)), ("answer", .string(answer)),
                ("metadata", .object([("usage", usage), ("retriever_resources", .array([]))])),
                ("created_at", .int(run.createdAt)),
            ]
            return Responses.json(200, .object(pairs), style: .python, contentType: "application/json; charset=utf-8")
        case let .error(status, code, message)?:
            return Responses.error(status, code, message)
        case nil:
            return Responses.internalServerError
        }
    }

    struct DroppedConnection: Error {}

    private func makePlan(
        user: String, validated: (inputs: [(String, JSONValue)], files: [ResolvedFile]), streaming: Bool, conversationID: String
    ) -> RunPlan {
        let state = simulator.state
        let faults = simulator.configuration.faults
        let endUserID = state.endUserID(apiKey: app.apiKey, user: user)
        let runID = StableID.random()
        let first = validated.files.first
        var fault = RunFault.none
        if state.roll(faults.failedWorkflowRate) {
            fault =
                kind == .workflow
                ? .failedWorkflow
                : .inStreamError(status: 400, code: "completion_request_error", message: "[simulator] Model returned an invalid response")
        }
        if state.roll(faults.inStreamErrorRate) {
            fault =
                state.roll(0.5)
                ? .inStreamError(status: 400, code: "completion_request_error", message: "[simulator] Server Unavailable Error")
                : .inStreamError(status: 500, code: "internal_server_error", message: "Internal Server Error, please contact support.")
        }
        var pauses = false
        if kind == .workflow, case .none = fault { pauses = state.roll(faults.pausedRunRate) }
        let language = validated.inputs.first(where: { $0.0 == "language" })?.1.stringValue
        // Completion/chat apps read the document from their paragraph (text) input when one is given.
        let textInput = kind == .workflow ? nil : app.userInputForm.first { $0.type == "paragraph" }.flatMap { v in
            validated.inputs.first { $0.0 == v.variable }?.1.stringValue
        }
        let processing = faults.latency + state.jitter(faults.latencyJitter)
        var plan = RunPlan(
            kind: kind, app: app, runID: runID, taskID: StableID.random(), conversationID: conversationID, user: user,
            endUserID: endUserID, startedInputs: .object([]),
            summary: textInput.map { DocumentSummary(bytes: Array($0.utf8)) } ?? first?.upload.summary ?? DocumentSummary(bytes: []),
            filename: first?.upload.name ?? "", language: language, processing: processing, fault: fault, streaming: streaming,
            createdAt: simulator.nowSeconds)
        plan.uploadFileID = first?.upload.id
        // Keyed by what the model reads: a completion/chat app's text input when it has one.
        plan.sha256 = textInput != nil ? plan.summary.sha256 : first?.upload.summary.sha256
        plan.pauses = pauses
        plan.startedInputs = expandedInputs(validated, plan: plan, timestamp: false)
        return plan
    }

    /// The inputs as the engine sees them: file mappings expanded to Dify file objects, plus `sys.*`.
    private func expandedInputs(_ validated: (inputs: [(String, JSONValue)], files: [ResolvedFile]), plan: RunPlan, timestamp: Bool) -> JSONValue {
        var files = validated.files[...]
        var pairs: [(String, JSONValue)] = []
        for (name, value) in validated.inputs {
            switch value {
            case .object:
                if let f = files.first, f.variable == name {
                    files = files.dropFirst()
                    pairs.append((name, fileObject(f)))
                } else {
                    pairs.append((name, value))
                }
            case let .array(items) where app.userInputForm.first(where: { $0.variable == name })?.type == "file-list":
                var expanded: [JSONValue] = []
                for _ in items {
                    if let f = files.first {
                        files = files.dropFirst()
                        expanded.append(fileObject(f))
                    }
                }
                pairs.append((name, .array(expanded)))
            default:
                pairs.append((name, value))
            }
        }
        pairs.append(("sys.files", .array([])))
        pairs.append(("sys.user_id", .string(plan.user)))
        pairs.append(("sys.app_id", .string(app.appID)))
        if timestamp { pairs.append(("sys.timestamp", .int(plan.createdAt))) }
        pairs.append(("sys.workflow_id", .string(app.workflowID)))
        pairs.append(("sys.workflow_run_id", .string(plan.runID)))
        return .object(pairs)
    }

    private func fileObject(_ f: ResolvedFile) -> JSONValue {
        let u = f.upload
        let reference = Data(#"{"record_id":"\#(u.id)"}"#.utf8).base64EncodedString()
        let url =
            "\(simulator.state.serverURL)/files/\(u.id)/file-preview?timestamp=\(simulator.nowSeconds)&nonce=\(StableID.nonce())&sign=\(StableID.nonce())%3D"
        return .object([
            ("dify_model_identity", "__dify__file__"), ("id", .null), ("type", .string(f.type)),
            ("transfer_method", .string(f.transferMethod)), ("remote_url", ""), ("reference", .string("dify-file-ref:" + reference)),
            ("filename", .string(u.name)), ("extension", .string(u.extension_.isEmpty ? "" : "." + u.extension_)),
            ("mime_type", .string(u.mimeType)), ("size", .int(u.size)), ("related_id", .string(u.id)), ("url", .string(url)),
        ])
    }

    private func runDetailInputs(_ plan: RunPlan) -> String {
        // Same as workflow_started inputs plus sys.timestamp, spelled by Python's json.dumps.
        guard case var .object(pairs) = plan.startedInputs else { return "{}" }
        if let idx = pairs.firstIndex(where: { $0.0 == "sys.workflow_id" }) {
            pairs.insert(("sys.timestamp", .int(plan.createdAt)), at: idx)
        }
        return JSONValue.object(pairs).encoded(.python)
    }

    /// A blocking run that paused: HTTP 200 like a finished one, `status: "paused"`, `finished_at: null`, plus
    /// `paused_nodes` and `reasons` (Dify ≥ 1.13 `WorkflowAppPausedBlockingResponse`; langgenius/dify
    /// api/core/app/entities/task_entities.py and its service-API HITL tests: the blocking pipeline returns on the
    /// first `WorkflowPauseStreamResponse`).
    private func blockingPausedBody(_ run: RunRecord, pausedNodes: [String]) -> JSONValue {
        .object([
            ("task_id", .string(run.taskID)), ("workflow_run_id", .string(run.id)),
            (
                "data",
                .object([
                    ("id", .string(run.id)), ("workflow_id", .string(run.workflowID)), ("status", "paused"),
                    ("outputs", .object([])), ("error", .null), ("elapsed_time", .double(run.elapsed ?? 0)),
                    ("total_tokens", .int(run.totalTokens)), ("total_steps", .int(run.totalSteps)),
                    ("created_at", .int(run.createdAt)), ("finished_at", .null),
                    ("paused_nodes", .array(pausedNodes.map(JSONValue.string))),
                    ("reasons", .array(pausedNodes.map { RunExecutor.pauseReason(runID: run.id, nodeID: $0) })),
                ])
            ),
        ])
    }

    private func blockingWorkflowBody(_ run: RunRecord) -> JSONValue {
        .object([
            ("task_id", .string(run.taskID)), ("workflow_run_id", .string(run.id)),
            (
                "data",
                .object([
                    ("id", .string(run.id)), ("workflow_id", .string(run.workflowID)), ("status", .string(run.status)),
                    ("outputs", run.outputs), ("error", .optional(run.error)), ("elapsed_time", .double(run.elapsed ?? 0)),
                    ("total_tokens", .int(run.totalTokens)), ("total_steps", .int(run.totalSteps)),
                    ("created_at", .int(run.createdAt)), ("finished_at", run.finishedAt.map(JSONValue.int) ?? .null),
                ])
            ),
        ])
    }
}
