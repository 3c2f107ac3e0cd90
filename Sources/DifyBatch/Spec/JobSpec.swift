import Foundation

/// One job: which inbox feeds which Dify app and where results go. Loaded from `jobs/*.yaml` by
/// ``JobSpecLoader``; every path here is absolute. Defaults are given on each property.
public struct JobSpec: Sendable, Equatable {
    /// The job name (default: the spec file name without extension). Letters, digits, `-`, `_`, `.`.
    public var name: String
    /// The spec file, absolute.
    public var specPath: String
    /// sha256 of the spec file's bytes.
    public var specHash: String
    /// The folder watched for documents.
    public var inbox: String
    /// The folder results are written to.
    public var outbox: String
    public var dify: DifySettings
    public var match: MatchRules
    /// Documents in flight at once for this job (default 4, 1…256).
    public var concurrency: Int
    /// Requests per minute to Dify for this job (default: unlimited).
    public var rateLimit: Int?
    public var retry: RetryPolicy
    /// One run's deadline (default 10m).
    public var timeout: Duration
    /// How long recovery polls a run whose outcome was lost before giving up on it (default 30m).
    public var recoverDeadline: Duration
    /// What happens to a source file after its result is written (default: move to `archive`).
    public var afterSuccess: AfterSuccess
    /// Where `after_success: move` puts sources (default `<inbox>/../done`), keeping their relative paths.
    public var archive: String
    /// Where sources of dead or rejected documents are moved (default: nowhere, they stay in the inbox).
    public var failedFolder: String?
    /// What happens to a run whose outcome could not be established (default: park it as `unresolved`).
    public var recovery = RecoverySettings()
    /// Text extractor overrides by lower-case extension without a dot (`extractors:`; default none).
    public var extractors: [String: ExtractorCommand] = [:]
    /// `rows: true` (issue 13): every `.csv`/`.tsv`/`.jsonl`/`.ndjson` inbox file is a table whose rows are one
    /// run each, its header naming the app's input variables (default false: each file is one run).
    public var rows = false
    /// Documents in flight at once for this job across all processes sharing a PostgreSQL ledger (default:
    /// no cap beyond each process's `concurrency`). Issue 15.
    public var maxActive: Int? = nil

    public enum AfterSuccess: String, Sendable, Equatable, CaseIterable {
        case move, keep, delete
    }
}

/// How to reach the Dify app.
public struct DifySettings: Sendable, Equatable {
    /// Base URL of the service API, ending in `/v1` (required).
    public var baseURL: String
    /// Where the API key comes from: an environment variable (default `DIFY_API_KEY`) or a file.
    public var apiKey: APIKeySource
    /// Which app mode to call (default `auto`: ask `GET /info`).
    public var app: AppSelection
    /// The input variable that receives the file (default: detected from `GET /parameters`).
    public var fileInput: String?
    /// Extra static inputs sent with every run (default none).
    public var inputs: [String: SpecValue]
    /// `streaming` (default) or `blocking`.
    public var responseMode: String
    /// The Dify end-user id used for upload and run (default `dify-batch-<job name>`).
    public var user: String
    /// The query for chat apps (default "Process the attached document.").
    public var query: String?
    /// Pin a published workflow version (`/workflows/{id}/run`).
    public var workflowID: String?
    /// A PEM file of CA certificates trusted for an HTTPS `base_url` in addition to the system store (an internal
    /// CA); absolute, resolved against the spec's folder. Default none (issue 16).
    public var caFile: String? = nil
    /// The text-input/paragraph variable that receives each document's text (default: detected when the app
    /// has no file variable and exactly one text variable the spec does not fill).
    public var textInput: String? = nil
    /// Whether the file is also sent in the run's top-level `files` (default `auto`: when the app's
    /// `file_upload` feature accepts its type and no file variable takes it).
    public var attach: AttachMode = .auto

    public enum AttachMode: String, Sendable, Equatable, CaseIterable {
        case auto, always, never
    }

    public enum AppSelection: String, Sendable, Equatable, CaseIterable {
        case auto, workflow, completion, chat
    }
}

/// Where an API key is read from. The key itself is never part of a spec.
public enum APIKeySource: Sendable, Equatable, CustomStringConvertible {
    case environment(String)
    case file(String)

    /// Reads the key. Errors name the variable or file, never the key.
    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        switch self {
        case .environment(let name):
            guard let value = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else {
                throw SpecError(file: "environment", keyPath: "dify.api_key_env",
                                message: "the environment variable \(name) is not set or empty; export it with the app's API key (Dify → app → API Access)")
            }
            return value
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path),
                  let text = String(data: data, encoding: .utf8) else {
                throw SpecError(file: path, keyPath: "dify.api_key_file", message: "cannot read the API key file; check the path and its permissions")
            }
            let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !value.isEmpty else {
                throw SpecError(file: path, keyPath: "dify.api_key_file", message: "the API key file is empty")
            }
            return value
        }
    }

    public var description: String {
        switch self {
        case .environment(let name): return "env \(name)"
        case .file(let path): return "file \(path)"
        }
    }
}

/// Which inbox files a job takes and when.
public struct MatchRules: Sendable, Equatable {
    /// Glob patterns on the file name or relative path (default: every file).
    public var include: [String]
    /// Glob patterns excluded (default none).
    public var exclude: [String]
    /// Descend into sub-folders (default true).
    public var recursive: Bool
    /// A file is taken once its size and mtime are unchanged this long (default 2s).
    public var settle: Duration
    /// Largest file accepted (default: Dify's limit for the file's type from `GET /parameters`).
    public var maxSize: Int64?
    /// `run` gives up on a file still changing after this long: `rejected` with code `never_settled`, exit 1
    /// (default 1h; issue 16). `watch` keeps waiting and logs it at growing intervals.
    public var settleTimeout: Duration = .seconds(3600)
}

/// Retry with exponential backoff and full jitter.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts before a document is `dead` (default 5). Backpressure (429 too_many_requests) does not count.
    public var maxAttempts: Int
    /// The first delay (default 1s).
    public var baseDelay: Duration
    /// The largest delay (default 5m).
    public var maxDelay: Duration
    /// `retry.max_backpressure` (default 15m): after this much continuous 429 / concurrency-cap backpressure `run`
    /// stops the job with exit 4 (work kept); `watch` keeps waiting at `max_delay` (issue 10).
    public var maxBackpressure: Duration

    public init(maxAttempts: Int = 5, baseDelay: Duration = .seconds(1), maxDelay: Duration = .seconds(300),
                maxBackpressure: Duration = .seconds(900)) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxBackpressure = maxBackpressure
    }
}

/// `recovery:` — what to do with a sent run whose outcome could not be established (issue 10).
public struct RecoverySettings: Sendable, Equatable {
    public enum OnUnknown: String, Sendable, Equatable, CaseIterable {
        /// Park the document as `unresolved` (terminal for `run`, exit 1); `dify-batch retry --state unresolved` re-sends it.
        case park
        /// Send it again at once (it may run twice in Dify; counted in `duplicate_runs`, capped by `max_attempts`).
        case resend
    }

    /// `recovery.on_unknown` (default `park`).
    public var onUnknown: OnUnknown

    public init(onUnknown: OnUnknown = .park) { self.onUnknown = onUnknown }
}

/// A value from a spec's `inputs` map.
public indirect enum SpecValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([SpecValue])
    case map([String: SpecValue])
}
