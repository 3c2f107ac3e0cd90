import Foundation

/// How a caller should react to a ``DifyError``.
public enum ErrorClass: String, Sendable, Hashable, CaseIterable {
    /// Transient; safe to retry with backoff (uploads and GETs, or runs known not to have started).
    case retryable
    /// 429 `too_many_requests` (per-app concurrency cap): wait and retry; don't count it as an attempt.
    case backpressure
    /// A run request was sent and its outcome is unknown: recover (logs / run detail) before re-sending.
    case ambiguous
    /// Retrying the same request cannot help.
    case permanent
    /// Key, app or mode problem (401, 403, `not_workflow_app`, `not_chat_app`, `app_unavailable`,
    /// `provider_not_initialize`): alert an operator.
    case configuration
    /// 429 `rate_limit_error`, `provider_quota_exceeded`: resets with a quota period.
    case quota
    /// 400 "Invalid upload file": the file id is unknown to this key/user; re-upload, then retry.
    case invalidUploadFile
}

/// An error from ``DifyClient``. Never contains the API key.
public struct DifyError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Value: String, Sendable {
            case http, transport, timeout, streamStalled, streamEndedEarly, decoding, inStreamError, cancelled, fileAccess, invalidRequest
        }

        let value: Value

        /// The server answered with a non-success HTTP status.
        public static let http = Code(value: .http)
        /// Connection failed or broke.
        public static let transport = Code(value: .transport)
        /// Connect, response-head or total deadline exceeded.
        public static let timeout = Code(value: .timeout)
        /// No bytes within `streamIdle`. `runStarted` tells whether `workflow_started` came.
        public static let streamStalled = Code(value: .streamStalled)
        /// The stream closed without a terminal event.
        public static let streamEndedEarly = Code(value: .streamEndedEarly)
        /// A response could not be decoded.
        public static let decoding = Code(value: .decoding)
        /// The stream carried an `error` event.
        public static let inStreamError = Code(value: .inStreamError)
        /// The calling task was cancelled.
        public static let cancelled = Code(value: .cancelled)

        public var description: String { value.rawValue }
    }

    public var code: Code
    public var httpStatus: Int?
    /// Dify's `code` (`invalid_param`, `too_many_requests`, …); `"unknown"` for JSON without code; nil for HTML/empty.
    public var difyCode: String?
    /// Actionable text; never contains the API key.
    public var message: String
    /// For example `POST /workflows/run`.
    public var endpoint: String
    /// From `Retry-After` (seconds or HTTP-date).
    public var retryAfter: Duration?
    /// Ids known when the error happened (for recovery).
    public var runStarted: RunStarted?
    /// False when the request is known never to have left (connect failed).
    public var requestSent: Bool
    public var classification: ErrorClass
    /// A FACT for run requests (`POST /workflows/run`, `/completion-messages`, `/chat-messages`): false only when the
    /// answer proves that no run started — the request never left, or the server answered 4xx before any stream
    /// event (validation errors, 401/403, 404, 413, every 429 including Dify's concurrency cap and a gateway's
    /// rate limit). True for everything else on a sent run request: 5xx and gateway timeouts, a dropped connection,
    /// a stream that stalled or ended early, an in-stream `error` event, an undecodable 200. Always false for
    /// requests that are not runs. DifyKit never re-sends a run; the caller decides from this fact.
    public var runMayHaveStarted: Bool
    /// Dify's clock: the `Date` header of the HTTP response this error came from (nil when no response head was
    /// received). Use it, not the local clock, to search `/workflows/logs` (Dify stamps `created_at` with its time).
    public var serverDate: Date?
    /// Who is pushing back, for HTTP 429: ``BackpressureSource/difyConcurrencyLimit`` for Dify's JSON
    /// `too_many_requests`, ``BackpressureSource/gatewayRateLimit`` for a 429 whose body is not Dify's JSON
    /// (a CDN or gateway such as Cloudflare "error 1015"). nil otherwise (including Dify's `rate_limit_error` quota).
    public var backpressureSource: BackpressureSource?
    /// For an HTTP error whose body is not Dify's `{"code","message","status"}` JSON: the first 200 characters of
    /// the body (whitespace collapsed), with the API key redacted before cutting. nil for Dify JSON errors.
    public var bodySnippet: String?

    public init(code: Code, httpStatus: Int? = nil, difyCode: String? = nil, message: String, endpoint: String,
                retryAfter: Duration? = nil, runStarted: RunStarted? = nil, requestSent: Bool = true,
                classification: ErrorClass, runMayHaveStarted: Bool = false, serverDate: Date? = nil,
                backpressureSource: BackpressureSource? = nil, bodySnippet: String? = nil) {
        self.code = code
        self.httpStatus = httpStatus
        self.difyCode = difyCode
        self.message = message
        self.endpoint = endpoint
        self.retryAfter = retryAfter
        self.runStarted = runStarted
        self.requestSent = requestSent
        self.classification = classification
        self.runMayHaveStarted = runMayHaveStarted
        self.serverDate = serverDate
        self.backpressureSource = backpressureSource
        self.bodySnippet = bodySnippet
    }

    public var description: String {
        var parts = ["DifyError(\(code), \(classification.rawValue)) \(endpoint)"]
        if let httpStatus { parts.append("HTTP \(httpStatus)") }
        if let difyCode { parts.append("[\(difyCode)]") }
        var text = parts.joined(separator: " ") + ": " + message
        if let retryAfter { text += " (retry after \(retryAfter))" }
        if runMayHaveStarted { text += " (a run may have started)" }
        if let runStarted, !runStarted.isEmpty {
            text += " (workflow_run_id=\(runStarted.workflowRunID ?? "-"), task_id=\(runStarted.taskID ?? "-")"
            if let messageID = runStarted.messageID { text += ", message_id=\(messageID)" }
            text += ")"
        }
        return text
    }

    public var debugDescription: String { description }

    /// True if retrying is reasonable at all (retryable or backpressure).
    public var isRetryable: Bool { classification == .retryable || classification == .backpressure }
}

/// Who answered HTTP 429 (see ``DifyError/backpressureSource``).
public enum BackpressureSource: String, Sendable, Hashable {
    /// Dify's JSON `too_many_requests`: the app's cap on concurrent requests (`max_active_requests`) was hit.
    /// Dify sends no `Retry-After` with it (dify-api.md §7).
    case difyConcurrencyLimit
    /// A 429 whose body is not Dify's JSON: a CDN or gateway in front of Dify is rate-limiting this client
    /// (for example Cloudflare "error 1015", an HTML page). `Retry-After` may be present.
    case gatewayRateLimit
}

// MARK: - Classification

enum ErrorClassifier {
    static let configurationCodes: Set<String> = [
        "unauthorized", "forbidden", "not_workflow_app", "not_chat_app", "not_completion_app", "app_unavailable",
        "provider_not_initialize", "workflow_version_execution_not_allowed", "agent_not_published",
    ]
    static let quotaCodes: Set<String> = ["rate_limit_error", "provider_quota_exceeded"]

    /// Classifies an HTTP error or an in-stream `error` event.
    ///
    /// - `isRun`: the request was a run POST (workflow/completion/chat). A 5xx (JSON or HTML, incl. 502/503/504/524)
    ///   answering a run POST is **ambiguous**: Dify (or the proxy in front of it) may have started the run before
    ///   failing or timing out (a 524 typically means the run keeps going), and there is no idempotency key, so the
    ///   caller must look the run up (logs by `user` and time) before re-sending. For GET and upload it is retryable.
    /// - `inStream`: the error arrived as an SSE `error` event, i.e. the run is known to have ended; a 5xx there
    ///   (`internal_server_error`) is retryable because no run is left executing.
    static func classify(status: Int?, difyCode: String?, message: String, isRun: Bool, inStream: Bool) -> ErrorClass {
        if let code = difyCode {
            if code == "too_many_requests" { return .backpressure }
            if quotaCodes.contains(code) { return .quota }
            if configurationCodes.contains(code) { return .configuration }
            if code == "invalid_param", message.trimmingCharacters(in: .whitespacesAndNewlines) == "Invalid upload file" {
                return .invalidUploadFile
            }
            if code == "completion_request_error" {
                return isTransientProviderMessage(message) ? .retryable : .permanent
            }
        }
        guard let status else {
            // In-stream error without a status: fall back on 5xx-like codes.
            if difyCode == "internal_server_error" { return inStream ? .retryable : (isRun ? .ambiguous : .retryable) }
            return .permanent
        }
        switch status {
        case 401, 403: return .configuration
        case 429: return .backpressure
        case 408, 500...599:
            if inStream { return .retryable }
            return isRun ? .ambiguous : .retryable
        default: return .permanent
        }
    }

    /// Provider errors that are worth retrying: rate limits, timeouts, 5xx-like unavailability.
    static func isTransientProviderMessage(_ message: String) -> Bool {
        let text = message.lowercased()
        let markers = [
            "rate limit", "ratelimit", "rate_limit", "too many requests", "429", "timeout", "timed out", "time out",
            "server unavailable", "service unavailable", "unavailable", "internal server error", "overloaded",
            "bad gateway", "gateway", "502", "503", "504", "connection", "temporarily", "try again",
        ]
        return markers.contains { text.contains($0) }
    }

    /// Network failure / timeout: the outcome of a sent run POST is unknown.
    static func classifyTransport(isRun: Bool, requestSent: Bool) -> ErrorClass {
        (isRun && requestSent) ? .ambiguous : .retryable
    }
}

// MARK: - Retry-After

enum RetryAfter {
    /// `Retry-After`: delta-seconds or an HTTP-date (relative to `now`, which should be the response's own `Date`
    /// so that a skewed local clock does not distort it; past dates give zero).
    static func parse(_ value: String?, now: Date = Date()) -> Duration? {
        guard let raw = value?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
        if let seconds = Int64(raw) { return .seconds(max(0, seconds)) }
        if let seconds = Double(raw), seconds.isFinite { return .milliseconds(Int64(max(0, seconds) * 1000)) }
        guard let date = Lenient.httpDate(raw) else { return nil }
        let delta = date.timeIntervalSince(now)
        return .milliseconds(Int64(max(0, delta) * 1000))
    }
}

// MARK: - Redaction

/// Removes the API key from text that came from the network. Every cut of such text goes through
/// ``redactThenCut(_:key:limit:)``: the key is removed from the whole text first, so a cut can never leave a
/// prefix of the key behind (issue 11: an error page echoing `Authorization` was cut mid-key, then redacted).
public enum Redactor {
    /// Replaces every occurrence of the key (and so `Bearer <key>`) with `app-***`. Keys shorter than 4
    /// characters are left alone (they would match ordinary text).
    public static func redact(_ text: String, key: String) -> String {
        guard key.count >= 4 else { return text }
        return text.replacingOccurrences(of: key, with: "app-***")
    }

    /// Redacts `text`, collapses runs of white space to one space, and only then keeps at most `limit`
    /// characters (a cut text ends with `…`).
    public static func redactThenCut(_ text: String, key: String, limit: Int) -> String {
        let collapsed = redact(text, key: key).split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return collapsed.count > limit ? String(collapsed.prefix(max(0, limit))) + "…" : collapsed
    }
}

extension DifyError.Code {
    /// The local file to upload could not be opened or read.
    public static let fileAccess = DifyError.Code(value: .fileAccess)
    /// The request could not be built (for example an app mode with no known generate endpoint). Nothing was sent.
    public static let invalidRequest = DifyError.Code(value: .invalidRequest)
}
