import Foundation
import Hummingbird

/// Dispatches every request, adds Dify's common headers and records stats.
struct SimulatorResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let simulator: DifySimulator

    func respond(to request: Request, context: BasicRequestContext) async throws -> Response {
        let method = request.method.rawValue
        let route = Route.match(method: method, path: request.uri.path)
        let endpoint = route.endpointKey(method: method)
        simulator.recorder.request(endpoint: endpoint)
        var response: Response
        do {
            response = try await handle(route, request)
        } catch {
            simulator.logger.warning("request failed: \(error)")
            response = Responses.internalServerError
        }
        switch route {
        case .notFound, .methodNotAllowed: break
        default:
            response.headers[.init("Access-Control-Allow-Origin")!] = "*"
            response.headers[.init("Access-Control-Expose-Headers")!] = "X-Env, X-Trace-Id, X-Version"
        }
        response.headers[.init("X-Version")!] = "1.14.1"
        response.headers[.init("X-Env")!] = "PRODUCTION"
        // A dropped connection has no status: it is counted under 0.
        simulator.recorder.response(endpoint: endpoint, status: Responses.isDropConnection(response) ? 0 : response.status.code)
        return response
    }

    private func handle(_ route: Route, _ request: Request) async throws -> Response {
        switch route {
        case .notFound: return Responses.notFound
        case .methodNotAllowed: return Responses.methodNotAllowed
        default: break
        }
        let app: SimulatedApp
        switch authenticate(request) {
        case let .success(a): app = a
        case let .failure(response): return response.response
        }
        switch route {
        case .info:
            return Responses.json(
                200,
                .object([
                    ("name", .string(app.name)), ("description", ""), ("tags", .array([])), ("mode", .string(app.mode)),
                    ("author_name", "simulator"),
                ]))
        case .parameters: return Responses.json(200, parameters(app))
        case .meta: return Responses.json(200, .object([("tool_icons", .object([]))]))
        case .site:
            return Responses.json(200, .object([("title", .string(app.name)), ("icon_type", "emoji"), ("icon", "🤖"), ("description", "")]))
        case .upload:
            return try await UploadHandler(simulator: simulator, app: app).handle(request)
        case .workflowRun:
            return try await RunHandler(simulator: simulator, app: app, kind: .workflow).handle(request, pinnedWorkflowID: nil)
        case let .workflowRunPinned(id):
            return try await RunHandler(simulator: simulator, app: app, kind: .workflow).handle(request, pinnedWorkflowID: id)
        case .completion:
            return try await RunHandler(simulator: simulator, app: app, kind: .completion).handle(request, pinnedWorkflowID: nil)
        case .chat:
            return try await RunHandler(simulator: simulator, app: app, kind: .chat).handle(request, pinnedWorkflowID: nil)
        case let .runDetail(id):
            return runDetail(app: app, runID: id)
        case .workflowLogs:
            return workflowLogs(app: app, request: request)
        case let .workflowStop(taskID):
            return try await stop(app: app, request: request, taskID: taskID, requiredMode: "workflow", checkUser: false)
        case let .completionStop(taskID):
            return try await stop(app: app, request: request, taskID: taskID, requiredMode: "completion", checkUser: true)
        case let .chatStop(taskID):
            return try await stop(app: app, request: request, taskID: taskID, requiredMode: "chat", checkUser: true)
        case .notFound, .methodNotAllowed:
            return Responses.notFound
        }
    }

    struct AuthFailure: Error { let response: Response }

    private func authenticate(_ request: Request) -> Result<SimulatedApp, AuthFailure> {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            return .failure(
                AuthFailure(response: Responses.error(401, "unauthorized", "Authorization header must be provided and start with 'Bearer'")))
        }
        let key = header.dropFirst("Bearer ".count).trimmingCharacters(in: .whitespaces)
        guard let app = simulator.configuration.apps.first(where: { $0.apiKey == key }) else {
            return .failure(AuthFailure(response: Responses.error(401, "unauthorized", "Access token is invalid")))
        }
        return .success(app)
    }

    private func parameters(_ app: SimulatedApp) -> JSONValue {
        let limits = simulator.configuration.limits
        let methods: JSONValue = ["local_file", "remote_url"]
        return .object([
            ("opening_statement", ""), ("suggested_questions", .array([])),
            ("suggested_questions_after_answer", .object([("enabled", false)])),
            ("speech_to_text", .object([("enabled", false)])),
            ("text_to_speech", .object([("enabled", false), ("language", ""), ("voice", "")])),
            ("retriever_resource", .object([("enabled", false)])),
            ("annotation_reply", .object([("enabled", false)])),
            ("more_like_this", .object([("enabled", false)])),
            ("user_input_form", .array(app.userInputForm.map(\.parametersJSON))),
            ("sensitive_word_avoidance", .object([("enabled", false)])),
            (
                "file_upload",
                .object([
                    ("enabled", .bool(!app.fileUploadTypes.isEmpty)), ("allowed_file_types", .array(app.fileUploadTypes.map(JSONValue.string))),
                    ("allowed_file_extensions", .array([])), ("allowed_file_upload_methods", methods),
                    ("number_limits", 3),
                    ("image", .object([("enabled", false), ("number_limits", 3), ("transfer_methods", methods)])),
                ])
            ),
            (
                "system_parameters",
                .object([
                    ("image_file_size_limit", .int(limits.imageMB)), ("video_file_size_limit", .int(limits.videoMB)),
                    ("audio_file_size_limit", .int(limits.audioMB)), ("file_size_limit", .int(limits.fileMB)),
                    ("workflow_file_upload_limit", .int(limits.workflowFileUploadLimit)),
                ])
            ),
        ])
    }

    private func runDetail(app: SimulatedApp, runID: String) -> Response {
        guard app.mode == "workflow" else {
            return Responses.error(400, "not_workflow_app", "Please check if your app mode matches the right API route.")
        }
        let faults = simulator.configuration.faults
        switch simulator.lookupFaults.runDetailFault(
            id: runID, notFoundFirst: faults.runDetailNotFoundFirst, badGatewayFirst: faults.runDetailBadGatewayFirst)
        {
        case .notFound?: return Responses.error(404, "not_found", "Workflow run not found.")
        case .badGateway?: return Responses.badGateway
        case nil: break
        }
        guard let run = simulator.state.run(id: runID), run.apiKey == app.apiKey else {
            return Responses.error(404, "not_found", "Workflow run not found.")
        }
        let elapsed = run.elapsed ?? (ContinuousClock.now - run.startedAt).seconds
        return Responses.json(
            200,
            .object([
                ("id", .string(run.id)), ("workflow_id", .string(run.workflowID)), ("status", .string(run.status)),
                ("inputs", .string(run.inputsString)),
                ("outputs", run.status == "running" ? .object([]) : run.outputs),
                ("error", .optional(run.error)), ("total_steps", .int(run.totalSteps)),
                ("total_tokens", .int(run.totalTokens)), ("created_at", .int(run.createdAt)),
                ("finished_at", run.finishedAt.map(JSONValue.int) ?? .null), ("elapsed_time", .double(elapsed)),
            ]))
    }

    /// `GET /v1/workflows/logs`, newest first. Each run has one log row whose `created_at` is the run's end
    /// (its start while running), in whole seconds like Dify's `CURRENT_TIMESTAMP(0)` columns; the
    /// `created_at__after/__before` filters compare against that value, so a client looking for a run it
    /// started at time T should filter with `created_at__after` ≤ T − 1 s.
    private func workflowLogs(app: SimulatedApp, request: Request) -> Response {
        guard app.mode == "workflow" else {
            return Responses.error(400, "not_workflow_app", "Please check if your app mode matches the right API route.")
        }
        // Decoded like werkzeug: `+` is a space, then percent-decoding (so an unencoded `+00:00` offset breaks).
        var query: [String: String] = [:]
        for item in (request.uri.query ?? "").split(separator: "&") {
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                let spaced = s.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            let key = decode(kv[0])
            if query[key] == nil { query[key] = kv.count > 1 ? decode(kv[1]) : "" }
        }
        func param(_ name: String) -> String? { query[name] }
        let faults = simulator.configuration.faults
        switch simulator.lookupFaults.logsFault(notFoundFirst: faults.logsNotFoundFirst, badGatewayFirst: faults.logsBadGatewayFirst) {
        case .notFound?: return Responses.notFound
        case .badGateway?: return Responses.badGateway
        case nil: break
        }
        let page = max(1, min(99_999, Int(param("page") ?? "") ?? 1))
        let limit = max(1, min(100, Int(param("limit") ?? "") ?? 20))
        var runs = simulator.state.runs(apiKey: app.apiKey)
        if faults.logsOnlyWhenFinished {
            runs = runs.filter { ["succeeded", "failed", "stopped", "partial-succeeded"].contains($0.status) }
        }
        if let status = param("status"), !status.isEmpty { runs = runs.filter { $0.status == status } }
        if let session = param("created_by_end_user_session_id"), !session.isEmpty { runs = runs.filter { $0.user == session } }
        if let after = param("created_at__after"), !after.isEmpty {
            guard let date = ISO8601.parse(after) else {
                return Responses.invalidParam("Invalid created_at__after: \(after)")
            }
            runs = runs.filter { Double($0.logCreatedAt) >= date.timeIntervalSince1970 }
        }
        if let before = param("created_at__before"), !before.isEmpty {
            guard let date = ISO8601.parse(before) else {
                return Responses.invalidParam("Invalid created_at__before: \(before)")
            }
            runs = runs.filter { Double($0.logCreatedAt) <= date.timeIntervalSince1970 }
        }
        let total = runs.count
        let pageRuns = runs.dropFirst((page - 1) * limit).prefix(limit)
        let version = ISO8601.pythonTimestamp(simulator.startedAt)
        let items: [JSONValue] = pageRuns.map { run in
            .object([
                ("id", .string(run.logID)),
                (
                    "workflow_run",
                    .object([
                        ("id", .string(run.id)), ("version", .string(version)), ("status", .string(run.status)),
                        ("triggered_from", "app-run"), ("error", .optional(run.error)),
                        ("elapsed_time", run.elapsed.map(JSONValue.double) ?? .null), ("total_tokens", .int(run.totalTokens)),
                        ("total_steps", .int(run.totalSteps)), ("created_at", .int(run.createdAt)),
                        ("finished_at", run.finishedAt.map(JSONValue.int) ?? .null), ("exceptions_count", 0),
                    ])
                ),
                ("details", .null), ("created_from", "service-api"), ("created_by_role", "end_user"),
                ("created_by_account", .null),
                (
                    "created_by_end_user",
                    .object([
                        ("id", .string(run.endUserID)), ("type", "service-api"), ("is_anonymous", false),
                        ("session_id", .string(run.user)),
                    ])
                ),
                ("created_at", .int(run.logCreatedAt)),
            ])
        }
        return Responses.json(
            200,
            .object([
                ("page", .int(page)), ("limit", .int(limit)), ("total", .int(total)),
                ("has_more", .bool(page * limit < total)), ("data", .array(items)),
            ]))
    }

    private func stop(app: SimulatedApp, request: Request, taskID: String, requiredMode: String, checkUser: Bool) async throws -> Response {
        let body: JSONValue
        switch try await RunHandler.readJSONBody(request) {
        case let .success(v): body = v
        case let .failure(f): return f.response
        }
        guard let user = body["user"]?.stringValue, !user.isEmpty else {
            return Responses.invalidParam("Arg user must be provided.")
        }
        if app.mode != requiredMode {
            switch requiredMode {
            case "workflow": return Responses.error(400, "not_workflow_app", "Please check if your app mode matches the right API route.")
            case "chat": return Responses.error(400, "not_chat_app", "Please check if your app mode matches the right API route.")
            default: return Responses.error(400, "app_unavailable", "App unavailable, please check your app configurations.")
            }
        }
        simulator.state.requestStop(taskID: taskID, apiKey: app.apiKey, user: user, checkUser: checkUser)
        return Responses.json(200, .object([("result", "success")]))
    }
}
