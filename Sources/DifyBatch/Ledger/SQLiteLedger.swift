import Foundation
import GRDB
import Synchronization

/// The ledger in one SQLite file: WAL mode (readers never wait for the writer), a busy timeout, foreign keys on.
/// New databases are created from ``LedgerSchema/sql`` (the top-level `schema.sql`); the version is kept in
/// `PRAGMA user_version` and older databases are migrated forward on open.
public final class SQLiteLedger: Ledger {
    /// The schema version this build writes.
    public static let schemaVersion = 14
    /// Migrations to version N from the version before it, applied in ascending order inside the open write
    /// transaction. Never edit a past entry. Numbers are assigned per change and may have gaps: a number with
    /// no entry is skipped.
    static let migrations: [Int: @Sendable (Database) throws -> Void] = [
        // Issue 10 (spend once): states unresolved and paused, send budget, Dify's clock, paused since.
        2: migrateToSpendOnce,
        // Issue 11 (files): the pinned identity of each file version, and the scanner's covering index over it.
        3: { db in
            try db.execute(sql: "ALTER TABLE documents ADD COLUMN device INTEGER")
            try db.execute(sql: "ALTER TABLE documents ADD COLUMN inode INTEGER")
            try db.execute(sql: "DROP INDEX documents_by_job_path")
            try db.execute(sql: "CREATE INDEX documents_by_job_path ON documents(job_id, path, id, size, mtime_ns, state, device, inode)")
        },
        // Issue 12: extracted text per document, where a run's usage came from, files not matched per run.
        4: { db in
            try db.execute(sql: """
                ALTER TABLE documents ADD COLUMN text_sha256 TEXT;
                ALTER TABLE documents ADD COLUMN text_length INTEGER;
                ALTER TABLE run_jobs ADD COLUMN not_matched INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE usage ADD COLUMN usage_source TEXT;
                """)
        },
        // Issue 11: a paid result is stored before any local work; local failures are retried from it.
        6: { db in
            try db.execute(sql: "ALTER TABLE documents ADD COLUMN result_stored INTEGER NOT NULL DEFAULT 0")
            try db.execute(sql: "ALTER TABLE documents ADD COLUMN local_failures INTEGER NOT NULL DEFAULT 0")
        },
        // Issue 16: the node a failed workflow run named, so a run that fails the same way twice is not sent again.
        // Issue 16: files that do not settle are named in `status`.
        8: { db in
            try db.execute(sql: """
                ALTER TABLE attempts ADD COLUMN failed_node TEXT;
                ALTER TABLE run_jobs ADD COLUMN unsettled INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE run_jobs ADD COLUMN unsettled_oldest TEXT;
                ALTER TABLE run_jobs ADD COLUMN unsettled_since INTEGER;
                """)
        },
        // Issue 13 (rows as runs): one document per row of a table file, its index and its inputs.
        9: { db in
            try db.execute(sql: """
                ALTER TABLE documents ADD COLUMN row_of INTEGER REFERENCES documents(id) ON DELETE CASCADE;
                ALTER TABLE documents ADD COLUMN row_index INTEGER;
                ALTER TABLE documents ADD COLUMN row_inputs TEXT;
                CREATE INDEX documents_by_row ON documents(row_of, state);
                """)
        },
        // Issue 14: running totals per job (states, usage) kept by triggers, so `status` reads a few rows.
        10: RunningTotals.migrate,
        // Session 5 (`integrity`): the ledger's identity, named in the inboxes it owns (InboxOwnership).
        11: { db in
            try db.execute(sql: """
                CREATE TABLE ledger_identity (
                    id          INTEGER PRIMARY KEY CHECK (id = 1),
                    ledger_id   TEXT    NOT NULL,
                    created_at  INTEGER NOT NULL
                )
                """)
        },
        // Issue 14: the copies waiting for an original, found without walking every pending document of the job;
        // the claim's order served by an index (it sorted every due document of the job on each claim).
        13: { db in
            try db.execute(sql: """
                CREATE INDEX documents_by_copy ON documents(duplicate_of) WHERE duplicate_of IS NOT NULL;
                CREATE INDEX documents_claimable ON documents(job_id, coalesce(next_attempt_at, 0), id) WHERE state IN ('pending', 'failed');
                """)
        },
        // Issue 14 (helper perf4): the usage triggers look a document's usage rows up by usage_by_document (they
        // walked every usage row of the job on each insert); documents_by_row holds only rows (every state change
        // of a file rewrote its entry: one WAL page more in 4 of a document's 5 commits).
        14: { db in
            try RunningTotals.migrateUsageTriggers(db)
            try db.execute(sql: """
                DROP INDEX documents_by_row;
                CREATE INDEX documents_by_row ON documents(row_of, state) WHERE row_of IS NOT NULL;
                """)
        },
    ]

    /// Issue 10 (spend once): the states `unresolved` and `paused` join the `documents.state` CHECK, and the columns
    /// `run_posts`, `outcome_unknown`, `dify_clock_offset_ms`, `paused_at` are added at the end of `documents`.
    ///
    /// SQLite cannot alter a CHECK in place. Rebuilding `documents` would cascade through the foreign keys of
    /// `results`, `attempts` and `usage` (foreign keys cannot be switched off inside the migration's transaction), so
    /// the CHECK is widened with SQLite's documented procedure for constraint changes that every existing row
    /// already satisfies (sqlite.org/lang_altertable.html, "making other kinds of table schema changes"): rewrite
    /// the table's SQL text in `sqlite_master` under `writable_schema`, bump `schema_version`, then let
    /// `integrity_check` confirm the result.
    @Sendable static func migrateToSpendOnce(_ db: Database) throws {
        let old = "'rejected', 'skipped'))"
        let new = "'rejected', 'skipped', 'unresolved', 'paused'))"
        guard let sql = try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'documents'") else {
            throw LedgerError(.cannotOpen, "the ledger has no documents table; it is not a dify-batch ledger")
        }
        if !sql.contains(new) {
            guard sql.components(separatedBy: old).count == 2 else {
                throw LedgerError(.cannotOpen, "cannot migrate the ledger to schema 2: the documents.state CHECK is not the one schema 1 wrote; restore the ledger from a backup or use another --db")
            }
            let rewritten = sql.replacingOccurrences(of: old, with: new)
            let schemaVersion = try Int.fetchOne(db, sql: "PRAGMA schema_version") ?? 0
            try db.execute(sql: "PRAGMA writable_schema = ON")
            try db.execute(sql: "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'documents'", arguments: [rewritten])
            try db.execute(sql: "PRAGMA schema_version = \(schemaVersion + 1)")
            try db.execute(sql: "PRAGMA writable_schema = OFF")
        }
        try db.execute(sql: """
            ALTER TABLE documents ADD COLUMN run_posts INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE documents ADD COLUMN outcome_unknown INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE documents ADD COLUMN dify_clock_offset_ms INTEGER;
            ALTER TABLE documents ADD COLUMN paused_at INTEGER;
            """)
        // Documents sent before this version counted their sends only in `attempts`.
        try db.execute(sql: "UPDATE documents SET run_posts = attempts WHERE run_sent_at IS NOT NULL")
        let check = try String.fetchAll(db, sql: "PRAGMA integrity_check")
        guard check == ["ok"] else {
            throw LedgerError(.cannotOpen, "the ledger failed its integrity check while migrating to schema 2: \(check.prefix(3).joined(separator: "; ")); restore it from a backup")
        }
    }

    private let pool: DatabasePool
    private let writeCount = Atomic<Int>(0)
    /// Jobs whose last claim came back with fewer documents than asked (see ``claim(jobID:limit:now:counting:)``).
    private let claimRanDry = Mutex<Set<Int64>>([])
    /// Set once the writer connection's busy timeout is 0 (see ``write(_:)``).
    private let writerWaitsInTask = Atomic<Bool>(false)
    /// How long a write waits for another process's write lock.
    private let busyTimeout: TimeInterval
    private let now: @Sendable () -> Date
    /// The database file.
    public let path: String

    /// Opens (creating if needed, with mode 0600) the ledger at `path`.
    /// - Parameters:
    ///   - busyTimeout: how long a write waits for another process's write (default 10 s).
    ///   - now: the clock used for every timestamp the ledger writes (injected by tests).
    ///   - traceStatements: called on the connection's thread with the SQL text of every statement each connection
    ///     starts (a trigger's statements as `-- …`; duration nil), and again when a top-level statement ends, with
    ///     the time it took (SQLite's profile event: wall time, triggers included); nil (default) installs no
    ///     trace. The bench's `--sql-trace` counts them per document (issue 14).
    public init(path: String, busyTimeout: TimeInterval = 10, now: @escaping @Sendable () -> Date = { Date() },
                traceStatements: (@Sendable (String, Duration?) -> Void)? = nil) throws {
        self.path = path
        self.now = now
        self.busyTimeout = busyTimeout
        let directory = PathText.folder(of: path)
        if !directory.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw LedgerError(.cannotOpen, "cannot create the ledger folder \(directory): \(error.localizedDescription); choose another place with --db or DIFY_BATCH_DB")
            }
        }
        if !FileManager.default.fileExists(atPath: path) {
            let fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw LedgerError(.cannotOpen, "cannot create the ledger \(path): \(String(cString: strerror(errno))); choose another place with --db or DIFY_BATCH_DB")
            }
            close(fd)
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.foreignKeysEnabled = true
        configuration.label = "dify-batch-ledger"
        // Reads run on the calling thread (see ``write(_:)``): at most about one per cooperative thread at a time,
        // so two reader connections serve them, and each reader's page cache is not kept resident several times over
        // (GRDB's default is 5; issue 14's RSS target with 10,000 queued files).
        configuration.maximumReaderCount = 2
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            if let traceStatements {
                db.trace(options: [.statement, .profile]) { event in
                    switch event {
                    case .statement(let statement): traceStatements(statement.sql, nil)
                    case .profile(let statement, let duration): traceStatements(statement.sql, .seconds(duration))
                    }
                }
            }
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch let error as DatabaseError where Self.isBusy(error) {
            throw Self.busyError(path: path, timeout: busyTimeout)
        } catch {
            throw LedgerError(.cannotOpen, "cannot open the ledger \(path): \(error)")
        }
        do {
            // A current ledger is opened with a read (no write lock): `status` or `show` beside a busy `watch`
            // does not wait for its transactions. Only a new or older ledger takes the write lock to migrate.
            let version = try read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0 }
            if version != Self.schemaVersion {
                try pool.write { db in try Self.migrate(db) }
            }
        } catch let error as DatabaseError where Self.isBusy(error) {
            throw Self.busyError(path: path, timeout: busyTimeout)
        }
    }

    static func isBusy(_ error: DatabaseError) -> Bool {
        error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED
    }

    /// Another program holds the write lock past the busy timeout (issue 16: exit 4, not a usage error).
    static func busyError(path: String, timeout: TimeInterval) -> LedgerError {
        LedgerError(.busy, "the ledger \(path) stayed locked by another program for \(HumanDuration.format(.milliseconds(Int64((timeout * 1000).rounded())))) (busy timeout); end the program holding a write transaction on it (an sqlite3 shell, a backup tool) and try again")
    }

    static func migrate(_ db: Database) throws {
        let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        if version > schemaVersion {
            throw LedgerError(.schemaTooNew, "the ledger has schema version \(version) but this dify-batch knows only up to \(schemaVersion); upgrade dify-batch or use another --db")
        }
        if version == 0 {
            let tables = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'table'") ?? 0
            guard tables == 0 else {
                throw LedgerError(.cannotOpen, "the file is an SQLite database but not a dify-batch ledger (user_version 0 with \(tables) tables); use another --db")
            }
            try db.execute(sql: LedgerSchema.sql)
            try db.execute(sql: "PRAGMA user_version = \(schemaVersion)")
            return
        }
        for next in migrations.keys.sorted() where next > version && next <= schemaVersion {
            try migrations[next]?(db)
        }
        if version < schemaVersion {
            try db.execute(sql: "PRAGMA user_version = \(schemaVersion)")
        }
    }

    // MARK: - Time

    private var nowMillis: Int64 { Self.millis(now()) }

    static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ millis: Int64?) -> Date? { millis.map { Date(timeIntervalSince1970: Double($0) / 1000) } }

    // MARK: - Reading

    public func jobs() async throws -> [JobRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM jobs ORDER BY name").map(Self.job)
        }
    }

    /// From the running totals (schema 10): a few rows per job, whatever the number of documents.
    public func stateCounts() async throws -> [Int64: [DocumentState: Int]] {
        try read { db in
            var counts: [Int64: [DocumentState: Int]] = [:]
            let rows = try Row.fetchAll(db.cachedStatement(sql: "SELECT job_id, state, n FROM job_state_counts WHERE n > 0"))
            for row in rows {
                guard let state = DocumentState(rawValue: row["state"]) else { continue }
                counts[row["job_id"], default: [:]][state] = row["n"]
            }
            return counts
        }
    }

    /// ``stateCounts()`` counted over every document (what the running totals must equal; tests and bench).
    func stateCountsByScan() async throws -> [Int64: [DocumentState: Int]] {
        try read { db in
            var counts: [Int64: [DocumentState: Int]] = [:]
            let rows = try Row.fetchAll(db, sql: "SELECT job_id, state, count(*) AS n FROM documents GROUP BY job_id, state")
            for row in rows {
                guard let state = DocumentState(rawValue: row["state"]) else { continue }
                counts[row["job_id"], default: [:]][state] = row["n"]
            }
            return counts
        }
    }

    public func lastRuns() async throws -> [Int64: JobLastRun] {
        try read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT rj.job_id, rj.succeeded, rj.failed, rj.dead, rj.rejected, rj.skipped, rj.not_matched,
                       rj.unsettled, rj.unsettled_oldest, rj.unsettled_since, r.*
                FROM run_jobs rj JOIN runs r ON r.id = rj.run_id
                WHERE rj.run_id = (SELECT max(run_id) FROM run_jobs WHERE job_id = rj.job_id)
                """)
            var result: [Int64: JobLastRun] = [:]
            for row in rows {
                result[row["job_id"]] = JobLastRun(
                    run: Self.run(row),
                    counts: RunJobCounts(succeeded: row["succeeded"], failed: row["failed"], dead: row["dead"],
                                         rejected: row["rejected"], skipped: row["skipped"], notMatched: row["not_matched"],
                                         unsettled: row["unsettled"], unsettledOldest: row["unsettled_oldest"],
                                         unsettledSince: Self.date(row["unsettled_since"])))
            }
            return result
        }
    }

    static let documentSelect = documentSelect(indexedBy: nil)
    /// ``documentSelect`` reading `documents` through the named index (nil: the one SQLite chooses).
    static func documentSelect(indexedBy index: String?) -> String {
        "SELECT \(documentSelectColumns), j.name AS job_name FROM documents d\(index.map { " INDEXED BY \($0)" } ?? "") JOIN jobs j ON j.id = d.job_id"
    }
    /// ``DocumentCursor/columns`` of `d`, in order (documents are decoded by position).
    private static let documentSelectColumns = DocumentCursor.columns.map { "d." + $0 }.joined(separator: ", ")
    /// The `RETURNING` clause that gives a written `documents` row the columns of ``documentSelect`` (no re-read
    /// after a write; issue 14).
    static let documentReturning = "RETURNING " + DocumentCursor.columns.joined(separator: ", ")
        + ", (SELECT name FROM jobs WHERE jobs.id = documents.job_id) AS job_name"

    public func documents(matching filter: DocumentFilter) async throws -> [DocumentRecord] {
        try read { db in
            var clauses: [String] = []
            var arguments = StatementArguments()
            if let job = filter.jobName {
                clauses.append("j.name = ?")
                arguments += [job]
            }
            if let states = filter.states, !states.isEmpty {
                clauses.append("d.state IN (\(states.map { _ in "?" }.joined(separator: ",")))")
                arguments += StatementArguments(states.sorted().map(\.rawValue))
            }
            if let pattern = filter.pathPattern {
                clauses.append("d.path GLOB ?")
                arguments += [pattern]
            }
            if let parent = filter.rowOf {
                clauses.append("d.row_of = ?")
                arguments += [parent]
            }
            if let since = filter.updatedSince {
                clauses.append("d.updated_at >= ?")
                arguments += [Self.millis(since)]
            }
            if let until = filter.updatedUntil {
                clauses.append("d.updated_at < ?")
                arguments += [Self.millis(until)]
            }
            var sql = Self.documentSelect
            if !clauses.isEmpty { sql += " WHERE " + clauses.joined(separator: " AND ") }
            sql += " ORDER BY d.updated_at DESC, d.id DESC"
            if let limit = filter.limit {
                sql += " LIMIT ?"
                arguments += [limit]
            }
            return try Self.documents(db.makeStatement(sql: sql), arguments)
        }
    }

    public func document(id: Int64) async throws -> DocumentRecord? {
        try readStatement { db in
            try Self.documents(db.cachedStatement(sql: Self.documentSelect + " WHERE d.id = ?"), [id]).first
        }
    }

    public func documents(path: String) async throws -> [DocumentRecord] {
        try read { db in
            try Self.documents(db.makeStatement(sql: Self.documentSelect + " WHERE d.path = ? ORDER BY d.id DESC"), [path])
        }
    }

    public func attempts(documentID: Int64) async throws -> [AttemptRecord] {
        try readStatement { db in
            try Row.fetchAll(db, sql: "SELECT * FROM attempts WHERE document_id = ? ORDER BY id", arguments: [documentID]).map { row in
                AttemptRecord(id: row["id"], documentID: row["document_id"], runID: row["run_id"],
                              phase: AttemptPhase(rawValue: row["phase"]) ?? .run,
                              startedAt: Self.date(row["started_at"])!, endedAt: Self.date(row["ended_at"]),
                              httpStatus: row["http_status"], difyCode: row["dify_code"], message: row["message"],
                              outcome: row["outcome"], failedNode: row["failed_node"])
            }
        }
    }

    public func usage(documentID: Int64) async throws -> UsageAmounts? {
        try readStatement { db in
            guard let row = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT count(*) AS n, sum(prompt_tokens) AS p, sum(completion_tokens) AS c, sum(total_tokens) AS t,
                       sum(total_price_nanos) AS price, count(total_price_nanos) AS priced, max(currency) AS currency,
                       sum(latency_ms) AS latency, max(usage_source) AS source
                FROM usage WHERE document_id = ?
                """), arguments: [documentID]), (row["n"] as Int) > 0 else { return nil }
            let priced: Int = row["priced"]
            return UsageAmounts(promptTokens: row["p"], completionTokens: row["c"], totalTokens: row["t"],
                                totalPrice: priced > 0 ? PriceNanos.decimal(row["price"]) : nil,
                                currency: row["currency"], latencyMilliseconds: row["latency"], source: row["source"])
        }
    }

    /// Per job without a time window comes from the running totals (schema 10); other groupings and windows
    /// aggregate the usage rows.
    public func usageTotals(matching filter: UsageFilter, by grouping: UsageGrouping) async throws -> [UsageTotal] {
        if grouping == .job, filter.since == nil, filter.until == nil {
            return try read { db in try RunningTotals.usageByJob(db, jobName: filter.jobName) }
        }
        return try await usageTotalsByScan(matching: filter, by: grouping)
    }

    /// ``usageTotals(matching:by:)`` aggregated over the usage rows (tests compare the running totals with it).
    func usageTotalsByScan(matching filter: UsageFilter, by grouping: UsageGrouping) async throws -> [UsageTotal] {
        try read { db in
            let key: String
            switch grouping {
            case .job: key = "j.name"
            case .day: key = "strftime('%Y-%m-%d', u.recorded_at / 1000, 'unixepoch')"
            case .run: key = "coalesce(CAST(u.run_id AS TEXT), '-')"
            case .none: key = "'all'"
            }
            var clauses: [String] = []
            var arguments = StatementArguments()
            if let job = filter.jobName {
                clauses.append("j.name = ?")
                arguments += [job]
            }
            if let since = filter.since {
                clauses.append("u.recorded_at >= ?")
                arguments += [Self.millis(since)]
            }
            if let until = filter.until {
                clauses.append("u.recorded_at < ?")
                arguments += [Self.millis(until)]
            }
            let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            let rows = try Row.fetchAll(db, sql: """
                SELECT \(key) AS grp, group_concat(DISTINCT u.currency) AS currencies,
                       count(DISTINCT u.currency) AS currency_count, count(DISTINCT u.document_id) AS docs, count(*) AS runs,
                       sum(u.prompt_tokens) AS p, sum(u.completion_tokens) AS c,
                       sum(u.total_tokens) AS t, sum(u.total_price_nanos) AS price,
                       count(u.total_price_nanos) AS priced, count(u.prompt_tokens) AS split
                FROM usage u JOIN jobs j ON j.id = u.job_id
                \(whereClause)
                GROUP BY grp ORDER BY grp
                """, arguments: arguments)
            return rows.map { row in
                let priced: Int = row["priced"]
                let currencyCount: Int = row["currency_count"]
                let currencies: String? = row["currencies"]
                // Prices in different currencies cannot be added: the total price is then left out.
                return UsageTotal(group: row["grp"], documents: row["docs"], runs: row["runs"],
                                  promptTokens: row["p"], completionTokens: row["c"], totalTokens: row["t"],
                                  totalPrice: priced > 0 && currencyCount <= 1 ? PriceNanos.decimal(row["price"]) : nil,
                                  currency: UsageTotal.currency(currencies, count: currencyCount),
                                  splitRuns: row["split"], pricedRuns: priced)
            }
        }
    }

    public func result(documentID: Int64) async throws -> StoredResult? {
        try readStatement { db in
            try Row.fetchOne(db, sql: "SELECT * FROM results WHERE document_id = ?", arguments: [documentID]).map { row in
                StoredResult(documentID: row["document_id"], status: row["status"], outputsJSON: row["outputs_json"],
                             recordedAt: Self.date(row["recorded_at"])!)
            }
        }
    }

    // MARK: - Jobs

    public func register(_ job: JobRegistration) async throws -> JobRecord {
        let now = nowMillis
        return try await write { db in
            try db.execute(sql: """
                INSERT INTO jobs (name, spec_path, spec_hash, base_url, dify_user, inbox, outbox, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET spec_path = excluded.spec_path, spec_hash = excluded.spec_hash,
                    base_url = excluded.base_url, dify_user = excluded.dify_user, inbox = excluded.inbox,
                    outbox = excluded.outbox, updated_at = excluded.updated_at
                """, arguments: [job.name, job.specPath, job.specHash, job.baseURL, job.difyUser, job.inbox, job.outbox, now, now])
            return try Row.fetchOne(db, sql: "SELECT * FROM jobs WHERE name = ?", arguments: [job.name]).map(Self.job)!
        }
    }

    public func identity() async throws -> LedgerIdentity {
        let now = nowMillis
        let candidate = LedgerIdentity.newID()
        let id = try await write { db -> String in
            try db.execute(sql: "INSERT OR IGNORE INTO ledger_identity (id, ledger_id, created_at) VALUES (1, ?, ?)",
                           arguments: [candidate, now])
            return try String.fetchOne(db, sql: "SELECT ledger_id FROM ledger_identity WHERE id = 1") ?? candidate
        }
        let absolute = path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        return LedgerIdentity(id: id, location: (absolute as NSString).standardizingPath)
    }

    public func setAppMode(jobID: Int64, mode: String) async throws {
        let now = nowMillis
        try await write { db in
            try db.execute(sql: "UPDATE jobs SET app_mode = ?, updated_at = ? WHERE id = ?", arguments: [mode, now, jobID])
        }
    }

    // MARK: - Documents

    public func latestVersions(jobID: Int64) async throws -> [PathKey: DocumentRecord] {
        try read { db in
            let documents = try Self.documents(db.makeStatement(sql: Self.documentSelect + """
                 WHERE d.job_id = ? AND d.id = (SELECT max(id) FROM documents WHERE job_id = d.job_id AND path = d.path)
                """), [jobID])
            var result: [PathKey: DocumentRecord] = [:]
            result.reserveCapacity(documents.count)
            for document in documents { result[PathKey(document.path)] = document }
            return result
        }
    }

    public func knownFiles(jobID: Int64) async throws -> [PathKey: KnownFile] {
        try read { db in
            var result: [PathKey: KnownFile] = [:]
            let cursor = try Row.fetchCursor(db, sql: "SELECT path, id, size, mtime_ns, state, device, inode FROM documents WHERE job_id = ? ORDER BY path, id",
                                             arguments: [jobID])
            while let row = try cursor.next() {
                // Rows come in id order per path: the last one is the newest version.
                let device: Int64? = row[5]
                let inode: Int64? = row[6]
                result[PathKey(row[0] as String)] = KnownFile(id: row[1], size: row[2], mtimeNanoseconds: row[3],
                                           state: DocumentState(rawValue: row[4]) ?? .pending,
                                           device: device.map { UInt64(bitPattern: $0) }, inode: inode.map { UInt64(bitPattern: $0) })
            }
            return result
        }
    }

    public func insert(_ document: NewDocument) async throws -> DocumentRecord {
        let now = nowMillis
        return try await write { db in try Self.insert(document, db: db, now: now) }
    }

    /// Issue 13: the rows of one table file in one transaction (all or none).
    public func insertRows(_ documents: [NewDocument]) async throws -> [DocumentRecord] {
        let now = nowMillis
        return try await write { db in try documents.map { try Self.insert($0, db: db, now: now) } }
    }

    private static func insert(_ document: NewDocument, db: Database, now: Int64) throws -> DocumentRecord {
        do {
            let error = document.error
            var twin: Int64?
            if document.state == .pending, let sha = document.sha256, document.sameContent != .ignore {
                let states = document.sameContent == .waitForProcessingOrSucceeded
                    ? Self.processingStates + ", 'succeeded'" : Self.processingStates
                twin = try Int64.fetchOne(db.cachedStatement(sql: """
                    SELECT id FROM documents WHERE job_id = ? AND sha256 = ? AND duplicate_of IS NULL AND state IN (\(states))
                    ORDER BY id LIMIT 1
                    """), arguments: [document.jobID, sha])
            }
            let inserted = try Self.documents(db.cachedStatement(sql: """
                INSERT INTO documents (job_id, path, sha256, size, mtime_ns, state, last_error_class, last_error_code,
                    last_error_message, last_http_status, created_at, updated_at, finished_at, device, inode, duplicate_of,
                    row_of, row_index, row_inputs, output_path)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """ + Self.documentReturning), [document.jobID, document.path, document.sha256, document.size, document.mtimeNanoseconds,
                                 document.state.rawValue, error?.errorClass, error?.code, error?.message, error?.httpStatus,
                                 now, now, document.state.isTerminal ? now : nil,
                                 document.device.map { Int64(bitPattern: $0) }, document.inode.map { Int64(bitPattern: $0) }, twin,
                                 document.rowOf, document.rowIndex, document.rowInputs, document.outputPath])
            return inserted[0]
        }
    }

    /// ``DocumentState/holdingCopiesSQL``: the states a copy of the same content waits behind.
    static let processingStates = DocumentState.holdingCopiesSQL

    public func heldDuplicates(jobID: Int64) async throws -> [(waiting: DocumentRecord, original: DocumentRecord)] {
        // Asked after every success and nearly always empty: one single-statement look first (issue 14), the
        // snapshot read of the copies and their originals only when there are some.
        let any = try readStatement { db in
            try Bool.fetchOne(db.cachedStatement(sql: """
                SELECT EXISTS (SELECT 1 FROM documents d INDEXED BY documents_by_copy
                    WHERE d.job_id = ? AND d.state = 'pending' AND d.duplicate_of IS NOT NULL
                      AND EXISTS (SELECT 1 FROM documents t WHERE t.id = d.duplicate_of AND t.state = 'succeeded'))
                """), arguments: [jobID]) ?? false
        }
        guard any else { return [] }
        return try read { db in
            // INDEXED BY: the copies are a few rows of the partial index; the planner would otherwise walk every
            // pending document of the job (documents_by_job_state) after every success (issue 14).
            let waiting = try Self.documents(db.cachedStatement(sql: Self.documentSelect(indexedBy: "documents_by_copy") + """
                 WHERE d.job_id = ? AND d.state = 'pending' AND d.duplicate_of IS NOT NULL
                   AND EXISTS (SELECT 1 FROM documents t WHERE t.id = d.duplicate_of AND t.state = 'succeeded')
                 ORDER BY d.id
                """), [jobID])
            return try waiting.compactMap { document in
                guard let originalID = document.duplicateOf,
                      let original = try Self.documents(db.cachedStatement(sql: Self.documentSelect + " WHERE d.id = ?"), [originalID]).first
                else { return nil }
                return (document, original)
            }
        }
    }

    public func succeededDocument(jobID: Int64, sha256: String, excluding: Int64?) async throws -> DocumentRecord? {
        try readStatement { db in
            try Self.documents(db.cachedStatement(sql: Self.documentSelect + """
                 WHERE d.job_id = ? AND d.sha256 = ? AND d.state = 'succeeded' AND d.id != ? ORDER BY d.id LIMIT 1
                """), [jobID, sha256, excluding ?? -1]).first
        }
    }

    public func claim(jobID: Int64, limit: Int, now date: Date) async throws -> [DocumentRecord] {
        try await claim(jobID: jobID, limit: limit, now: date, counting: nil)
    }

    public func claimCountingAttempts(jobID: Int64, limit: Int, now: Date, maxActive: Int?,
                                      tableFilesUncounted: Bool) async throws -> [DocumentRecord] {
        try await claim(jobID: jobID, limit: try await cappedLimit(limit, jobID: jobID, maxActive: maxActive), now: now,
                        counting: tableFilesUncounted)
    }

    /// `counting`: nil, attempts unchanged; otherwise each document claimed for upload or send gets `attempts + 1`
    /// (when true, not the table files of a rows job: `row_of` NULL).
    private func claim(jobID: Int64, limit: Int, now date: Date, counting: Bool?) async throws -> [DocumentRecord] {
        guard limit > 0 else { return [] }
        let now = Self.millis(date)
        let stamp = nowMillis
        let attempts = switch counting {
        case nil: "attempts"
        case false?: "attempts + CASE WHEN result_stored = 1 THEN 0 ELSE 1 END"
        case true?: "attempts + CASE WHEN result_stored = 1 OR row_of IS NULL THEN 0 ELSE 1 END"
        }
        // Issue 14: after a claim that came back short (the queue ran dry), the next one looks with a read first and
        // takes the write lock only when something is due: a draining or idle job no longer commits an empty
        // transaction on every tick and every finished document. The claim itself still decides, atomically.
        if claimRanDry.withLock({ $0.contains(jobID) }) {
            let due = try readStatement { db in
                try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (" + Self.claimable + " LIMIT 1)"), arguments: [jobID, now]) ?? false
            }
            guard due else { return [] }
        }
        let claimed = try await write { db in
            try Self.documents(db.cachedStatement(sql: """
                UPDATE documents
                SET state = CASE WHEN result_stored = 1 THEN 'recovering' WHEN upload_file_id IS NULL THEN 'uploading' ELSE 'uploaded' END,
                    next_attempt_at = NULL, duplicate_of = NULL, updated_at = ?, attempts = \(attempts)
                WHERE id IN (\(Self.claimable) ORDER BY coalesce(d.next_attempt_at, 0), d.id LIMIT ?)
                """ + Self.documentReturning), [stamp, jobID, now, limit])
        }
        claimRanDry.withLock {
            if claimed.count < limit { $0.insert(jobID) } else { $0.remove(jobID) }
        }
        // RETURNING gives rows in no defined order; callers get them by id.
        return claimed.sorted { $0.id < $1.id }
    }

    /// The ids of a job's documents a claim may take at `?2` (ms), for job `?1`: `pending`, or `failed` and due, and
    /// not a copy waiting behind a document of the same content that is on its way or succeeded.
    private static let claimable = """
        SELECT d.id FROM documents d
        WHERE d.job_id = ? AND d.state IN ('pending', 'failed')
          AND (d.state = 'pending' OR (d.state = 'failed' AND d.next_attempt_at <= ?))
          AND NOT (d.state = 'pending' AND d.duplicate_of IS NOT NULL AND EXISTS (
              SELECT 1 FROM documents t WHERE t.id = d.duplicate_of AND t.state IN (\(processingStates), 'succeeded')))
        """

    @discardableResult
    public func transition(_ id: Int64, from: DocumentState, to: DocumentState, _ changes: [DocumentChange]) async throws -> DocumentRecord {
        guard from.canTransition(to: to) else {
            throw LedgerError(.illegalTransition, "document \(id): \(from.rawValue) → \(to.rawValue) is not a legal transition")
        }
        return try await apply(id, expecting: from, newState: to, LedgerWrite.transitionChanges(to: to, changes, now: now()))
    }

    @discardableResult
    public func update(_ id: Int64, in state: DocumentState, _ changes: [DocumentChange]) async throws -> DocumentRecord {
        try await apply(id, expecting: state, newState: nil, changes)
    }

    private func apply(_ id: Int64, expecting: DocumentState, newState: DocumentState?, _ changes: [DocumentChange]) async throws -> DocumentRecord {
        let now = nowMillis
        return try await write { db in try Self.apply(db, id, expecting: expecting, newState: newState, changes, now: now) }
    }

    /// One UPDATE … RETURNING of a document that must still be in `expecting` (inside the caller's transaction).
    private static func apply(_ db: Database, _ id: Int64, expecting: DocumentState, newState: DocumentState?,
                              _ changes: [DocumentChange], now: Int64) throws -> DocumentRecord {
        var sets = ["updated_at = ?"]
        var arguments: StatementArguments = [now]
        if let newState {
            sets.append("state = ?")
            arguments += [newState.rawValue]
        }
        for change in changes {
            switch change {
            case .attempts(let n): sets.append("attempts = ?"); arguments += [n]
            case .incrementAttempts: sets.append("attempts = attempts + 1")
            case .nextAttemptAt(let d): sets.append("next_attempt_at = ?"); arguments += [d.map(Self.millis)]
            case .uploadFileID(let v): sets.append("upload_file_id = ?"); arguments += [v]
            case .workflowRunID(let v): sets.append("workflow_run_id = ?"); arguments += [v]
            case .messageID(let v): sets.append("message_id = ?"); arguments += [v]
            case .taskID(let v): sets.append("task_id = ?"); arguments += [v]
            case .runSentAt(let d): sets.append("run_sent_at = ?"); arguments += [d.map(Self.millis)]
            case .incrementDuplicateRuns: sets.append("duplicate_runs = duplicate_runs + 1")
            case .duplicateOf(let v): sets.append("duplicate_of = ?"); arguments += [v]
            case .outputPath(let v): sets.append("output_path = ?"); arguments += [v]
            case .lastError(let e):
                sets.append("last_error_class = ?, last_error_code = ?, last_error_message = ?, last_http_status = ?")
                arguments += [e?.errorClass, e?.code, e?.message, e?.httpStatus]
            case .finishedAt(let d): sets.append("finished_at = ?"); arguments += [d.map(Self.millis)]
            case .sha256(let v): sets.append("sha256 = ?"); arguments += [v]
            case .size(let v): sets.append("size = ?"); arguments += [v]
            case .mtimeNanoseconds(let v): sets.append("mtime_ns = ?"); arguments += [v]
            case .incrementRunPosts: sets.append("run_posts = run_posts + 1")
            case .runPosts(let n): sets.append("run_posts = ?"); arguments += [n]
            case .duplicateRuns(let n): sets.append("duplicate_runs = ?"); arguments += [n]
            case .outcomeUnknown(let v): sets.append("outcome_unknown = ?"); arguments += [v ? 1 : 0]
            case .difyClockOffsetMilliseconds(let v): sets.append("dify_clock_offset_ms = ?"); arguments += [v]
            case .pausedAt(let d): sets.append("paused_at = ?"); arguments += [d.map(Self.millis)]
            case .text(let sha, let length): sets.append("text_sha256 = ?, text_length = ?"); arguments += [sha, length]
            case .fileIdentity(let v):
                sets.append("size = ?, mtime_ns = ?, device = ?, inode = ?")
                arguments += [v.size, v.mtimeNanoseconds, v.deviceColumn, v.inodeColumn]
            case .resultStored(let v): sets.append("result_stored = ?"); arguments += [v]
            case .localFailures(let n): sets.append("local_failures = ?"); arguments += [n]
            }
        }
        arguments += [id, expecting.rawValue]
        let sql = "UPDATE documents SET \(sets.joined(separator: ", ")) WHERE id = ? AND state = ? " + Self.documentReturning
        // One statement per distinct set of changed columns, compiled once per connection.
        guard let updated = try Self.documents(db.cachedStatement(sql: sql), arguments).first else {
            let actual = try String.fetchOne(db, sql: "SELECT state FROM documents WHERE id = ?", arguments: [id])
            guard let actual else { throw LedgerError(.notFound, "no document with id \(id)") }
            throw LedgerError(.stateChanged, "document \(id) is \(actual), not \(expecting.rawValue) as expected")
        }
        return updated
    }

    public func inFlight(jobID: Int64) async throws -> [DocumentRecord] {
        try read { db in
            try Self.documents(db.makeStatement(sql: Self.documentSelect + """
                 WHERE d.job_id = ? AND d.state IN ('uploading', 'uploaded', 'running', 'recovering') ORDER BY d.id
                """), [jobID])
        }
    }

    public func waitingCount(jobID: Int64) async throws -> Int {
        try readStatement { db in
            // A copy held behind a paused or unresolved run of the same content waits for a human, as that run does:
            // not counted.
            // The job loop asks after every document: the running count (schema 10) minus the copies (a few rows of
            // documents_by_copy), not a walk over every queued document (issue 14).
            try Int.fetchOne(db.cachedStatement(sql: """
                SELECT coalesce((SELECT sum(n) FROM job_state_counts WHERE job_id = ?1 AND state IN ('pending', 'failed')), 0)
                     - (SELECT count(*) FROM documents d INDEXED BY documents_by_copy
                        WHERE d.duplicate_of IS NOT NULL AND d.job_id = ?1 AND d.state = 'pending' AND EXISTS (
                            SELECT 1 FROM documents t WHERE t.id = d.duplicate_of AND t.state IN ('paused', 'unresolved')))
                """), arguments: [jobID]) ?? 0
        }
    }

    public func requeue(ids: [Int64], from allowed: Set<DocumentState>) async throws -> Int {
        let states = allowed.filter { $0.canTransition(to: .pending) }.sorted()
        guard !ids.isEmpty, !states.isEmpty else { return 0 }
        let now = nowMillis
        return try await write { db in
            var moved = 0
            for chunk in stride(from: 0, to: ids.count, by: 500) {
                let slice = Array(ids[chunk..<min(chunk + 500, ids.count)])
                var arguments: StatementArguments = [now]
                arguments += StatementArguments(slice)
                arguments += StatementArguments(states.map(\.rawValue))
                try db.execute(sql: """
                    UPDATE documents SET state = 'pending', attempts = 0, run_posts = 0, paused_at = NULL, next_attempt_at = NULL, finished_at = NULL,
                        upload_file_id = CASE WHEN result_stored = 1 THEN upload_file_id END,
                        workflow_run_id = CASE WHEN result_stored = 1 THEN workflow_run_id END,
                        message_id = CASE WHEN result_stored = 1 THEN message_id END,
                        task_id = CASE WHEN result_stored = 1 THEN task_id END, run_sent_at = NULL,
                        duplicate_of = CASE WHEN result_stored = 1 THEN duplicate_of END, local_failures = 0, updated_at = ?
                    WHERE id IN (\(slice.map { _ in "?" }.joined(separator: ","))) AND state IN (\(states.map { _ in "?" }.joined(separator: ",")))
                    """, arguments: arguments)
                moved += db.changesCount
            }
            return moved
        }
    }

    // MARK: - Attempts, usage, results

    public func beginAttempt(documentID: Int64, runID: Int64?, phase: AttemptPhase) async throws -> Int64 {
        let now = nowMillis
        return try await write { db in try Self.beginAttempt(db, documentID: documentID, runID: runID, phase: phase, now: now) }
    }

    private static func beginAttempt(_ db: Database, documentID: Int64, runID: Int64?, phase: AttemptPhase, now: Int64) throws -> Int64 {
        try db.cachedStatement(sql: "INSERT INTO attempts (document_id, run_id, phase, started_at) VALUES (?, ?, ?, ?)")
            .execute(arguments: [documentID, runID, phase.rawValue, now])
        return db.lastInsertedRowID
    }

    public func finishAttempt(_ attemptID: Int64, _ result: AttemptResult) async throws {
        let now = nowMillis
        try await write { db in try Self.finishAttempt(db, attemptID, result, now: now) }
    }

    private static func finishAttempt(_ db: Database, _ attemptID: Int64, _ result: AttemptResult, now: Int64) throws {
        try db.cachedStatement(sql: "UPDATE attempts SET ended_at = ?, outcome = ?, http_status = ?, dify_code = ?, message = ?, failed_node = ? WHERE id = ?")
            .execute(arguments: [now, result.outcome, result.httpStatus, result.difyCode, result.message, result.failedNode, attemptID])
    }

    public func recordUsage(documentID: Int64, jobID: Int64, runID: Int64?, difyRunID: String?, _ usage: UsageAmounts) async throws {
        let now = nowMillis
        try await write { db in
            try Self.recordUsage(db, documentID: documentID, jobID: jobID, runID: runID, difyRunID: difyRunID, usage, now: now)
        }
    }

    private static func recordUsage(_ db: Database, documentID: Int64, jobID: Int64, runID: Int64?, difyRunID: String?,
                                    _ usage: UsageAmounts, now: Int64) throws {
        let priceText = usage.totalPrice.map { PriceNanos.text($0) }
        let priceNanos = try usage.totalPrice.map { try PriceNanos.nanos($0) }
        try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO usage (document_id, job_id, run_id, dify_run_id, prompt_tokens, completion_tokens,
                total_tokens, total_price, total_price_nanos, currency, latency_ms, recorded_at, usage_source)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [documentID, jobID, runID, difyRunID, usage.promptTokens, usage.completionTokens, usage.totalTokens,
                             priceText, priceNanos, usage.currency, usage.latencyMilliseconds, now, usage.source])
    }

    public func storeResult(documentID: Int64, status: String, outputsJSON: String) async throws {
        let now = nowMillis
        try await write { db in try Self.storeResult(db, documentID: documentID, status: status, outputsJSON: outputsJSON, now: now) }
    }

    private static func storeResult(_ db: Database, documentID: Int64, status: String, outputsJSON: String, now: Int64) throws {
        try db.cachedStatement(sql: """
            INSERT INTO results (document_id, status, outputs_json, recorded_at) VALUES (?, ?, ?, ?)
            ON CONFLICT(document_id) DO UPDATE SET status = excluded.status, outputs_json = excluded.outputs_json,
                recorded_at = excluded.recorded_at
            """).execute(arguments: [documentID, status, outputsJSON, now])
        try db.cachedStatement(sql: "UPDATE documents SET result_stored = 1, updated_at = ? WHERE id = ?")
            .execute(arguments: [now, documentID])
    }

    // MARK: - Batches (issue 14)

    @discardableResult
    public func write(_ writes: [LedgerWrite]) async throws -> LedgerWriteResult {
        try writes.checkLegal()
        let now = nowMillis
        let date = self.now()
        return try await write { db in
            var result = LedgerWriteResult()
            for item in writes {
                switch item {
                case .transition(let id, let from, let to, let changes):
                    result.documents.append(try Self.apply(db, id, expecting: from, newState: to,
                                                           LedgerWrite.transitionChanges(to: to, changes, now: date), now: now))
                case .update(let id, let state, let changes):
                    result.documents.append(try Self.apply(db, id, expecting: state, newState: nil, changes, now: now))
                case .beginAttempt(let documentID, let runID, let phase):
                    result.attemptIDs.append(try Self.beginAttempt(db, documentID: documentID, runID: runID, phase: phase, now: now))
                case .finishAttempt(let id, let attempt):
                    try Self.finishAttempt(db, id, attempt, now: now)
                case .attempt(let documentID, let runID, let phase, let elapsed, let attempt):
                    try Self.finishAttempt(db, Self.beginAttempt(db, documentID: documentID, runID: runID, phase: phase,
                                                                 now: now - max(0, elapsed)), attempt, now: now)
                case .recordUsage(let documentID, let jobID, let runID, let difyRunID, let usage):
                    try Self.recordUsage(db, documentID: documentID, jobID: jobID, runID: runID, difyRunID: difyRunID, usage, now: now)
                case .storeResult(let documentID, let status, let outputsJSON):
                    try Self.storeResult(db, documentID: documentID, status: status, outputsJSON: outputsJSON, now: now)
                case .countInRun(let runID, let jobID, let state):
                    try Self.countInRun(db, runID: runID, jobID: jobID, state: state)
                }
            }
            return result
        }
    }

    /// Write transactions committed (or attempted) by this ledger object since it was opened (the bench prints
    /// them per document; issue 14).
    public var writeTransactions: Int { writeCount.load(ordering: .relaxed) }

    /// Every write transaction of this ledger goes through here (so the bench can count them).
    ///
    /// Reads and writes run synchronously on the calling thread (GRDB's blocking `read`/`write`: a serial queue
    /// entered with `sync`, which runs the block on the caller's thread) instead of GRDB's async API, which
    /// hands every transaction to a dispatch thread and resumes the task afterwards: two thread switches and
    /// wake-ups per call, ~11 calls per document (issue 14's profile: GRDB's dispatch path was 13 % of the
    /// daemon's CPU). A transaction here is short (tens of microseconds, one document), so holding a
    /// cooperative thread for it is cheaper than switching.
    ///
    /// The one long wait, another *process* holding the write lock, must not hold a cooperative thread: the pool
    /// has one thread per core, and with every thread asleep in SQLite's busy handler (or queued behind it on
    /// GRDB's writer queue) nothing else runs, not even the SIGTERM handler, for as long as the other program
    /// keeps its lock (attack `Scripts/attack/held-lock.sh`: a `watch` ignored SIGTERM for the whole 60 s of an
    /// `sqlite3` shell's `BEGIN IMMEDIATE`). So the writer connection has no busy timeout: `BEGIN IMMEDIATE` either
    /// takes the lock at once or fails with nothing done, and this function then waits with `Task.sleep` (1 ms,
    /// doubling to 100 ms) and tries again, for up to the busy timeout (default 10 s), after which SQLite's
    /// `SQLITE_BUSY` error is thrown as before. A cancelled task (a second SIGTERM) stops waiting and throws it.
    private func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        writeCount.add(1, ordering: .relaxed)
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int((busyTimeout * 1000).rounded()))
        var pause = Duration.milliseconds(1)
        while true {
            do {
                return try blockingWrite(body)
            } catch let locked as WriteLockTaken {
                if Task.isCancelled || clock.now >= deadline { throw locked.error }
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(100))
            }
        }
    }

    /// `BEGIN IMMEDIATE` found the write lock taken by another connection (nothing was done).
    private struct WriteLockTaken: Error { let error: DatabaseError }

    /// Sets the writer connection's busy timeout to 0, once: it gives up at once on a held lock (`write` waits
    /// without a thread; a checkpoint is left for later).
    private func giveUpAtOnceOnAHeldLock(_ db: Database) throws {
        guard !writerWaitsInTask.load(ordering: .relaxed) else { return }
        try db.execute(sql: "PRAGMA busy_timeout = 0")
        writerWaitsInTask.store(true, ordering: .relaxed)
    }

    /// One `BEGIN IMMEDIATE` … `COMMIT` transaction on the writer connection, blocking (a synchronous function, so
    /// overload resolution cannot pick GRDB's async one). The two statements are prepared once per connection:
    /// GRDB's `write` compiles both for every transaction, with its authorizer walking each (5–7 % of the daemon's
    /// CPU in issue 14's profile). Any error rolls the whole transaction back and is rethrown; a `BEGIN` that
    /// finds the lock taken throws ``WriteLockTaken`` (see ``write(_:)``).
    private func blockingWrite<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.writeWithoutTransaction { db in
            try giveUpAtOnceOnAHeldLock(db)
            do {
                try db.cachedStatement(sql: "BEGIN IMMEDIATE TRANSACTION").execute()
            } catch let error as DatabaseError where Self.isBusy(error) {
                throw WriteLockTaken(error: error)
            }
            do {
                let result = try body(db)
                try db.cachedStatement(sql: "COMMIT TRANSACTION").execute()
                return result
            } catch {
                if db.isInsideTransaction { try? db.rollback() }
                throw error
            }
        }
    }

    /// GRDB's blocking read on a reader connection (WAL: never waits for a writer), in one read transaction so
    /// several statements see one snapshot. See ``write(_:)``.
    private func read<T>(_ body: (Database) throws -> T) throws -> T { try pool.read(body) }

    /// A read of ONE statement (it is its own snapshot), on the writer connection: no transaction or savepoint
    /// around it (GRDB's `read` compiles three statements for them), and none of what a reader connection costs
    /// per access (GRDB's `PRAGMA schema_version` check, itself one more read transaction on the WAL index, and
    /// the pool's checkout; issue 14: 5 per document). In WAL mode a read takes no write lock, so it waits only for
    /// this process's own write in progress (tens of microseconds). The writer connection does not wait for locks
    /// (see ``write(_:)``): the rare read SQLite refuses with `SQLITE_BUSY` (another connection recovering the WAL)
    /// is made again on a reader connection, which waits up to the busy timeout. Only for bodies that run a single
    /// statement and write nothing.
    private func readStatement<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.writeWithoutTransaction(body)
        } catch let error as DatabaseError where Self.isBusy(error) {
            return try pool.unsafeRead(body)
        }
    }

    // MARK: - Runs

    public func beginRun(command: String, pid: Int, host: String, jobIDs: [Int64]) async throws -> Int64 {
        let now = nowMillis
        return try await write { db in
            try db.execute(sql: "INSERT INTO runs (command, started_at, pid, host) VALUES (?, ?, ?, ?)",
                           arguments: [command, now, pid, host])
            let runID = db.lastInsertedRowID
            for job in jobIDs {
                try db.execute(sql: "INSERT INTO run_jobs (run_id, job_id) VALUES (?, ?)", arguments: [runID, job])
            }
            return runID
        }
    }

    public func recordNotMatched(runID: Int64, jobID: Int64, count: Int) async throws {
        try await write { db in
            try db.execute(sql: """
                INSERT INTO run_jobs (run_id, job_id, not_matched) VALUES (?, ?, ?)
                ON CONFLICT(run_id, job_id) DO UPDATE SET not_matched = excluded.not_matched
                """, arguments: [runID, jobID, count])
        }
    }

    public func recordUnsettled(runID: Int64, jobID: Int64, count: Int, oldestPath: String?, since: Date?) async throws {
        try await write { db in
            try db.execute(sql: """
                INSERT INTO run_jobs (run_id, job_id, unsettled, unsettled_oldest, unsettled_since) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(run_id, job_id) DO UPDATE SET unsettled = excluded.unsettled,
                    unsettled_oldest = excluded.unsettled_oldest, unsettled_since = excluded.unsettled_since
                """, arguments: [runID, jobID, count, oldestPath, since.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }])
        }
    }

    public func countInRun(runID: Int64, jobID: Int64, state: DocumentState) async throws {
        guard state.runJobsColumn != nil else { return }
        try await write { db in try Self.countInRun(db, runID: runID, jobID: jobID, state: state) }
    }

    private static func countInRun(_ db: Database, runID: Int64, jobID: Int64, state: DocumentState) throws {
        guard let column = state.runJobsColumn else { return }
        try db.cachedStatement(sql: """
            INSERT INTO run_jobs (run_id, job_id, \(column)) VALUES (?, ?, 1)
            ON CONFLICT(run_id, job_id) DO UPDATE SET \(column) = \(column) + 1
            """).execute(arguments: [runID, jobID])
    }

    public func finishRun(_ runID: Int64, exitCode: Int) async throws {
        let now = nowMillis
        try await write { db in
            try db.execute(sql: "UPDATE runs SET ended_at = ?, exit_code = ? WHERE id = ?", arguments: [now, exitCode, runID])
        }
    }

    public func unfinishedRuns() async throws -> [RunRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM runs WHERE ended_at IS NULL ORDER BY id DESC").map(Self.run)
        }
    }

    // MARK: - Introspection (tests and tools)

    /// The schema as SQLite reports it: table → columns, and index names with their tables.
    public func schemaDescription() throws -> SchemaDescription {
        try read { db in try SchemaDescription(db) }
    }

    /// Copies every committed transaction from the `-wal` file into the database file and empties the `-wal`
    /// (`PRAGMA wal_checkpoint(TRUNCATE)`), so the database file alone holds the whole ledger whether or not the
    /// connections are closed before the process exits (SQLite only does this itself when the last connection
    /// closes, which a process that exits first never does: its last transactions then live in `-wal` alone, and a
    /// ledger file moved or copied without it loses them). Best effort: a checkpoint another process's read keeps
    /// from finishing is left for the next close; errors are returned, not thrown.
    ///
    /// It never waits (busy timeout 0 on the writer connection, as ``write(_:)`` sets it): a TRUNCATE checkpoint
    /// that waits for another program's reader (an `sqlite3` shell in a transaction, a backup) holds the write lock
    /// all the while, so a `dify-batch status` next to such a reader took 10 s and stopped the running daemon's
    /// writes for those 10 s (attack4: a paid document's success could not be recorded, SQLITE_BUSY).
    @discardableResult
    public func checkpoint() -> (any Error)? {
        do {
            try pool.writeWithoutTransaction { db in
                try giveUpAtOnceOnAHeldLock(db)
                _ = try db.checkpoint(.truncate)
            }
            return nil
        } catch {
            return error
        }
    }

    /// The database's journal mode (expected: `wal`).
    public func journalMode() throws -> String {
        try read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    // MARK: - Row mapping

    static func job(_ row: Row) -> JobRecord {
        JobRecord(id: row["id"], name: row["name"], specPath: row["spec_path"], specHash: row["spec_hash"],
                  appMode: row["app_mode"], baseURL: row["base_url"], difyUser: row["dify_user"],
                  inbox: row["inbox"], outbox: row["outbox"],
                  createdAt: date(row["created_at"])!, updatedAt: date(row["updated_at"])!)
    }

    static func run(_ row: Row) -> RunRecord {
        RunRecord(id: row["id"], command: row["command"], startedAt: date(row["started_at"])!, endedAt: date(row["ended_at"]),
                  pid: row["pid"], host: row["host"], exitCode: row["exit_code"])
    }

    /// The documents a statement of ``documentSelect`` or ending in ``documentReturning`` yields, decoded by
    /// column position (``DocumentCursor``).
    static func documents(_ statement: Statement, _ arguments: StatementArguments) throws -> [DocumentRecord] {
        do {
            return try Array(DocumentCursor(statement, arguments))
        } catch {
            // A row that could not be decoded leaves the statement part-way (holding its read snapshot): reset it.
            try? statement.setArguments(arguments)
            throw error
        }
    }
}

extension DatabaseError: LocalErrorCause {
    /// `SQLITE_BUSY`, `SQLITE_FULL`, ...: the primary result code's name, kept as the cause of a local failure.
    var causeCode: String {
        switch resultCode.primaryResultCode {
        case .SQLITE_BUSY: return "SQLITE_BUSY"
        case .SQLITE_LOCKED: return "SQLITE_LOCKED"
        case .SQLITE_FULL: return "SQLITE_FULL"
        case .SQLITE_IOERR: return "SQLITE_IOERR"
        case .SQLITE_READONLY: return "SQLITE_READONLY"
        case .SQLITE_CANTOPEN: return "SQLITE_CANTOPEN"
        case .SQLITE_CORRUPT: return "SQLITE_CORRUPT"
        case .SQLITE_CONSTRAINT: return "SQLITE_CONSTRAINT"
        default: return "SQLITE_\(resultCode.primaryResultCode.rawValue)"
        }
    }
}
