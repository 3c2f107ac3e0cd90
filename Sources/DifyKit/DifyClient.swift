import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A client for Dify's service API (`/v1`), scoped to one app by its API key.
///
/// All calls are cancellable (task cancellation reaches the HTTP request) and bounded by
/// ``Timeouts``: connect (via ``makeHTTPClient(timeouts:maxConnectionsPerHost:)``), response head,
/// stream idle (SSE), and a total deadline, kept by one timer per request on its event loop (``RequestWatchdog``).
public struct DifyClient: Sendable {
    public struct Timeouts: Sendable, Hashable {
        /// TCP connect. Enforced by the `HTTPClient` configuration (see ``DifyClient/makeHTTPClient(timeouts:maxConnectionsPerHost:)``);
        /// for a caller-made client a connect stall is still bounded by `responseHead`.
        public var connect: Duration
        /// Wait for the response head of GETs, JSON POSTs and streaming runs. Blocking runs and uploads wait up to
        /// `total` instead: Dify sends a blocking run's head only when the run ends, and an upload's head after the body.
        public var responseHead: Duration
        /// Longest silence allowed in an SSE stream (Dify pings every 10 s).
        public var streamIdle: Duration
        /// Hard deadline for a whole call, body included.
        public var total: Duration

        public init(connect: Duration = .seconds(10), responseHead: Duration = .seconds(60),
                    streamIdle: Duration = .seconds(45), total: Duration = .seconds(600)) {
            self.connect = connect
            self.responseHead = responseHead
            self.streamIdle = streamIdle
            self.total = total
        }
    }

    public struct Configuration: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
        /// e.g. "http://127.0.0.1:8080/v1" (a trailing slash is tolerated).
        public var baseURL: String
        /// The app API key. Never logged and never part of any description or error text.
        public var apiKey: String
        public var timeouts: Timeouts
        /// Request logging: at trace level one line per HTTP request (method, path, status, duration); at debug
        /// level failures. Never headers, keys or bodies.
        public var logger: Logger
        /// Sent as `User-Agent`.
        public var userAgent: String

        public init(baseURL: String, apiKey: String, timeouts: Timeouts = .init()) {
            self.baseURL = baseURL
            self.apiKey = apiKey
            self.timeouts = timeouts
            self.logger = Logger(label: "DifyKit")
            self.userAgent = "DifyKit/\(DifyKitVersion.string)"
        }

        public var description: String {
            "DifyClient.Configuration(baseURL: \(baseURL), apiKey: <redacted>, timeouts: \(timeouts))"
        }

        public var debugDescription: String { description }

        public var customMirror: Mirror {
            Mirror(self, children: ["baseURL": baseURL, "apiKey": "<redacted>", "timeouts": timeouts],
                   displayStyle: .struct)
        }

        var trimmedBaseURL: String {
            var url = baseURL.trimmingCharacters(in: .whitespaces)
            while url.hasSuffix("/") { url.removeLast() }
            return url
        }
    }

    public let configuration: Configuration
    let httpClient: HTTPClient
    /// What every request of this client shares, built once (issue 14).
    let parts: RequestParts

    /// The caller owns `httpClient` and shuts it down.
    public init(configuration: Configuration, httpClient: HTTPClient) {
        self.configuration = configuration
        self.httpClient = httpClient
        self.parts = RequestParts(configuration)
    }

    /// The base URL without trailing slashes and the headers every request sends (Authorization, User-Agent,
    /// Accept), made once per client instead of once per request. Its description and mirror never show the key.
    struct RequestParts: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
        var description: String { "RequestParts(baseURL: \(baseURL), headers: <redacted>)" }
        var debugDescription: String { description }
        var customMirror: Mirror { Mirror(self, children: ["baseURL": baseURL], displayStyle: .struct) }

        let baseURL: String
        let headers: HTTPHeaders
        /// POST requests (URL parsed, headers set, no body) for the paths every document uses (upload, runs),
        /// when the base URL parses; a request is a copy with its body (and extra headers) set.
        let posts: [String: HTTPClient.Request]

        init(_ configuration: Configuration) {
            baseURL = configuration.trimmedBaseURL
            headers = [
                "Authorization": "Bearer \(configuration.apiKey)",
                "User-Agent": configuration.userAgent,
                "Accept": "application/json, text/event-stream",
            ]
            var posts: [String: HTTPClient.Request] = [:]
            for path in ["/files/upload", "/workflows/run", "/completion-messages", "/chat-messages"] {
                posts[path] = try? HTTPClient.Request(url: baseURL + path, method: .POST, headers: headers)
            }
            self.posts = posts
        }
    }

    /// An `HTTPClient` suited to this client: connect timeout from `timeouts.connect`, no read timeout
    /// (DifyKit enforces stream idleness itself), and a per-host pool large enough for `maxConnectionsPerHost`
    /// concurrent calls (AHC silently queues beyond its soft limit). The caller must shut it down.
    ///
    /// A failed connection attempt fails the request at once (AHC's default is to retry connecting with backoff
    /// until the connect timeout, so a refused port looked like a 10 s hang); the pipeline's own backoff retries.
    /// `trust` chooses the CA certificates HTTPS servers are verified against (default: the system's).
    public static func makeHTTPClient(timeouts: Timeouts = .init(), maxConnectionsPerHost: Int = 16,
                                      trust: TLSTrust = .system) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: timeAmount(timeouts.connect), read: nil)
        configuration.connectionPool = HTTPClient.Configuration.ConnectionPool(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, maxConnectionsPerHost))
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.decompression = .disabled
        configuration.tlsConfiguration = trust.tlsConfiguration()
        // No request spans: DifyKit does not trace, and a span per request costs CPU even with a no-op tracer.
        configuration.tracing.tracer = nil
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    // MARK: - Public API

    /// `GET /info`.
    public func info() async throws -> AppInfo {
        let json = try await getJSON(path: "/info")
        return try decode(json, endpoint: "GET /info", isRun: false) { try AppInfo(json: $0) }
    }

    /// `GET /parameters`.
    public func parameters() async throws -> AppParameters {
        let json = try await getJSON(path: "/parameters")
        return try decode(json, endpoint: "GET /parameters", isRun: false) { try AppParameters(json: $0) }
    }

    /// `GET /workflows/run/{id}`. A 404 `not_found` is thrown as a ``DifyError`` (HTTP 404); it is "not visible now",
    /// not proof that the run never existed (a proxy or a replica lag can answer it for a run that exists).
    /// `serverDate` is the response's `Date` header.
    public func workflowRunDetail(id: String) async throws -> WorkflowRunDetail {
        let path = "/workflows/run/\(Self.pathComponent(id))"
        let (json, date) = try await getJSONWithDate(path: path)
        var detail = try decode(json, endpoint: "GET \(path)", isRun: false) { try WorkflowRunDetail(json: $0) }
        detail.serverDate = date
        detail.error = detail.error.map(redact)
        return detail
    }

    /// `GET /workflows/logs`: one page, newest first. Dify filters `created_at__after/__before` against the log row's
    /// `created_at` in its own clock (whole seconds), so build the window from ``DifyError/serverDate``,
    /// ``RunResult/serverDate`` or ``UploadedFile/createdAt``, not the local clock. `serverDate` is the `Date` header.
    public func workflowLogs(_ query: WorkflowLogsQuery) async throws -> WorkflowLogsPage {
        let (json, date) = try await getJSONWithDate(path: "/workflows/logs", query: query.queryItems)
        var page = try decode(json, endpoint: "GET /workflows/logs", isRun: false) { try WorkflowLogsPage(json: $0) }
        page.serverDate = date
        return page
    }

    /// Every entry matching `query`, following `has_more` from `query.page` on, at most `maxPages` pages
    /// (default 50, i.e. 5,000 entries at `limit` 100). Throws the first page error; the returned entries are
    /// newest first as Dify lists them (entries may repeat across pages if runs finish while paging).
    public func allWorkflowLogs(_ query: WorkflowLogsQuery, maxPages: Int = 50) async throws -> [WorkflowLogEntry] {
        var query = query
        var entries: [WorkflowLogEntry] = []
        for _ in 0..<max(1, maxPages) {
            let page = try await workflowLogs(query)
            entries += page.data
            guard page.hasMore, !page.data.isEmpty else { break }
            query.page += 1
        }
        return entries
    }

    /// `POST /workflows/tasks/{task_id}/stop` (takes the task id, not the run id).
    public func stopWorkflowTask(taskID: String, user: String) async throws {
        _ = try await postJSON(path: "/workflows/tasks/\(Self.pathComponent(taskID))/stop", body: ["user": .string(user)])
    }

    /// `POST /completion-messages/{task_id}/stop`.
    public func stopCompletionTask(taskID: String, user: String) async throws {
        _ = try await postJSON(path: "/completion-messages/\(Self.pathComponent(taskID))/stop",
                               body: ["user": .string(user)])
    }

    /// `POST /chat-messages/{task_id}/stop`.
    public func stopChatTask(taskID: String, user: String) async throws {
        _ = try await postJSON(path: "/chat-messages/\(Self.pathComponent(taskID))/stop", body: ["user": .string(user)])
    }

    // MARK: - Plumbing

    struct Exchange: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    func url(_ path: String, query: [(String, String)] = []) -> String {
        var url = parts.baseURL + path
        if !query.isEmpty {
            url += "?" + query.map { "\(Self.queryComponent($0.0))=\(Self.queryComponent($0.1))" }.joined(separator: "&")
        }
        return url
    }

    static func pathComponent(_ value: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    static func queryComponent(_ value: String) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+?#")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    /// An AHC request for `path` (and `query`) with the client's headers, then `extra`. Throws AHC's
    /// `invalidURL`/`emptyHost`/`emptyScheme` for a malformed base URL (nothing is sent).
    func httpRequest(_ method: HTTPMethod, path: String, query: [(String, String)] = [], headers extra: HTTPHeaders = [:],
                     body: HTTPClient.Body? = nil) throws -> HTTPClient.Request {
        if method == .POST, query.isEmpty, var request = parts.posts[path] {
            request.headers.add(contentsOf: extra)
            request.body = body
            return request
        }
        var headers = parts.headers
        headers.add(contentsOf: extra)
        return try HTTPClient.Request(url: url(path, query: query), method: method, headers: headers, body: body)
    }

    static let jsonContentType: HTTPHeaders = ["Content-Type": "application/json"]

    /// The value as compact JSON with sorted keys (``JSONText``, or `JSONEncoder` for what it leaves out).
    static func jsonBody(_ value: JSONValue) -> ByteBuffer {
        if let bytes = JSONText.bytes(value, pretty: false) { return ByteBuffer(bytes: bytes) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return ByteBuffer(data: data)
    }

    func getJSON(path: String, query: [(String, String)] = []) async throws -> JSONValue {
        try await getJSONWithDate(path: path, query: query).json
    }

    /// A GET's JSON body and the response's `Date` header.
    func getJSONWithDate(path: String, query: [(String, String)] = []) async throws -> (json: JSONValue, date: Date?) {
        let endpoint = "GET \(path)"
        let exchange = try await perform(endpoint: endpoint, isRun: false, headTimeout: configuration.timeouts.responseHead) {
            try httpRequest(.GET, path: path, query: query)
        }
        return (try parseSuccess(exchange, endpoint: endpoint, isRun: false), Self.serverDate(exchange.headers))
    }

    func postJSON(path: String, body: JSONValue) async throws -> JSONValue {
        let endpoint = "POST \(path)"
        let exchange = try await perform(endpoint: endpoint, isRun: false, headTimeout: configuration.timeouts.responseHead) {
            try httpRequest(.POST, path: path, headers: Self.jsonContentType, body: .byteBuffer(Self.jsonBody(body)))
        }
        return try parseSuccess(exchange, endpoint: endpoint, isRun: false)
    }

    /// Builds and sends a request and collects the whole response (at most `limit` bytes kept), under the total
    /// deadline and `headTimeout` (nil: the head may take the whole call).
    func perform(endpoint: String, isRun: Bool, headTimeout: Duration?, limit: Int = 64 * 1024 * 1024,
                 context: RequestContext = RequestContext(),
                 _ request: () throws -> HTTPClient.Request) async throws -> Exchange {
        try await guarded(endpoint: endpoint, isRun: isRun, context: context) {
            try await collect(try request(), context: context, headTimeout: headTimeout, limit: limit)
        }
    }

    /// Sends `request` through a ``CollectingDelegate`` under a ``RequestWatchdog``; cancelling the calling task
    /// cancels the request. Errors are AHC's, the watchdog's or the request body's, unmapped.
    func collect(_ request: HTTPClient.Request, context: RequestContext, headTimeout: Duration?,
                 limit: Int) async throws -> Exchange {
        let eventLoop = httpClient.eventLoopGroup.any()
        let watchdog = RequestWatchdog(eventLoop: eventLoop, context: context, total: configuration.timeouts.total,
                                       head: headTimeout, idle: nil)
        let task = httpClient.execute(request: request, delegate: CollectingDelegate(watchdog: watchdog, limit: limit),
                                      eventLoop: .delegate(on: eventLoop), deadline: nil, logger: nil)
        watchdog.attach(task)
        return try await withTaskCancellationHandler {
            try await task.futureResult.get()
        } onCancel: {
            task.cancel()
        }
    }

    func parseSuccess(_ exchange: Exchange, endpoint: String, isRun: Bool) throws -> JSONValue {
        guard (200..<300).contains(exchange.status) else {
            throw httpError(status: exchange.status, headers: exchange.headers, body: exchange.body,
                            endpoint: endpoint, isRun: isRun)
        }
        do {
            return try Self.parseJSON(exchange.body)
        } catch {
            let snippet = Self.redactedSnippet(exchange.body, apiKey: configuration.apiKey)
            throw DifyError(
                code: .decoding, httpStatus: exchange.status,
                message: redact("HTTP \(exchange.status) response is not JSON: \(snippet)"),
                endpoint: endpoint, classification: isRun ? .ambiguous : .permanent, runMayHaveStarted: isRun,
                serverDate: Self.serverDate(exchange.headers))
        }
    }

    /// A response body's JSON: ``SelectiveJSONParser`` (the values `JSONDecoder` gives, without Foundation), and
    /// `JSONValue.parse` for what it rejects (so the error is Foundation's).
    static func parseJSON(_ body: ByteBuffer) throws -> JSONValue {
        let fast = body.withUnsafeReadableBytes { raw in
            SelectiveJSONParser.parse(raw.bindMemory(to: UInt8.self), selection: .all)
        }
        if let fast { return fast }
        return try JSONValue.parse(Data(buffer: body))
    }

    func decode<T>(_ json: JSONValue, endpoint: String, isRun: Bool, _ make: (JSONValue) throws -> T) throws -> T {
        do {
            return try make(json)
        } catch {
            throw DifyError(code: .decoding, httpStatus: 200, message: redact("unexpected response shape: \(error)"),
                            endpoint: endpoint, classification: isRun ? .ambiguous : .permanent,
                            runMayHaveStarted: isRun)
        }
    }

    func redact(_ text: String) -> String { Redactor.redact(text, key: configuration.apiKey) }

    /// Builds the error for a non-2xx response (JSON `{code,message,status}`, JSON without code, HTML or empty).
    func httpError(status: Int, headers: HTTPHeaders, body: ByteBuffer, endpoint: String, isRun: Bool,
                   runStarted: RunStarted? = nil) -> DifyError {
        Self.httpError(status: status, headers: headers, body: body, endpoint: endpoint, isRun: isRun,
                       runStarted: runStarted, apiKey: configuration.apiKey, baseURL: configuration.trimmedBaseURL)
    }

    /// `baseURL`, when given, lets a 404 without a Dify error code name a missing `/v1`.
    static func httpError(status: Int, headers: HTTPHeaders, body: ByteBuffer, endpoint: String, isRun: Bool,
                          runStarted: RunStarted? = nil, apiKey: String, baseURL: String? = nil,
                          now: Date = Date()) -> DifyError {
        func redact(_ text: String) -> String { Redactor.redact(text, key: apiKey) }
        let serverDate = Self.serverDate(headers)
        // An HTTP-date Retry-After is measured against the server's own clock when it sent one.
        let retryAfter = RetryAfter.parse(headers.first(name: "Retry-After"), now: serverDate ?? now)
        let contentType = headers.first(name: "Content-Type") ?? ""
        var difyCode: String?
        var message: String
        var snippet: String?
        let json = try? JSONValue.parse(Data(buffer: body))
        // Dify's error shape is `{"code","message","status"}` (libs/external_api.py); anything else is not Dify's.
        let isDifyJSON = json?["code"]?.stringValue != nil && json?["message"]?.stringValue != nil
        if let json, json.objectValue != nil {
            difyCode = json["code"]?.stringValue ?? "unknown"
            let text = json["message"]?.stringValue ?? json["error"]?.stringValue ?? json["detail"]?.stringValue ?? ""
            message = text.isEmpty ? "HTTP \(status) \(difyCode ?? "unknown") (no message)" : text
            if !isDifyJSON { snippet = Self.redactedSnippet(body, apiKey: apiKey) }
        } else if body.readableBytes == 0 {
            message = "HTTP \(status) with an empty body (likely from a proxy or gateway in front of Dify)"
        } else {
            let kind = contentType.isEmpty ? "non-JSON" : contentType.split(separator: ";")[0].description
            message = "HTTP \(status) with a \(kind) body, likely from a proxy or gateway in front of Dify: "
                + Self.htmlSummary(body, apiKey: apiKey)
            snippet = Self.redactedSnippet(body, apiKey: apiKey)
        }
        var backpressureSource: BackpressureSource?
        if status == 429 {
            if difyCode == "too_many_requests" && isDifyJSON {
                backpressureSource = .difyConcurrencyLimit
            } else if !isDifyJSON {
                backpressureSource = .gatewayRateLimit
                message = "HTTP 429 rate limit from a gateway or CDN in front of Dify (not Dify's concurrency cap); "
                    + "body: \(snippet ?? "(empty)")"
            }
        }
        // Dify's other 429 (`rate_limit_error`, a quota) has no hint; a non-Dify body gets the status hint.
        let quota429 = status == 429 && isDifyJSON && difyCode != "too_many_requests"
        // A 404 at the API root names a missing /v1 instead (issue 16).
        let missingV1 = Self.missingAPIPathHint(status: status, difyCode: isDifyJSON ? difyCode : nil, baseURL: baseURL)
        if let hint = missingV1 {
            message = "HTTP \(status) at \(endpoint.split(separator: " ").last ?? ""): \(hint)"
        } else if !quota429, let hint = Self.hint(status: status, difyCode: isDifyJSON ? difyCode : nil) {
            message += " — \(hint)"
        }
        let classification = missingV1 != nil ? .configuration : ErrorClassifier.classify(
            status: status, difyCode: difyCode, message: message, isRun: isRun, inStream: false)
        // A 4xx answer to a run POST comes before any event: Dify (or a proxy) refused the request, no run exists.
        let runMayHaveStarted = isRun && !(400..<500).contains(status)
        return DifyError(code: .http, httpStatus: status, difyCode: difyCode, message: redact(message),
                         endpoint: endpoint, retryAfter: retryAfter, runStarted: runStarted, requestSent: true,
                         classification: classification, runMayHaveStarted: runMayHaveStarted,
                         serverDate: serverDate, backpressureSource: backpressureSource, bodySnippet: snippet)
    }

    /// The response's `Date` header (RFC 9110 IMF-fixdate, also the obsolete forms), i.e. Dify's clock.
    static func serverDate(_ headers: HTTPHeaders) -> Date? {
        headers.first(name: "Date").flatMap { Lenient.httpDate(ASCIIText.trimmingSpaces($0)) }
    }

    /// The first `limit` characters of a body, whitespace collapsed, with the API key redacted BEFORE cutting (so a
    /// key straddling the cut cannot leak a prefix).
    static func redactedSnippet(_ body: ByteBuffer, apiKey: String, limit: Int = 200) -> String {
        Redactor.redactThenCut(String(decoding: body.readableBytesView, as: UTF8.self), key: apiKey, limit: limit - 1)
    }

    /// Dify's service API lives under `/v1`; a base URL without it reaches the web app or API root, which answers
    /// 404 (an HTML page from Flask or nginx) for `/info`, `/parameters`, ... (seen against Dify 1.14.1 on :5001).
    static func missingAPIPathHint(status: Int, difyCode: String?, baseURL: String?) -> String? {
        guard status == 404 || status == 405, difyCode == nil || difyCode == "not_found" || difyCode == "unknown",
              let baseURL, let url = URL(string: baseURL) else { return nil }
        let path = url.path.hasSuffix("/") ? String(url.path.dropLast()) : url.path
        guard !path.hasSuffix("/v1") else { return nil }
        return "dify.base_url \(baseURL) does not end with /v1; Dify's service API is at \(baseURL)/v1 — set dify.base_url to that"
    }

    static func hint(status: Int, difyCode: String?) -> String? {
        switch difyCode {
        case "unauthorized"?: return "check the app API key"
        case "forbidden"?: return "the app or its API access is disabled, deleted or restricted"
        case "not_workflow_app"?, "not_chat_app"?, "app_unavailable"?:
            return "the endpoint does not match the app mode (see GET /info) or the app is not published"
        case "file_too_large"?: return "the file exceeds the server's upload limit (see GET /parameters)"
        case "too_many_requests"?: return "the app's concurrent-request cap was hit; lower concurrency and retry"
        case "provider_not_initialize"?: return "the app's model provider has no credentials"
        default: break
        }
        switch status {
        case 429: return "a gateway or CDN is rate-limiting this client; back off (honour Retry-After) and retry"
        case 413: return "request body too large for the server or proxy (client_max_body_size)"
        case 502, 503, 504: return "gateway error; the service may be restarting or overloaded"
        case 524: return "gateway timeout (Cloudflare 100 s); a run may still be executing"
        default: return nil
        }
    }

    /// `<title>` of an HTML page, else its text with tags stripped; the key is removed before the first 16 KiB
    /// are looked at and before the text is cut to 200 characters.
    static func htmlSummary(_ body: ByteBuffer, apiKey: String) -> String {
        let whole = Redactor.redact(String(decoding: body.readableBytesView, as: UTF8.self), key: apiKey)
        let text = String(whole.prefix(16 * 1024))
        if let open = text.range(of: "<title>", options: .caseInsensitive),
           let close = text.range(of: "</title>", options: .caseInsensitive, range: open.upperBound..<text.endIndex) {
            let title = text[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
            if !title.isEmpty { return "\"\(Redactor.redactThenCut(title, key: apiKey, limit: 200))\"" }
        }
        var stripped = ""
        var inTag = false
        for character in text {
            if character == "<" { inTag = true; stripped.append(" "); continue }
            if character == ">" { inTag = false; continue }
            if !inTag { stripped.append(character) }
        }
        return Redactor.redactThenCut(stripped, key: apiKey, limit: 200)
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        let nanos = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if nanos.overflow { return .nanoseconds(Int64.max) }
        return .nanoseconds(nanos.partialValue + attoseconds / 1_000_000_000)
    }
}
