import Foundation

/// One result row of a ledger store, read by column name: how a store outside this module (PostgreSQL) builds
/// the ledger's records without knowing their internals. Integers are read as `Int64` (any integer width),
/// times are ms since the epoch.
public protocol LedgerRow {
    /// The column as an integer, nil for NULL. Throws when the column is missing or not an integer.
    func int64(_ column: String) throws -> Int64?
    /// The column as text, nil for NULL. Throws when the column is missing or not text.
    func string(_ column: String) throws -> String?
}

extension LedgerRow {
    func required<T>(_ value: T?, _ column: String) throws -> T {
        guard let value else { throw LedgerError(.invalidValue, "the ledger column \(column) is NULL where a value is required") }
        return value
    }
    func int(_ column: String) throws -> Int { Int(try required(int64(column), column)) }
    func intOrNil(_ column: String) throws -> Int? { try int64(column).map { Int($0) } }
    func id(_ column: String) throws -> Int64 { try required(int64(column), column) }
    func text(_ column: String) throws -> String { try required(string(column), column) }
    func time(_ column: String) throws -> Date { Date(timeIntervalSince1970: Double(try required(int64(column), column)) / 1000) }
    func timeOrNil(_ column: String) throws -> Date? { try int64(column).map { Date(timeIntervalSince1970: Double($0) / 1000) } }
}

extension JobRecord {
    /// A `jobs` row.
    public init(row: some LedgerRow) throws {
        self.init(id: try row.id("id"), name: try row.text("name"), specPath: try row.text("spec_path"), specHash: try row.text("spec_hash"),
                  appMode: try row.string("app_mode"), baseURL: try row.text("base_url"), difyUser: try row.text("dify_user"),
                  inbox: try row.text("inbox"), outbox: try row.text("outbox"),
                  createdAt: try row.time("created_at"), updatedAt: try row.time("updated_at"))
    }
}

extension RunRecord {
    /// A `runs` row.
    public init(row: some LedgerRow) throws {
        self.init(id: try row.id("id"), command: try row.text("command"), startedAt: try row.time("started_at"),
                  endedAt: try row.timeOrNil("ended_at"), pid: try row.int("pid"), host: try row.text("host"),
                  exitCode: try row.intOrNil("exit_code"))
    }
}

extension RunJobCounts {
    /// The counts of a `run_jobs` row.
    public init(row: some LedgerRow) throws {
        self.init(succeeded: try row.int("succeeded"), failed: try row.int("failed"), dead: try row.int("dead"),
                  rejected: try row.int("rejected"), skipped: try row.int("skipped"), notMatched: try row.int("not_matched"),
                  unsettled: try row.int("unsettled"), unsettledOldest: try row.string("unsettled_oldest"),
                  unsettledSince: try row.timeOrNil("unsettled_since"))
    }
}

extension JobLastRun {
    /// A `run_jobs` row joined with its `runs` row.
    public init(row: some LedgerRow) throws {
        self.init(run: try RunRecord(row: row), counts: try RunJobCounts(row: row))
    }
}

extension DocumentRecord {
    /// A `documents` row with the job's name as `job_name`.
    public init(row: some LedgerRow) throws {
        let errorClass = try row.string("last_error_class")
        let lastError = try errorClass.map {
            RecordedError(errorClass: $0, code: try row.string("last_error_code"), message: try row.string("last_error_message") ?? "",
                          httpStatus: try row.intOrNil("last_http_status"))
        }
        self.init(
            id: try row.id("id"), jobID: try row.id("job_id"), jobName: try row.string("job_name") ?? "", path: try row.text("path"),
            sha256: try row.string("sha256"), size: try row.id("size"), mtimeNanoseconds: try row.id("mtime_ns"),
            state: DocumentState(rawValue: try row.text("state")) ?? .pending, attempts: try row.int("attempts"),
            nextAttemptAt: try row.timeOrNil("next_attempt_at"), uploadFileID: try row.string("upload_file_id"),
            workflowRunID: try row.string("workflow_run_id"), messageID: try row.string("message_id"), taskID: try row.string("task_id"),
            runSentAt: try row.timeOrNil("run_sent_at"), duplicateRuns: try row.int("duplicate_runs"), duplicateOf: try row.int64("duplicate_of"),
            outputPath: try row.string("output_path"), lastError: lastError,
            createdAt: try row.time("created_at"), updatedAt: try row.time("updated_at"), finishedAt: try row.timeOrNil("finished_at"))
        device = try row.int64("device").map { UInt64(bitPattern: $0) }
        inode = try row.int64("inode").map { UInt64(bitPattern: $0) }
        resultStored = try row.int("result_stored") == 1
        localFailures = try row.int("local_failures")
        runPosts = try row.int("run_posts")
        outcomeUnknown = try row.int("outcome_unknown") != 0
        difyClockOffsetMilliseconds = try row.int64("dify_clock_offset_ms")
        pausedAt = try row.timeOrNil("paused_at")
        textSHA256 = try row.string("text_sha256")
        textLength = try row.intOrNil("text_length")
        rowOf = try row.int64("row_of")
        rowIndex = try row.intOrNil("row_index")
        rowInputs = try row.string("row_inputs")
    }
}

extension AttemptRecord {
    /// An `attempts` row.
    public init(row: some LedgerRow) throws {
        self.init(id: try row.id("id"), documentID: try row.id("document_id"), runID: try row.int64("run_id"),
                  phase: AttemptPhase(rawValue: try row.text("phase")) ?? .run, startedAt: try row.time("started_at"),
                  endedAt: try row.timeOrNil("ended_at"), httpStatus: try row.intOrNil("http_status"),
                  difyCode: try row.string("dify_code"), message: try row.string("message"), outcome: try row.text("outcome"),
                  failedNode: try row.string("failed_node"))
    }
}

extension StoredResult {
    /// A `results` row.
    public init(row: some LedgerRow) throws {
        self.init(documentID: try row.id("document_id"), status: try row.text("status"), outputsJSON: try row.text("outputs_json"),
                  recordedAt: try row.time("recorded_at"))
    }
}

extension UsageAmounts {
    /// One document's usage summed: columns `n` (rows), `p`, `c`, `t`, `price` (nano-units), `priced` (rows with a
    /// price), `currency`, `latency`. Nil when `n` is 0.
    public static func summed(row: some LedgerRow) throws -> UsageAmounts? {
        guard try row.int("n") > 0 else { return nil }
        return UsageAmounts(promptTokens: try row.intOrNil("p"), completionTokens: try row.intOrNil("c"), totalTokens: try row.intOrNil("t"),
                            totalPrice: try row.int("priced") > 0 ? PriceNanos.decimal(try row.int64("price")) : nil,
                            currency: try row.string("currency"), latencyMilliseconds: try row.intOrNil("latency"),
                            source: try row.string("source"))
    }
}

extension UsageTotal {
    /// One group of a usage report: columns `grp`, `currencies` (comma-separated), `currency_count`, `docs`, `runs`,
    /// `p`, `c` (NULL when no run's split is known), `t`, `price` (nano-units), `priced`, `split`. Prices in different currencies are not added up.
    public init(row: some LedgerRow) throws {
        let priced = try row.int("priced")
        let currencyCount = try row.int("currency_count")
        let currencies = try row.string("currencies")
        self.init(group: try row.text("grp"), documents: try row.int("docs"), runs: try row.int("runs"),
                  promptTokens: try row.intOrNil("p"), completionTokens: try row.intOrNil("c"), totalTokens: try row.intOrNil("t"),
                  totalPrice: priced > 0 && currencyCount <= 1 ? PriceNanos.decimal(try row.int64("price")) : nil,
                  currency: Self.currency(currencies, count: currencyCount),
                  splitRuns: try row.int("split"), pricedRuns: priced)
    }

    /// The group's currency from the store's comma-separated distinct currencies: the one currency, or
    /// `mixed(A,B)` with the currencies sorted (the stores' aggregates list them in no defined order).
    static func currency(_ currencies: String?, count: Int) -> String? {
        guard count > 1, let currencies else { return currencies }
        return "mixed(\(currencies.split(separator: ",").sorted().joined(separator: ",")))"
    }
}

extension PriceNanos {
    /// `price × 10^9` and the normalised decimal text, as the usage table stores them.
    public static func stored(_ price: Decimal?) throws -> (text: String?, nanos: Int64?) {
        guard let price else { return (nil, nil) }
        return (text(price), try nanos(price))
    }
}
