import Foundation

// MARK: - App mode

/// The `mode` of a Dify app (`GET /info`). Decides which generate endpoint a run uses.
public enum AppMode: Sendable, Hashable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    case workflow, completion, chat, advancedChat, agentChat, agent
    case unknown(String)

    public init(rawValue: String) {
        switch rawValue {
        case "workflow": self = .workflow
        case "completion": self = .completion
        case "chat": self = .chat
        case "advanced-chat": self = .advancedChat
        case "agent-chat": self = .agentChat
        case "agent": self = .agent
        default: self = .unknown(rawValue)
        }
    }

    public init(stringLiteral value: String) { self.init(rawValue: value) }

    /// Dify's spelling: "workflow", "completion", "chat", "advanced-chat", "agent-chat", "agent".
    public var rawValue: String {
        switch self {
        case .workflow: return "workflow"
        case .completion: return "completion"
        case .chat: return "chat"
        case .advancedChat: return "advanced-chat"
        case .agentChat: return "agent-chat"
        case .agent: return "agent"
        case .unknown(let value): return value
        }
    }

    /// True for the modes served by `/chat-messages`.
    public var isChatFamily: Bool {
        switch self {
        case .chat, .advancedChat, .agentChat, .agent: return true
        default: return false
        }
    }

    /// Dify refuses blocking mode for agent apps.
    public var supportsBlocking: Bool {
        switch self {
        case .agentChat, .agent: return false
        default: return true
        }
    }

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        self.init(rawValue: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

// MARK: - Run status

/// Workflow execution status. `rawValue` is Dify's string (`partial-succeeded`).
public enum RunStatus: Sendable, Hashable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    case succeeded, partialSucceeded, failed, stopped, paused, running, scheduled
    case unknown(String)

    public init(rawValue: String) {
        switch rawValue {
        case "succeeded": self = .succeeded
        case "partial-succeeded": self = .partialSucceeded
        case "failed": self = .failed
        case "stopped": self = .stopped
        case "paused": self = .paused
        case "running": self = .running
        case "scheduled": self = .scheduled
        default: self = .unknown(rawValue)
        }
    }

    public init(stringLiteral value: String) { self.init(rawValue: value) }

    public var rawValue: String {
        switch self {
        case .succeeded: return "succeeded"
        case .partialSucceeded: return "partial-succeeded"
        case .failed: return "failed"
        case .stopped: return "stopped"
        case .paused: return "paused"
        case .running: return "running"
        case .scheduled: return "scheduled"
        case .unknown(let value): return value
        }
    }

    /// End states: succeeded, partial-succeeded, failed, stopped. Unknown values are treated as non-terminal.
    public var isTerminal: Bool {
        switch self {
        case .succeeded, .partialSucceeded, .failed, .stopped: return true
        default: return false
        }
    }

    /// Succeeded or partial-succeeded (outputs present).
    public var isSuccess: Bool { self == .succeeded || self == .partialSucceeded }

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        self.init(rawValue: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

public enum ResponseMode: String, Sendable, Codable {
    case streaming, blocking
}

// MARK: - /info

public struct AppInfo: Sendable, Decodable, Hashable {
    public var name: String
    public var description: String
    public var tags: [String]
    public var mode: AppMode
    public var authorName: String?

    public init(name: String, description: String = "", tags: [String] = [], mode: AppMode, authorName: String? = nil) {
        self.name = name
        self.description = description
        self.tags = tags
        self.mode = mode
        self.authorName = authorName
    }

    public init(from decoder: any Decoder) throws {
        try self.init(json: JSONValue(from: decoder))
    }

    init(json: JSONValue) throws {
        guard let mode = json["mode"]?.stringValue else {
            throw LenientDecodingError("`mode` missing in /info response")
        }
        self.init(
            name: json["name"]?.stringValue ?? "",
            description: json["description"]?.stringValue ?? "",
            tags: json["tags"]?.arrayValue?.compactMap {
                $0.stringValue ?? $0["name"]?.stringValue
            } ?? [],
            mode: AppMode(rawValue: mode),
            authorName: json["author_name"]?.stringValue
        )
    }
}

struct LenientDecodingError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - File kinds

/// Dify's file `type`.
public enum FileKind: String, Sendable, Codable, CaseIterable {
    case document, image, audio, video, custom

    static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "webp", "gif", "svg"]
    static let videoExtensions: Set<String> = ["mp4", "mov", "mpeg", "webm"]
    static let audioExtensions: Set<String> = ["mp3", "m4a", "wav", "amr", "mpga"]
    static let documentExtensions: Set<String> = [
        "txt", "markdown", "md", "mdx", "pdf", "html", "htm", "xlsx", "xls", "vtt", "properties",
        "doc", "docx", "csv", "eml", "msg", "ppt", "pptx", "xml", "epub", "odt",
    ]

    /// The type Dify detects (graphon `standardize_file_type`): extension first (case-insensitive),
    /// then the MIME type, otherwise `custom`.
    public static func detect(filename: String, mimeType: String? = nil) -> FileKind {
        let ext = fileExtension(of: filename).lowercased()
        if !ext.isEmpty {
            if imageExtensions.contains(ext) { return .image }
            if videoExtensions.contains(ext) { return .video }
            if audioExtensions.contains(ext) { return .audio }
            if documentExtensions.contains(ext) { return .document }
        }
        guard let raw = mimeType else { return .custom }
        let mime = raw.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        if mime.hasPrefix("image/") { return .image }
        if mime.hasPrefix("video/") { return .video }
        if mime.hasPrefix("audio/") { return .audio }
        if mime.hasPrefix("text/") { return .document }
        let documentMIMEs: Set<String> = [
            "application/pdf", "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
            "application/vnd.ms-outlook", "application/epub+zip", "application/vnd.oasis.opendocument.text",
            "message/rfc822",
        ]
        if documentMIMEs.contains(mime) { return .document }
        if mime.hasPrefix("application/vnd.openxmlformats-officedocument") { return .document }
        if mime.hasPrefix("application/wps-office") { return .document }
        return .custom
    }

    /// Extension without dot, as written (empty when none). Dotfiles like ".env" have no extension.
    static func fileExtension(of filename: String) -> String {
        let base = filename.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? filename
        guard let dot = base.lastIndex(of: "."), dot != base.startIndex else { return "" }
        return String(base[base.index(after: dot)...])
    }
}

/// Content-Type for the upload's file part.
public enum MIMEType {
    static let table: [String: String] = [
        "txt": "text/plain", "md": "text/markdown", "markdown": "text/markdown", "mdx": "text/markdown",
        "html": "text/html", "htm": "text/html", "csv": "text/csv", "xml": "text/xml", "vtt": "text/vtt",
        "properties": "text/plain", "json": "application/json", "yaml": "application/yaml", "yml": "application/yaml",
        "pdf": "application/pdf", "doc": "application/msword",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls": "application/vnd.ms-excel",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt": "application/vnd.ms-powerpoint",
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "eml": "message/rfc822", "msg": "application/vnd.ms-outlook", "epub": "application/epub+zip",
        "odt": "application/vnd.oasis.opendocument.text", "rtf": "application/rtf", "zip": "application/zip",
        "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
        "svg": "image/svg+xml", "mp3": "audio/mpeg", "mpga": "audio/mpeg", "m4a": "audio/mp4", "wav": "audio/wav",
        "amr": "audio/amr", "mp4": "video/mp4", "mov": "video/quicktime", "mpeg": "video/mpeg", "webm": "video/webm",
        "exe": "application/x-msdownload",
    ]

    /// MIME type from the filename's extension (case-insensitive); `application/octet-stream` otherwise.
    public static func forFilename(_ name: String) -> String {
        table[FileKind.fileExtension(of: name).lowercased()] ?? "application/octet-stream"
    }
}

// MARK: - Upload

/// `POST /files/upload` result (HTTP 201).
public struct UploadedFile: Sendable, Codable, Hashable {
    public var id: String
    public var name: String
    public var size: Int64
    public var `extension`: String?
    public var mimeType: String?
    public var createdBy: String?
    /// Dify's clock: epoch seconds when Dify stored the file.
    public var createdAt: Int?
    /// Dify's clock: the upload response's `Date` header. Not encoded.
    public var serverDate: Date?

    public init(id: String, name: String, size: Int64, extension: String? = nil, mimeType: String? = nil,
                createdBy: String? = nil, createdAt: Int? = nil, serverDate: Date? = nil) {
        self.id = id
        self.name = name
        self.size = size
        self.extension = `extension`
        self.mimeType = mimeType
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.serverDate = serverDate
    }

    enum CodingKeys: String, CodingKey {
        case id, name, size, `extension`, mimeType = "mime_type", createdBy = "created_by", createdAt = "created_at"
    }

    public init(from decoder: any Decoder) throws {
        try self.init(json: JSONValue(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(size, forKey: .size)
        try container.encodeIfPresent(self.extension, forKey: .extension)
        try container.encodeIfPresent(mimeType, forKey: .mimeType)
        try container.encodeIfPresent(createdBy, forKey: .createdBy)
        try container.encodeIfPresent(createdAt, forKey: .createdAt)
    }

    init(json: JSONValue) throws {
        guard let id = json["id"]?.stringValue, !id.isEmpty else {
            throw LenientDecodingError("upload response has no `id`")
        }
        self.init(
            id: id,
            name: json["name"]?.stringValue ?? "",
            size: json["size"]?.int64Value ?? 0,
            extension: json["extension"]?.stringValue,
            mimeType: json["mime_type"]?.stringValue,
            createdBy: json["created_by"]?.stringValue,
            createdAt: json["created_at"]?.intValue
        )
    }
}

/// Builds file objects for `inputs` / `files`.
public struct FileReference: Sendable {
    /// `{"type": kind, "transfer_method": "local_file", "upload_file_id": id}`.
    public static func localFile(uploadFileID: String, kind: FileKind) -> JSONValue {
        .object([
            "type": .string(kind.rawValue),
            "transfer_method": "local_file",
            "upload_file_id": .string(uploadFileID),
        ])
    }

    /// `{"type": kind, "transfer_method": "remote_url", "url": url}`.
    public static func remoteURL(_ url: String, kind: FileKind) -> JSONValue {
        .object(["type": .string(kind.rawValue), "transfer_method": "remote_url", "url": .string(url)])
    }
}

// MARK: - Run request / result

public struct RunRequest: Sendable {
    /// Picks the endpoint: workflow → `/workflows/run` (or `/workflows/{workflowID}/run`),
    /// completion → `/completion-messages`, chat family → `/chat-messages`.
    public var mode: AppMode
    public var inputs: [String: JSONValue]
    public var user: String
    public var responseMode: ResponseMode
    /// Chat query (required by chat apps; sent as "" when nil). Legacy `query` for completion apps.
    public var query: String?
    /// Pinned published workflow version (workflow: path; chatflow: body `workflow_id`).
    public var workflowID: String?
    /// Top-level `files` (`sys.files`).
    public var files: [JSONValue]?

    public init(mode: AppMode, inputs: [String: JSONValue], user: String, responseMode: ResponseMode = .streaming,
                query: String? = nil, workflowID: String? = nil, files: [JSONValue]? = nil) {
        self.mode = mode
        self.inputs = inputs
        self.user = user
        self.responseMode = responseMode
        self.query = query
        self.workflowID = workflowID
        self.files = files
    }
}

/// Identifiers learned when a run starts. Persist them before anything else: they are how a run is recovered.
public struct RunStarted: Sendable, Hashable {
    public var workflowRunID: String?
    public var taskID: String?
    public var messageID: String?

    public init(workflowRunID: String? = nil, taskID: String? = nil, messageID: String? = nil) {
        self.workflowRunID = workflowRunID
        self.taskID = taskID
        self.messageID = messageID
    }

    var isEmpty: Bool { workflowRunID == nil && taskID == nil && messageID == nil }
}

/// Token usage and price.
/// Token usage and price of one Dify run. `nil` means "Dify did not say", never zero.
///
/// Where the numbers come from is in ``source``: a completion/chat `message_end` (or blocking answer) carries
/// the whole split (`metadata.usage`, capture `llm/11_completion_streaming`); a streamed workflow's split and
/// price are summed over its LLM nodes' `node_finished` usage (capture `llm/22_llmflow_streaming`); a blocking
/// workflow answer and `GET /workflows/run/{id}` give `total_tokens` only (captures `llm/21`, `llm/23`).
public struct Usage: Sendable, Codable, Hashable {
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var totalTokens: Int?
    /// Exact decimal (parsed from Dify's decimal text, never through a floating-point sum).
    public var totalPrice: Decimal?
    public var currency: String?
    /// Seconds.
    public var latency: Double?
    /// Where these numbers come from (nil when not known, e.g. decoded from an old record).
    public var source: UsageSource?

    public init(promptTokens: Int? = nil, completionTokens: Int? = nil, totalTokens: Int? = nil,
                totalPrice: Decimal? = nil, currency: String? = nil, latency: Double? = nil, source: UsageSource? = nil) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
        self.totalPrice = totalPrice
        self.currency = currency
        self.latency = latency
        self.source = source
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
        case totalPrice = "total_price", currency, latency, source
    }

    public init(from decoder: any Decoder) throws {
        self.init(json: try JSONValue(from: decoder))
    }

    /// From a Dify `usage` object (`metadata.usage`): prices string or number.
    public init(json: JSONValue) {
        self.init(
            promptTokens: json["prompt_tokens"]?.intValue,
            completionTokens: json["completion_tokens"]?.intValue,
            totalTokens: json["total_tokens"]?.intValue,
            totalPrice: json["total_price"]?.decimalValue,
            currency: json["currency"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 },
            latency: json["latency"]?.lenientDouble,
            source: json["source"]?.stringValue.map(UsageSource.init(rawValue:))
        )
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(promptTokens, forKey: .promptTokens)
        try container.encodeIfPresent(completionTokens, forKey: .completionTokens)
        try container.encodeIfPresent(totalTokens, forKey: .totalTokens)
        // Prices as strings, as Dify does, to keep them exact.
        try container.encodeIfPresent(totalPrice.map { "\($0)" }, forKey: .totalPrice)
        try container.encodeIfPresent(currency, forKey: .currency)
        try container.encodeIfPresent(latency, forKey: .latency)
        try container.encodeIfPresent(source?.rawValue, forKey: .source)
    }
}

/// Where a run's ``Usage`` comes from. Public names, stored in the ledger (`usage.usage_source`).
public struct UsageSource: RawRepresentable, Sendable, Codable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// A completion/chat `metadata.usage` (streamed `message_end` or blocking answer): split and price as Dify gives them.
    public static let message = UsageSource(rawValue: "message")
    /// A streamed workflow: prompt/completion tokens and price summed over every LLM node execution's usage
    /// (`node_finished` → `outputs.usage` / `process_data.usage`), `total_tokens` from `workflow_finished`.
    public static let stream = UsageSource(rawValue: "stream")
    /// A blocking workflow answer: `total_tokens` only; split and price unknown.
    public static let blocking = UsageSource(rawValue: "blocking")
    /// A run found again by `GET /workflows/run/{id}`: `total_tokens` only; split and price unknown.
    public static let runDetail = UsageSource(rawValue: "run_detail")

    public var description: String { rawValue }
}

public struct RunResult: Sendable {
    public var mode: AppMode
    public var status: RunStatus
    /// Workflow outputs; for completion/chat `["answer": .string(answer)]`.
    public var outputs: [String: JSONValue]
    /// Completion/chat answer (after `message_replace`).
    public var answer: String?
    /// Workflow error text when failed.
    public var error: String?
    public var workflowRunID: String?
    public var taskID: String?
    public var messageID: String?
    public var conversationID: String?
    public var usage: Usage
    /// Seconds.
    public var elapsedTime: Double?
    /// `total_steps` when known (workflow).
    public var totalSteps: Int?
    /// `workflow_id` (version) when known.
    public var workflowID: String?
    /// Dify's clock: the run's `created_at` (from `workflow_started`, the blocking `data`, or the message events).
    public var createdAt: Date?
    /// Dify's clock: the `Date` header of the run response (for a stream, of its head, i.e. about when it started).
    public var serverDate: Date?
    /// Paused runs (`status == .paused`): the node ids waiting for a human (`paused_nodes`). Empty otherwise.
    public var pausedNodes: [String]
    /// Failed workflow runs (streaming): the top-level node whose `node_finished` had status `failed` (its title,
    /// else its node id; dify-api.md: "a node failure shows up as node_finished{status:failed} followed by
    /// workflow_finished{status:failed}"). Nil when unknown (blocking responses, run detail lookups).
    public var failedNode: String?

    public init(mode: AppMode, status: RunStatus, outputs: [String: JSONValue] = [:], answer: String? = nil,
                error: String? = nil, workflowRunID: String? = nil, taskID: String? = nil, messageID: String? = nil,
                conversationID: String? = nil, usage: Usage = Usage(), elapsedTime: Double? = nil,
                totalSteps: Int? = nil, workflowID: String? = nil, createdAt: Date? = nil, serverDate: Date? = nil,
                pausedNodes: [String] = [], failedNode: String? = nil) {
        self.mode = mode
        self.status = status
        self.outputs = outputs
        self.answer = answer
        self.error = error
        self.workflowRunID = workflowRunID
        self.taskID = taskID
        self.messageID = messageID
        self.conversationID = conversationID
        self.usage = usage
        self.elapsedTime = elapsedTime
        self.totalSteps = totalSteps
        self.workflowID = workflowID
        self.createdAt = createdAt
        self.serverDate = serverDate
        self.pausedNodes = pausedNodes
        self.failedNode = failedNode
    }

    /// True when the workflow paused for human input (Dify ≥ 1.13): the run exists and is waiting, not failed.
    public var isPaused: Bool { status == .paused }

    public var runStarted: RunStarted {
        RunStarted(workflowRunID: workflowRunID, taskID: taskID, messageID: messageID)
    }
}

// MARK: - Run detail / logs

/// `GET /workflows/run/{id}`.
public struct WorkflowRunDetail: Sendable {
    public var id: String
    public var workflowID: String?
    public var status: RunStatus
    /// Decoded from a JSON string (current Dify) or an object.
    public var inputs: [String: JSONValue]
    /// `{}` while running or paused; JSON-string form (old servers) is decoded.
    public var outputs: [String: JSONValue]
    public var error: String?
    public var totalSteps: Int?
    public var totalTokens: Int?
    public var createdAt: Date?
    public var finishedAt: Date?
    public var elapsedTime: Double?
    /// Dify's clock: the response's `Date` header.
    public var serverDate: Date?

    public init(id: String, workflowID: String? = nil, status: RunStatus, inputs: [String: JSONValue] = [:],
                outputs: [String: JSONValue] = [:], error: String? = nil, totalSteps: Int? = nil,
                totalTokens: Int? = nil, createdAt: Date? = nil, finishedAt: Date? = nil, elapsedTime: Double? = nil,
                serverDate: Date? = nil) {
        self.id = id
        self.workflowID = workflowID
        self.status = status
        self.inputs = inputs
        self.outputs = outputs
        self.error = error
        self.totalSteps = totalSteps
        self.totalTokens = totalTokens
        self.createdAt = createdAt
        self.finishedAt = finishedAt
        self.elapsedTime = elapsedTime
        self.serverDate = serverDate
    }

    init(json: JSONValue) throws {
        guard let id = json["id"]?.stringValue else { throw LenientDecodingError("run detail has no `id`") }
        self.init(
            id: id,
            workflowID: json["workflow_id"]?.stringValue,
            status: RunStatus(rawValue: json["status"]?.stringValue ?? "unknown"),
            inputs: Lenient.objectOrJSONString(json["inputs"]),
            outputs: Lenient.objectOrJSONString(json["outputs"]),
            error: json["error"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 },
            totalSteps: json["total_steps"]?.intValue,
            totalTokens: json["total_tokens"]?.intValue,
            createdAt: Lenient.date(json["created_at"]),
            finishedAt: Lenient.date(json["finished_at"]),
            elapsedTime: json["elapsed_time"]?.lenientDouble
        )
    }
}

/// Query for `GET /workflows/logs` (Dify `WorkflowAppLogQuery`: `keyword`, `status`, `created_at__before`,
/// `created_at__after` (ISO 8601, compared with the log row's `created_at`, Dify's clock, whole seconds),
/// `created_by_end_user_session_id`, `page` 1–99999, `limit` 1–100; dify-api.md §3).
public struct WorkflowLogsQuery: Sendable {
    public var keyword: String?
    /// `succeeded | failed | stopped` (string literals work: `status: "failed"`).
    public var status: RunStatus?
    public var createdAfter: Date?
    public var createdBefore: Date?
    /// `created_by_end_user_session_id` = the `user` string used for the run.
    public var endUserSessionID: String?
    public var page: Int
    public var limit: Int

    public init(keyword: String? = nil, status: RunStatus? = nil, createdAfter: Date? = nil, createdBefore: Date? = nil,
                endUserSessionID: String? = nil, page: Int = 1, limit: Int = 20) {
        self.keyword = keyword
        self.status = status
        self.createdAfter = createdAfter
        self.createdBefore = createdBefore
        self.endUserSessionID = endUserSessionID
        self.page = page
        self.limit = limit
    }

    var queryItems: [(String, String)] {
        var items: [(String, String)] = []
        if let keyword { items.append(("keyword", keyword)) }
        if let status { items.append(("status", status.rawValue)) }
        if let createdAfter { items.append(("created_at__after", Lenient.iso8601(createdAfter))) }
        if let createdBefore { items.append(("created_at__before", Lenient.iso8601(createdBefore))) }
        if let endUserSessionID { items.append(("created_by_end_user_session_id", endUserSessionID)) }
        items.append(("page", String(page)))
        items.append(("limit", String(limit)))
        return items
    }
}

public struct WorkflowLogsPage: Sendable {
    public var page: Int
    public var limit: Int
    public var total: Int
    public var hasMore: Bool
    public var data: [WorkflowLogEntry]
    /// Dify's clock: the response's `Date` header.
    public var serverDate: Date?

    init(json: JSONValue) throws {
        guard let items = json["data"]?.arrayValue else { throw LenientDecodingError("logs response has no `data`") }
        page = json["page"]?.intValue ?? 1
        limit = json["limit"]?.intValue ?? items.count
        total = json["total"]?.intValue ?? items.count
        hasMore = json["has_more"]?.boolValue ?? false
        data = try items.map(WorkflowLogEntry.init(json:))
    }
}

public struct WorkflowLogEntry: Sendable {
    public struct Run: Sendable {
        public var id: String
        public var version: String?
        public var status: RunStatus
        public var error: String?
        public var elapsedTime: Double?
        public var totalTokens: Int?
        public var totalSteps: Int?
        public var createdAt: Date?
        public var finishedAt: Date?
        public var exceptionsCount: Int?
        public var triggeredFrom: String?
    }

    public var id: String
    public var workflowRun: Run?
    public var createdFrom: String?
    public var createdByRole: String?
    public var endUserSessionID: String?
    public var endUserID: String?
    public var createdAt: Date?

    init(json: JSONValue) throws {
        guard let id = json["id"]?.stringValue else { throw LenientDecodingError("log entry has no `id`") }
        self.id = id
        if let run = json["workflow_run"], let runID = run["id"]?.stringValue {
            workflowRun = Run(
                id: runID,
                version: run["version"]?.stringValue,
                status: RunStatus(rawValue: run["status"]?.stringValue ?? "unknown"),
                error: run["error"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 },
                elapsedTime: run["elapsed_time"]?.lenientDouble,
                totalTokens: run["total_tokens"]?.intValue,
                totalSteps: run["total_steps"]?.intValue,
                createdAt: Lenient.date(run["created_at"]),
                finishedAt: Lenient.date(run["finished_at"]),
                exceptionsCount: run["exceptions_count"]?.intValue,
                triggeredFrom: run["triggered_from"]?.stringValue
            )
        } else {
            workflowRun = nil
        }
        createdFrom = json["created_from"]?.stringValue
        createdByRole = json["created_by_role"]?.stringValue
        endUserSessionID = json["created_by_end_user"]?["session_id"]?.stringValue
        endUserID = json["created_by_end_user"]?["id"]?.stringValue
        createdAt = Lenient.date(json["created_at"])
    }
}

// MARK: - Lenient helpers

enum Lenient {
    /// Object, or a JSON string holding an object; `[:]` otherwise.
    static func objectOrJSONString(_ value: JSONValue?) -> [String: JSONValue] {
        switch value {
        case .object(let object)?: return object
        case .string(let text)?:
            if let parsed = try? JSONValue.parse(text), case .object(let object) = parsed { return object }
            return [:]
        default: return [:]
        }
    }

    /// Epoch seconds (int/double/numeric string), RFC 822/1123, or ISO 8601.
    static func date(_ value: JSONValue?) -> Date? {
        guard let value, !value.isNull else { return nil }
        if let seconds = value.doubleValue { return Date(timeIntervalSince1970: seconds) }
        guard let text = value.stringValue?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        if let seconds = Double(text) { return Date(timeIntervalSince1970: seconds) }
        return httpDate(text) ?? iso8601Date(text)
    }

    static func httpDate(_ text: String) -> Date? {
        if let date = IMFFixdate.parse(text) { return date }
        let formats = ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEE, dd MMM yyyy HH:mm:ss Z", "EEEE, dd-MMM-yy HH:mm:ss zzz",
                       "EEE MMM d HH:mm:ss yyyy"]
        for format in formats {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            if let date = formatter.date(from: text) { return date }
        }
        return nil
    }

    static func iso8601Date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        // Naive "2026-11-27 05:28:01.287582" style: treat as UTC.
        let plain = DateFormatter()
        plain.locale = Locale(identifier: "en_US_POSIX")
        plain.timeZone = TimeZone(identifier: "UTC")
        for format in ["yyyy-MM-dd HH:mm:ss.SSSSSS", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss"] {
            plain.dateFormat = format
            if let date = plain.date(from: text) { return date }
        }
        return nil
    }

    static func iso8601(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle())
    }
}
