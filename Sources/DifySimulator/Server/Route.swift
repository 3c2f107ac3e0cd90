/// The endpoints the simulator serves, matched from method + path.
enum Route: Equatable {
    case info, parameters, meta, site
    case upload
    case workflowRun
    case workflowRunPinned(workflowID: String)
    case runDetail(runID: String)
    case workflowLogs
    case workflowStop(taskID: String)
    case completion, completionStop(taskID: String)
    case chat, chatStop(taskID: String)
    /// Known path, other method.
    case methodNotAllowed(template: String)
    case notFound(path: String)

    /// Matches a request. Paths are compared without a trailing slash.
    static func match(method: String, path rawPath: String) -> Route {
        var path = rawPath
        if path.count > 1, path.hasSuffix("/") { path.removeLast() }
        let p = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        // p[0] == "" for absolute paths
        guard p.count >= 3, p[0].isEmpty, p[1] == "v1" else { return .notFound(path: rawPath) }
        let rest = Array(p[2...])
        func on(_ allowed: String, _ route: Route, _ template: String) -> Route {
            method == allowed ? route : .methodNotAllowed(template: template)
        }
        switch rest.count {
        case 1:
            switch rest[0] {
            case "info": return on("GET", .info, "/v1/info")
            case "parameters": return on("GET", .parameters, "/v1/parameters")
            case "meta": return on("GET", .meta, "/v1/meta")
            case "site": return on("GET", .site, "/v1/site")
            case "completion-messages": return on("POST", .completion, "/v1/completion-messages")
            case "chat-messages": return on("POST", .chat, "/v1/chat-messages")
            default: return .notFound(path: rawPath)
            }
        case 2:
            if rest == ["files", "upload"] { return on("POST", .upload, "/v1/files/upload") }
            if rest == ["workflows", "run"] { return on("POST", .workflowRun, "/v1/workflows/run") }
            if rest == ["workflows", "logs"] { return on("GET", .workflowLogs, "/v1/workflows/logs") }
            return .notFound(path: rawPath)
        case 3:
            if rest[0] == "workflows", rest[1] == "run", !rest[2].isEmpty {
                return on("GET", .runDetail(runID: rest[2]), "/v1/workflows/run/{workflow_run_id}")
            }
            if rest[0] == "workflows", rest[2] == "run", !rest[1].isEmpty {
                return on("POST", .workflowRunPinned(workflowID: rest[1]), "/v1/workflows/{workflow_id}/run")
            }
            if rest[0] == "completion-messages", rest[2] == "stop", !rest[1].isEmpty {
                return on("POST", .completionStop(taskID: rest[1]), "/v1/completion-messages/{task_id}/stop")
            }
            if rest[0] == "chat-messages", rest[2] == "stop", !rest[1].isEmpty {
                return on("POST", .chatStop(taskID: rest[1]), "/v1/chat-messages/{task_id}/stop")
            }
            return .notFound(path: rawPath)
        case 4:
            if rest[0] == "workflows", rest[1] == "tasks", rest[3] == "stop", !rest[2].isEmpty {
                return on("POST", .workflowStop(taskID: rest[2]), "/v1/workflows/tasks/{task_id}/stop")
            }
            return .notFound(path: rawPath)
        default:
            return .notFound(path: rawPath)
        }
    }

    /// The stats key: `"METHOD /template"`.
    func endpointKey(method: String) -> String {
        let template: String
        switch self {
        case .info: template = "/v1/info"
        case .parameters: template = "/v1/parameters"
        case .meta: template = "/v1/meta"
        case .site: template = "/v1/site"
        case .upload: template = "/v1/files/upload"
        case .workflowRun: template = "/v1/workflows/run"
        case .workflowRunPinned: template = "/v1/workflows/{workflow_id}/run"
        case .runDetail: template = "/v1/workflows/run/{workflow_run_id}"
        case .workflowLogs: template = "/v1/workflows/logs"
        case .workflowStop: template = "/v1/workflows/tasks/{task_id}/stop"
        case .completion: template = "/v1/completion-messages"
        case .completionStop: template = "/v1/completion-messages/{task_id}/stop"
        case .chat: template = "/v1/chat-messages"
        case .chatStop: template = "/v1/chat-messages/{task_id}/stop"
        case let .methodNotAllowed(t): template = t
        case let .notFound(path): template = path
        }
        return "\(method) \(template)"
    }
}
