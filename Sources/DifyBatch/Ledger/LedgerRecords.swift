import Foundation

/// A job as the ledger knows it.
public struct JobRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var name: String
    public var specPath: String
    public var specHash: String
    public var appMode: String?
    public var baseURL: String
    public var difyUser: String
    public var inbox: String
    public var outbox: String
    public var createdAt: Date
    public var updatedAt: Date
}

/// What a process tells the ledger about a job it is about to work on.
public struct JobRegistration: Sendable, Equatable {
    public var name: String
    public var specPath: String
    public var specHash: String
    public var baseURL: String
    public var difyUser: String
    public var inbox: String
    public var outbox: String

    public init(name: String, specPath: String, specHash: String, baseURL: String, difyUser: String, inbox: String, outbox: String) {
        self.name = name
        self.specPath = specPath
        self.specHash = specHash
        self.baseURL = baseURL
        self.difyUser = difyUser
        self.inbox = inbox
        self.outbox = outbox
    }
}

/// The last error recorded for a document.
public struct RecordedError: Sendable, Equatable, Codable {
    /// retryable | backpressure | ambiguous | permanent | configuration | quota | invalid_upload_file | rejected
    public var errorClass: String
    /// dify-batch's or Dify's error code (`file_too_large`, `invalid_param`, `empty_file`, ...).
    public var code: String?
    public var message: String
    public var httpStatus: Int?

    public init(errorClass: String, code: String?, message: String, httpStatus: Int? = nil) {
        self.errorClass = errorClass
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
    }
}

/// One version of one inbox file.
public struct DocumentRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var jobID: Int64
    public var jobName: String
    public var path: String
    public var sha256: String?
    public var size: Int64
    public var mtimeNanoseconds: Int64
    public var state: DocumentState
    public var attempts: Int
    public var nextAttemptAt: Date?
    public var uploadFileID: String?
    public var workflowRunID: String?
    public var messageID: String?
    public var taskID: String?
    public var runSentAt: Date?
    public var duplicateRuns: Int
    public var duplicateOf: Int64?
    public var outputPath: String?
    public var lastError: RecordedError?
    public var createdAt: Date
    public var updatedAt: Date
    public var finishedAt: Date?
    /// Run POSTs that may have started a run, across processes; capped by `retry.max_attempts`, never refunded (issue 10).
    public var runPosts: Int = 0
    /// The last run's outcome could not be established: the next send is counted in `duplicate_runs`.
    public var outcomeUnknown: Bool = false
    /// Dify's clock minus ours in milliseconds, learned from the upload's `created_at` (used to search the logs).
    public var difyClockOffsetMilliseconds: Int64? = nil
    /// When the run was first seen `paused` (awaiting human input).
    public var pausedAt: Date? = nil
    /// `st_dev` / `st_ino` of the file version as pinned (issue 11); nil for rows recorded before schema 3.
    public var device: UInt64? = nil
    public var inode: UInt64? = nil

    /// `(device, inode, size, mtime)` as recorded: what the file at ``path`` must still be before it is uploaded
    /// or disposed of.
    public var identity: FileIdentity {
        FileIdentity(device: device, inode: inode, size: size, mtimeNanoseconds: mtimeNanoseconds)
    }

    /// Dify's result is stored in the ledger; only local work (outbox, disposal) is left. Such a document is
    /// never sent to Dify again, also after `dify-batch retry`.
    public var resultStored: Bool = false
    /// Local failures (outbox, ledger, disposal) since the result was stored; they pace the local retries and are
    /// not counted in `attempts`.
    public var localFailures: Int = 0
    /// sha256 of the text sent in `dify.text_input` (nil for file inputs; issue 12).
    public var textSHA256: String? = nil
    /// That text's length in characters.
    public var textLength: Int? = nil
    /// For one row of a `rows: true` table file (whose `path` is `<file path>#<row>`): the file's document
    /// (issue 13); nil for files.
    public var rowOf: Int64? = nil
    /// The row's 1-based index among the table's data rows.
    public var rowIndex: Int? = nil
    /// The row's inputs as a JSON object (`sha256` is the sha256 of their canonical JSON).
    public var rowInputs: String? = nil
}

/// What the scanner needs to know about the newest version of a path.
public struct KnownFile: Sendable, Equatable {
    public var id: Int64
    public var size: Int64
    public var mtimeNanoseconds: Int64
    public var state: DocumentState
    /// nil for rows recorded before schema 3.
    public var device: UInt64?
    public var inode: UInt64?

    public init(id: Int64, size: Int64, mtimeNanoseconds: Int64, state: DocumentState, device: UInt64? = nil, inode: UInt64? = nil) {
        self.id = id
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
        self.state = state
        self.device = device
        self.inode = inode
    }

    public init(_ document: DocumentRecord) {
        self.init(id: document.id, size: document.size, mtimeNanoseconds: document.mtimeNanoseconds, state: document.state,
                  device: document.device, inode: document.inode)
    }

    /// The recorded identity (device/inode nil for old rows).
    public var identity: FileIdentity {
        FileIdentity(device: device, inode: inode, size: size, mtimeNanoseconds: mtimeNanoseconds)
    }
}

/// A new document version found by the scanner.
public struct NewDocument: Sendable, Equatable {
    public var jobID: Int64
    public var path: String
    public var sha256: String?
    public var size: Int64
    public var mtimeNanoseconds: Int64
    /// `pending` for work, `rejected` for bad input found before sending (then `error` says why).
    public var state: DocumentState
    public var error: RecordedError?
    /// One run per content per batch (issue 10 rule 6): a `pending` document whose content another document of the
    /// job is already processing (or, with `.processingOrSucceeded`, already succeeded with) is inserted waiting
    /// for it (`duplicate_of` set in the same transaction as the lookup); it is never claimed while that document
    /// is on its way, becomes `skipped` when it succeeds, and is claimed normally when it fails.
    public var sameContent: SameContent = .ignore

    public enum SameContent: Sendable, Equatable {
        case ignore, waitForProcessing, waitForProcessingOrSucceeded
    }
    /// `st_dev` / `st_ino` of the pinned file (nil when it was never opened, e.g. a rejected symlink).
    public var device: UInt64?
    public var inode: UInt64?
    /// Issue 13: the table file's document, the row's 1-based index and its inputs as a JSON object (rows only).
    public var rowOf: Int64? = nil
    public var rowIndex: Int? = nil
    public var rowInputs: String? = nil
    /// The outcome file already written for a document inserted finished (a `rejected` file's `.error.json`,
    /// written before its row so that a kill in between loses no outcome): recorded in the inserting statement.
    public var outputPath: String? = nil

    public init(jobID: Int64, path: String, sha256: String?, size: Int64, mtimeNanoseconds: Int64,
                state: DocumentState = .pending, error: RecordedError? = nil, device: UInt64? = nil, inode: UInt64? = nil) {
        self.jobID = jobID
        self.path = path
        self.sha256 = sha256
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
        self.state = state
        self.error = error
        self.device = device
        self.inode = inode
    }
}

/// One field to change on a document together with (or without) a state change.
public enum DocumentChange: Sendable, Equatable {
    case attempts(Int)
    case incrementAttempts
    case nextAttemptAt(Date?)
    case uploadFileID(String?)
    case workflowRunID(String?)
    case messageID(String?)
    case taskID(String?)
    case runSentAt(Date?)
    case incrementDuplicateRuns
    case duplicateOf(Int64?)
    case outputPath(String?)
    case lastError(RecordedError?)
    case finishedAt(Date?)
    case sha256(String?)
    case size(Int64)
    case mtimeNanoseconds(Int64)
    /// One more run POST that may start a run (issue 10's send budget).
    case incrementRunPosts
    case runPosts(Int)
    case duplicateRuns(Int)
    case outcomeUnknown(Bool)
    case difyClockOffsetMilliseconds(Int64?)
    case pausedAt(Date?)
    /// Size, mtime, device and inode at once (issue 11).
    case fileIdentity(FileIdentity)
    /// Issue 11: whether only local work is left (set by `storeResult`).
    case resultStored(Bool)
    case localFailures(Int)
    /// The text sent in `dify.text_input`: its sha256 and length in characters (issue 12).
    case text(sha256: String?, length: Int?)
}

/// The phase an attempt belongs to.
public enum AttemptPhase: String, Sendable, Codable, CaseIterable {
    case upload, run, recover
}

/// One HTTP call or phase made for a document.
public struct AttemptRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var documentID: Int64
    public var runID: Int64?
    public var phase: AttemptPhase
    public var startedAt: Date
    public var endedAt: Date?
    public var httpStatus: Int?
    public var difyCode: String?
    public var message: String?
    /// in_progress | ok | failed | retryable | backpressure | ambiguous | permanent | configuration | quota | invalid_upload_file | cancelled
    public var outcome: String
    /// A run that ended `failed`: the node Dify named as failing (title or node id); nil otherwise (issue 16).
    public var failedNode: String? = nil
}

/// How an attempt ended.
public struct AttemptResult: Sendable, Equatable {
    public var outcome: String
    public var httpStatus: Int?
    public var difyCode: String?
    public var message: String?
    /// A run that ended `failed`: the node that failed, when Dify named it.
    public var failedNode: String?

    public init(outcome: String, httpStatus: Int? = nil, difyCode: String? = nil, message: String? = nil, failedNode: String? = nil) {
        self.outcome = outcome
        self.httpStatus = httpStatus
        self.difyCode = difyCode
        self.message = message
        self.failedNode = failedNode
    }

    public static let ok = AttemptResult(outcome: "ok")
}

/// Tokens and money for one Dify run, with Dify's field names in JSON.
public struct UsageAmounts: Sendable, Equatable, Codable {
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var totalTokens: Int?
    public var totalPrice: Decimal?
    public var currency: String?
    public var latencyMilliseconds: Int?
    /// Where Dify's numbers came from (DifyKit's `UsageSource`: `message`, `stream`, `blocking`, `run_detail`);
    /// `blocking` and `run_detail` carry tokens only, so the split and the price are nil (unknown), not zero.
    public var source: String?

    public init(promptTokens: Int? = nil, completionTokens: Int? = nil, totalTokens: Int? = nil,
                totalPrice: Decimal? = nil, currency: String? = nil, latencyMilliseconds: Int? = nil, source: String? = nil) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
        self.totalPrice = totalPrice
        self.currency = currency
        self.latencyMilliseconds = latencyMilliseconds
        self.source = source
    }
}

/// A stored result of a succeeded document.
public struct StoredResult: Sendable, Equatable {
    public var documentID: Int64
    /// `succeeded` or `partial-succeeded`.
    public var status: String
    /// Dify's outputs as JSON text.
    public var outputsJSON: String
    public var recordedAt: Date
}

/// A `run`/`watch` process as recorded.
public struct RunRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var command: String
    public var startedAt: Date
    public var endedAt: Date?
    public var pid: Int
    public var host: String
    public var exitCode: Int?
}

/// The per-job counts of one run.
public struct RunJobCounts: Sendable, Equatable, Codable {
    public var succeeded = 0
    public var failed = 0
    public var dead = 0
    public var rejected = 0
    public var skipped = 0
    /// Inbox files `match.include`/`exclude` left out at the run's last scan (issue 12).
    public var notMatched = 0
    /// Files seen still changing at the run's last look (issue 16), the one changing the longest, and since when.
    public var unsettled = 0
    public var unsettledOldest: String? = nil
    public var unsettledSince: Date? = nil

    public init(succeeded: Int = 0, failed: Int = 0, dead: Int = 0, rejected: Int = 0, skipped: Int = 0, notMatched: Int = 0,
                unsettled: Int = 0, unsettledOldest: String? = nil, unsettledSince: Date? = nil) {
        self.unsettled = unsettled
        self.unsettledOldest = unsettledOldest
        self.unsettledSince = unsettledSince
        self.succeeded = succeeded
        self.failed = failed
        self.dead = dead
        self.rejected = rejected
        self.skipped = skipped
        self.notMatched = notMatched
    }
}

/// The last run that touched a job.
public struct JobLastRun: Sendable, Equatable, Codable {
    public var run: RunRecord
    public var counts: RunJobCounts
}

/// Filters for listing documents. `nil` means "any".
public struct DocumentFilter: Sendable, Equatable {
    public var jobName: String?
    public var states: Set<DocumentState>?
    /// A shell-style glob over the path relative to the inbox (`*`, `?`, `[...]`).
    public var pathPattern: String?
    /// Only documents updated at or after this time.
    public var updatedSince: Date?
    /// Only documents updated before this time.
    public var updatedUntil: Date?
    public var limit: Int?
    /// Only the rows of this table file's document (issue 13).
    public var rowOf: Int64? = nil

    public init(jobName: String? = nil, states: Set<DocumentState>? = nil, pathPattern: String? = nil,
                updatedSince: Date? = nil, updatedUntil: Date? = nil, limit: Int? = nil, rowOf: Int64? = nil) {
        self.rowOf = rowOf
        self.jobName = jobName
        self.states = states
        self.pathPattern = pathPattern
        self.updatedSince = updatedSince
        self.updatedUntil = updatedUntil
        self.limit = limit
    }
}

/// How to group a usage report.
public enum UsageGrouping: String, Sendable, CaseIterable, Codable {
    case job, day, run, none
}

/// Filters for a usage report.
public struct UsageFilter: Sendable, Equatable {
    public var jobName: String?
    public var since: Date?
    public var until: Date?

    public init(jobName: String? = nil, since: Date? = nil, until: Date? = nil) {
        self.jobName = jobName
        self.since = since
        self.until = until
    }
}

/// Summed usage for one group (and one currency).
public struct UsageTotal: Sendable, Equatable, Codable {
    /// The job name, the day (YYYY-MM-DD, UTC), the run id, or "all".
    public var group: String
    public var documents: Int
    public var runs: Int
    /// Sum over the runs whose split is known (``splitRuns``); `nil` when none is.
    public var promptTokens: Int?
    public var completionTokens: Int?
    /// Sum over the runs that reported total tokens; `nil` when none did (issue 16: missing is not 0).
    public var totalTokens: Int?
    /// Exact sum of the prices; `nil` when no run reported a price.
    public var totalPrice: Decimal?
    public var currency: String?
    /// Runs whose prompt/completion split is known (streamed workflows, completion/chat apps).
    public var splitRuns: Int = 0
    /// Runs with a price.
    public var pricedRuns: Int = 0
}
