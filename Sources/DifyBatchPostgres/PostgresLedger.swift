import DifyBatch
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The ledger in a PostgreSQL database, shared by any number of `run`/`watch` processes on any number of hosts.
///
/// Claims take rows with `FOR UPDATE SKIP LOCKED`; every claimed or sent document carries a lease
/// (`lease_owner` = ``owner``, `lease_until` on the database's clock) that ``PostgresLedgerService`` renews while
/// this process lives. A document whose lease expired is taken over by another process through recovery
/// (``takeOverExpired(jobID:)``), and every state change of an in-flight document is fenced on the lease, so a
/// process that lost its lease (stopped, partitioned) cannot settle a document another process now holds.
///
/// The client must be running (``PostgresLedgerService`` or `PostgresClient.run()`) and ``prepare()`` called once
/// before use. New databases are created from `schema.postgres.sql`.
public final class PostgresLedger: Ledger {
    /// The schema version this build writes (kept equal to SQLiteLedger's by a test).
    /// 10: no PostgreSQL change; SQLite's running totals (issue 14) are SQLite-only (see PostgresSchemaTests).
    /// 14: no PostgreSQL change (SQLite's usage triggers, which PostgreSQL does not have).
    public static let schemaVersion = 14

    let client: PostgresClient
    let logger: Logger
    let now: @Sendable () -> Date
    /// This process: `host:pid:start-ms`.
    public let owner: String
    /// How long a lease lasts without renewal (default 30 s).
    public let leaseDuration: Duration
    /// The location, without secrets (for messages).
    public let location: String
    /// One direct connection tried before the pool, so a server that cannot be reached fails at once with its cause.
    let probe: PostgresConnectionProbe?
    /// True once ``prepare()`` succeeded: the lease heartbeat stays quiet until then.
    let prepared = Atomic<Bool>(false)

    /// - Parameters:
    ///   - client: a client whose `run()` is (or will be) running.
    ///   - owner: this process's lease owner name (default host:pid:start).
    ///   - leaseDuration: how long a document's or scanner's lease lasts without renewal.
    public convenience init(client: PostgresClient, location: String, owner: String = PostgresLedger.processOwner(),
                leaseDuration: Duration = .seconds(30), logger: Logger = Logger(label: "dify-batch.postgres"),
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.init(client: client, location: location, probe: nil, owner: owner, leaseDuration: leaseDuration, logger: logger, now: now)
    }

    init(client: PostgresClient, location: String, probe: PostgresConnectionProbe?, owner: String = PostgresLedger.processOwner(),
         leaseDuration: Duration = .seconds(30), logger: Logger = Logger(label: "dify-batch.postgres"),
         now: @escaping @Sendable () -> Date = { Date() }) {
        self.client = client
        self.probe = probe
        self.location = location
        self.owner = owner
        self.leaseDuration = leaseDuration
        self.logger = logger
        self.now = now
    }

    /// `host:pid:start-ms`, unique per process across hosts.
    public static func processOwner() -> String {
        "\(ProcessInfo.processInfo.hostName):\(getpid()):\(Int64(Date().timeIntervalSince1970 * 1000))"
    }

    var leaseMillis: Int64 { leaseDuration.milliseconds }

    /// The database's clock in ms since the epoch: leases never depend on a host's clock.
    static let databaseNow = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

    var nowMillis: Int64 { Self.millis(now()) }
    static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }

    // MARK: - Running statements

    /// Runs a statement on a pooled connection and returns its rows, turning driver errors into ``LedgerError`` with
    /// the server's message. A connection that closes before the answer fails the statement at once
    /// (``statement(_:on:logger:)``); it is run again on another connection (up to three times in all) when it
    /// certainly did not run (the pool handed out a connection that had just closed) or only reads.
    /// - Throws: ``LedgerError/Code/unreachable`` when a change's connection closed after it was sent (whether it
    ///   ran is unknown) or the connections kept closing.
    func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
        let logger = self.logger
        var tries = 0
        while true {
            tries += 1
            do {
                return try await client.withConnection { connection in try await Self.statement(query, on: connection, logger: logger) }
            } catch let closed as ConnectionClosed {
                let reads = query.sql.drop(while: \.isWhitespace).prefix(6).uppercased() == "SELECT"
                guard tries < 3, !closed.sent || reads else {
                    throw LedgerError(.unreachable, "the connection to the PostgreSQL ledger \(location) closed before the server answered (the server restarted or the network failed); the work is kept")
                }
            } catch let error as PSQLError {
                throw Self.ledgerError(error, location: location)
            }
        }
    }

    func rows(_ statement: PostgresStatement) async throws -> [PostgresRow] { try await rows(statement.query) }

    /// Runs one statement and returns its rows: ``rows(_:)`` on the pool, or a batch's transaction connection.
    typealias Statements = (PostgresQuery) async throws -> [PostgresRow]

    /// `error` in an operator's words: a ``LedgerError``'s message, a driver error by its kind (never the pool's
    /// internal type names).
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as LedgerError: return error.message
        case let error as PSQLError:
            if let message = error.serverInfo?[.message] { return message }
            return error.code == .poolClosed ? "the connection to the server is closed" : "PostgreSQL error \(error.code)"
        case is CancellationError: return "the process is stopping"
        default:
            let text = String(describing: error)
            if text.contains("poolShutdown") || text.contains("poolClosed") { return "the connection to the server is closed" }
            return String(describing: type(of: error))
        }
    }

    static func ledgerError(_ error: PSQLError, location: String) -> LedgerError {
        if let message = error.serverInfo?[.message] {
            let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return LedgerError(.cannotOpen, "PostgreSQL ledger \(location): \(message)\(state)")
        }
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection:
            // The server went away while the ledger was in use: named as at start (refused, no such host, …).
            return PostgresConnectionProbe.connectFailure(error.underlying, server: "the PostgreSQL ledger \(location)",
                                                          retry: "the work is kept", timeout: .seconds(10))
        case .poolClosed:
            return LedgerError(.unreachable, "the connection to the PostgreSQL ledger \(location) is closed (the process is stopping)")
        default:
            return LedgerError(.cannotOpen, "cannot reach the PostgreSQL ledger \(location) (\(error.code)); check that the server runs, the URL in --db or DIFY_BATCH_DB, and the password (password_file=, PGPASSWORD or ~/.pgpass)")
        }
    }

    // MARK: - Reading

    public func jobs() async throws -> [JobRecord] {
        try await rows("SELECT * FROM jobs ORDER BY name COLLATE \"C\"").map(Self.job)
    }

    public func stateCounts() async throws -> [Int64: [DocumentState: Int]] {
        var counts: [Int64: [DocumentState: Int]] = [:]
        for row in try await rows("SELECT job_id, state, count(*) AS n FROM documents GROUP BY job_id, state") {
            let column = PostgresLedgerRow(row)
            guard let state = try column.string("state").flatMap(DocumentState.init(rawValue:)), let job = try column.int64("job_id") else { continue }
            counts[job, default: [:]][state] = Int(try column.int64("n") ?? 0)
        }
        return counts
    }

    public func lastRuns() async throws -> [Int64: JobLastRun] {
        let found = try await rows("""
            SELECT rj.job_id, rj.succeeded, rj.failed, rj.dead, rj.rejected, rj.skipped, rj.not_matched,
                   rj.unsettled, rj.unsettled_oldest, rj.unsettled_since, r.*
            FROM run_jobs rj JOIN runs r ON r.id = rj.run_id
            WHERE rj.run_id = (SELECT max(run_id) FROM run_jobs WHERE job_id = rj.job_id)
            """)
        var result: [Int64: JobLastRun] = [:]
        for row in found {
            guard let job = try Self.int64(row, "job_id") else { continue }
            result[job] = try JobLastRun(row: PostgresLedgerRow(row))
        }
        return result
    }

    static let documentSelect = "SELECT d.*, j.name AS job_name FROM documents d JOIN jobs j ON j.id = d.job_id"

    public func documents(matching filter: DocumentFilter) async throws -> [DocumentRecord] {
        var statement = PostgresStatement(Self.documentSelect)
        var clauses: [String] = []
        if let job = filter.jobName { clauses.append("j.name = \(statement.bind(job))") }
        if let states = filter.states, !states.isEmpty {
            clauses.append("d.state IN (\(states.sorted().map { statement.bind($0.rawValue) }.joined(separator: ",")))")
        }
        if let pattern = filter.pathPattern { clauses.append("d.path ~ \(statement.bind(Self.regex(glob: pattern)))") }
        if let parent = filter.rowOf { clauses.append("d.row_of = \(statement.bind(parent))") }
        if let since = filter.updatedSince { clauses.append("d.updated_at >= \(statement.bind(Self.millis(since)))") }
        if let until = filter.updatedUntil { clauses.append("d.updated_at < \(statement.bind(Self.millis(until)))") }
        if !clauses.isEmpty { statement.append(" WHERE " + clauses.joined(separator: " AND ")) }
        statement.append(" ORDER BY d.updated_at DESC, d.id DESC")
        if let limit = filter.limit { statement.append(" LIMIT \(statement.bind(Int64(limit)))") }
        return try await rows(statement).map(Self.document)
    }

    /// SQLite's GLOB (`*`, `?`, `[...]`, `[^...]`, case-sensitive, `*` crosses `/`) as an anchored POSIX regex.
    static func regex(glob: String) -> String {
        var result = "^"
        var inClass = false
        for character in glob {
            if inClass {
                if character == "]" { inClass = false }
                if character == "\\" { result += "\\\\" } else { result.append(character) }
                continue
            }
            switch character {
            case "*": result += ".*"
            case "?": result += "."
            case "[": result += "["; inClass = true
            case ".", "+", "(", ")", "{", "}", "|", "^", "$", "\\", "]": result += "\\" + String(character)
            default: result.append(character)
            }
        }
        return result + "$"
    }

    public func document(id: Int64) async throws -> DocumentRecord? {
        try await rows("\(unescaped: Self.documentSelect) WHERE d.id = \(id)").first.map(Self.document)
    }

    public func documents(path: String) async throws -> [DocumentRecord] {
        try await rows("\(unescaped: Self.documentSelect) WHERE d.path = \(path) ORDER BY d.id DESC").map(Self.document)
    }

    public func attempts(documentID: Int64) async throws -> [AttemptRecord] {
        try await rows("SELECT * FROM attempts WHERE document_id = \(documentID) ORDER BY id").map { try AttemptRecord(row: PostgresLedgerRow($0)) }
    }

    public func usage(documentID: Int64) async throws -> UsageAmounts? {
        guard let row = try await rows("""
            SELECT count(*) AS n, sum(prompt_tokens)::bigint AS p, sum(completion_tokens)::bigint AS c,
                   sum(total_tokens)::bigint AS t, sum(total_price_nanos)::bigint AS price, count(total_price_nanos) AS priced,
                   max(currency) AS currency, sum(latency_ms)::bigint AS latency, max(usage_source) AS source
            FROM usage WHERE document_id = \(documentID)
            """).first else { return nil }
        return try UsageAmounts.summed(row: PostgresLedgerRow(row))
    }

    public func usageTotals(matching filter: UsageFilter, by grouping: UsageGrouping) async throws -> [UsageTotal] {
        let key: String
        switch grouping {
        case .job: key = "j.name"
        case .day: key = "to_char(to_timestamp(u.recorded_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        case .run: key = "coalesce(u.run_id::text, '-')"
        case .none: key = "'all'"
        }
        var statement = PostgresStatement()
        var clauses: [String] = []
        if let job = filter.jobName { clauses.append("j.name = \(statement.bind(job))") }
        if let since = filter.since { clauses.append("u.recorded_at >= \(statement.bind(Self.millis(since)))") }
        if let until = filter.until { clauses.append("u.recorded_at < \(statement.bind(Self.millis(until)))") }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        statement.append("""
            SELECT \(key) AS grp, string_agg(DISTINCT u.currency, ',') AS currencies,
                   count(DISTINCT u.currency) AS currency_count, count(DISTINCT u.document_id) AS docs, count(*) AS runs,
                   sum(u.prompt_tokens)::bigint AS p, sum(u.completion_tokens)::bigint AS c,
                   sum(u.total_tokens)::bigint AS t, sum(u.total_price_nanos)::bigint AS price,
                   count(u.total_price_nanos) AS priced, count(u.prompt_tokens) AS split
            FROM usage u JOIN jobs j ON j.id = u.job_id
            \(whereClause)
            GROUP BY grp ORDER BY (\(key)) COLLATE "C"
            """)
        return try await rows(statement).map { try UsageTotal(row: PostgresLedgerRow($0)) }
    }

    public func result(documentID: Int64) async throws -> StoredResult? {
        try await rows("SELECT * FROM results WHERE document_id = \(documentID)").first.map { try StoredResult(row: PostgresLedgerRow($0)) }
    }

    // MARK: - Jobs

    public func register(_ job: JobRegistration) async throws -> JobRecord {
        let now = nowMillis
        let found = try await rows("""
            INSERT INTO jobs (name, spec_path, spec_hash, base_url, dify_user, inbox, outbox, created_at, updated_at)
            VALUES (\(job.name), \(job.specPath), \(job.specHash), \(job.baseURL), \(job.difyUser), \(job.inbox), \(job.outbox), \(now), \(now))
            ON CONFLICT (name) DO UPDATE SET spec_path = excluded.spec_path, spec_hash = excluded.spec_hash,
                base_url = excluded.base_url, dify_user = excluded.dify_user, inbox = excluded.inbox,
                outbox = excluded.outbox, updated_at = excluded.updated_at
            RETURNING *
            """)
        guard let row = found.first else { throw LedgerError(.notFound, "job \(job.name) was not stored") }
        return try Self.job(row)
    }

    public func identity() async throws -> LedgerIdentity {
        let candidate = LedgerIdentity.newID()
        let now = nowMillis
        _ = try await rows("INSERT INTO ledger_identity (id, ledger_id, created_at) VALUES (1, \(candidate), \(now)) ON CONFLICT (id) DO NOTHING")
        let found = try await rows("SELECT ledger_id FROM ledger_identity WHERE id = 1")
        let id = try found.first.flatMap { try PostgresLedgerRow($0).string("ledger_id") } ?? candidate
        return LedgerIdentity(id: id, location: location)
    }

    public func setAppMode(jobID: Int64, mode: String) async throws {
        let now = nowMillis
        _ = try await rows("UPDATE jobs SET app_mode = \(mode), updated_at = \(now) WHERE id = \(jobID)")
    }

    // MARK: - Documents

    public func latestVersions(jobID: Int64) async throws -> [PathKey: DocumentRecord] {
        let found = try await rows("""
            \(unescaped: Self.documentSelect)
            WHERE d.job_id = \(jobID) AND d.id = (SELECT max(id) FROM documents WHERE job_id = d.job_id AND path = d.path)
            """)
        var result: [PathKey: DocumentRecord] = [:]
        result.reserveCapacity(found.count)
        for row in found {
            let document = try Self.document(row)
            result[PathKey(document.path)] = document
        }
        return result
    }

    public func knownFiles(jobID: Int64) async throws -> [PathKey: KnownFile] {
        var result: [PathKey: KnownFile] = [:]
        // Through rows(_:), not client.query: a pooled connection that closes under the read fails it at once
        // (postgres-nio 1.33 never answers a query written to a closed connection).
        let found = try await rows("""
            SELECT path, id, size, mtime_ns, state, device, inode FROM documents WHERE job_id = \(jobID) ORDER BY id
            """)
        for row in found {
            let (path, id, size, mtime, state, device, inode) = try row.decode((String, Int64, Int64, Int64, String, Int64?, Int64?).self)
            result[PathKey(path)] = KnownFile(id: id, size: size, mtimeNanoseconds: mtime, state: DocumentState(rawValue: state) ?? .pending,
                                              device: device.map { UInt64(bitPattern: $0) }, inode: inode.map { UInt64(bitPattern: $0) })
        }
        return result
    }

    /// ``DocumentState/holdingCopiesSQL``: the states a copy of the same content waits behind.
    static let processingStates = DocumentState.holdingCopiesSQL

    public func insert(_ document: NewDocument) async throws -> DocumentRecord {
        let now = nowMillis
        let error = document.error
        let finished: Int64? = document.state.isTerminal ? now : nil
        // One run per content per batch (issue 10 rule 6): the twin is looked up in the inserting statement.
        let lookTwin = document.state == .pending && document.sha256 != nil && document.sameContent != .ignore
        let twinStates = document.sameContent == .waitForProcessingOrSucceeded ? Self.processingStates + ", 'succeeded'" : Self.processingStates
        // A file version already recorded is not recorded twice (attack3's scanner freeze: a scanner stopped past
        // its scanner lease, or one that takes the lease back with its cache of known files from before, recorded
        // the files the other process's scanner had recorded meanwhile, and each second row ended `skipped`,
        // overwriting the file's outbox result with a copy of itself). The path's newest document with this size,
        // mtime, device and inode (compared as FileIdentity.matches does, i.e. as the scanner does) is returned
        // instead; checked in the inserting statement. Rows of a table are not versions of a path.
        let checksVersion = document.rowOf == nil
        let device = document.device.map { Int64(bitPattern: $0) }
        let inode = document.inode.map { Int64(bitPattern: $0) }
        let found = try await rows("""
            WITH newest AS (
                SELECT id, size, mtime_ns, device, inode FROM documents
                WHERE \(checksVersion) AND job_id = \(document.jobID) AND path = \(document.path) AND row_of IS NULL
                ORDER BY id DESC LIMIT 1),
            same AS (
                SELECT id FROM newest WHERE size = \(document.size) AND mtime_ns = \(document.mtimeNanoseconds)
                  AND (device IS NULL OR \(device)::bigint IS NULL OR device = \(device)::bigint)
                  AND (inode IS NULL OR \(inode)::bigint IS NULL OR inode = \(inode)::bigint)),
            inserted AS (
                INSERT INTO documents (job_id, path, sha256, size, mtime_ns, state, last_error_class, last_error_code,
                    last_error_message, last_http_status, created_at, updated_at, finished_at, device, inode, duplicate_of,
                    row_of, row_index, row_inputs, output_path)
                SELECT \(document.jobID), \(document.path), \(document.sha256), \(document.size), \(document.mtimeNanoseconds),
                    \(document.state.rawValue), \(error?.errorClass), \(error?.code), \(error?.message), \(error?.httpStatus.map(Int32.init)),
                    \(now), \(now), \(finished), \(device), \(inode),
                    (SELECT id FROM documents WHERE \(lookTwin) AND job_id = \(document.jobID) AND sha256 = \(document.sha256)
                        AND duplicate_of IS NULL AND state IN (\(unescaped: twinStates)) ORDER BY id LIMIT 1),
                    \(document.rowOf), \(document.rowIndex.map(Int32.init)), \(document.rowInputs), \(document.outputPath)
                WHERE NOT EXISTS (SELECT 1 FROM same)
                RETURNING id)
            SELECT id FROM inserted UNION ALL SELECT id FROM same
            """)
        guard let id = try Self.int64(found.first, "id"),
              let inserted = try await self.document(id: id) else {
            throw LedgerError(.notFound, "document \(document.path) was not stored")
        }
        return inserted
    }

    public func succeededDocument(jobID: Int64, sha256: String, excluding: Int64?) async throws -> DocumentRecord? {
        try await rows("""
            \(unescaped: Self.documentSelect)
            WHERE d.job_id = \(jobID) AND d.sha256 = \(sha256) AND d.state = 'succeeded' AND d.id <> \(excluding ?? -1)
            ORDER BY d.id LIMIT 1
            """).first.map(Self.document)
    }

    public func heldDuplicates(jobID: Int64) async throws -> [(waiting: DocumentRecord, original: DocumentRecord)] {
        let waiting = try await rows("""
            \(unescaped: Self.documentSelect)
            WHERE d.job_id = \(jobID) AND d.state = 'pending' AND d.duplicate_of IS NOT NULL
              AND EXISTS (SELECT 1 FROM documents t WHERE t.id = d.duplicate_of AND t.state = 'succeeded')
            ORDER BY d.id
            """).map(Self.document)
        var result: [(waiting: DocumentRecord, original: DocumentRecord)] = []
        for document in waiting {
            guard let originalID = document.duplicateOf, let original = try await self.document(id: originalID) else { continue }
            result.append((document, original))
        }
        return result
    }

    public func inFlight(jobID: Int64) async throws -> [DocumentRecord] {
        try await rows("""
            \(unescaped: Self.documentSelect)
            WHERE d.job_id = \(jobID) AND d.state IN ('uploading', 'uploaded', 'running', 'recovering') ORDER BY d.id
            """).map(Self.document)
    }

    public func waitingCount(jobID: Int64) async throws -> Int {
        // A copy held behind a paused or unresolved run of the same content waits for a human, as that run does:
        // not counted.
        let found = try await rows("""
            SELECT count(*) AS n FROM documents d WHERE d.job_id = \(jobID) AND d.state IN ('pending', 'failed')
              AND NOT (d.state = 'pending' AND d.duplicate_of IS NOT NULL AND EXISTS (
                  SELECT 1 FROM documents t WHERE t.id = d.duplicate_of AND t.state IN ('paused', 'unresolved')))
            """)
        return Int(try Self.int64(found.first, "n") ?? 0)
    }

    public func requeue(ids: [Int64], from allowed: Set<DocumentState>) async throws -> Int {
        let states = allowed.filter { $0.canTransition(to: .pending) }.sorted()
        guard !ids.isEmpty, !states.isEmpty else { return 0 }
        let now = nowMillis
        var moved = 0
        for chunk in stride(from: 0, to: ids.count, by: 500) {
            let slice = Array(ids[chunk..<min(chunk + 500, ids.count)])
            var statement = PostgresStatement()
            let stamp = statement.bind(now)
            let idList = slice.map { statement.bind($0) }.joined(separator: ",")
            let stateList = states.map { statement.bind($0.rawValue) }.joined(separator: ",")
            statement.append("""
                UPDATE documents SET state = 'pending', attempts = 0, run_posts = 0, paused_at = NULL, next_attempt_at = NULL, finished_at = NULL,
                    upload_file_id = CASE WHEN result_stored = 1 THEN upload_file_id END,
                    workflow_run_id = CASE WHEN result_stored = 1 THEN workflow_run_id END,
                    message_id = CASE WHEN result_stored = 1 THEN message_id END,
                    task_id = CASE WHEN result_stored = 1 THEN task_id END, run_sent_at = NULL,
                    duplicate_of = CASE WHEN result_stored = 1 THEN duplicate_of END, local_failures = 0,
                    lease_owner = NULL, lease_until = NULL, updated_at = \(stamp)
                WHERE id IN (\(idList)) AND state IN (\(stateList))
                RETURNING id
                """)
            moved += try await rows(statement).count
        }
        return moved
    }

    // MARK: - Attempts, usage, results

    public func beginAttempt(documentID: Int64, runID: Int64?, phase: AttemptPhase) async throws -> Int64 {
        try await beginAttempt(documentID: documentID, runID: runID, phase: phase, on: rows)
    }

    func beginAttempt(documentID: Int64, runID: Int64?, phase: AttemptPhase, elapsedMilliseconds: Int64 = 0,
                      on run: Statements) async throws -> Int64 {
        let now = nowMillis - max(0, elapsedMilliseconds)
        let found = try await run("""
            INSERT INTO attempts (document_id, run_id, phase, started_at) VALUES (\(documentID), \(runID), \(phase.rawValue), \(now))
            RETURNING id
            """)
        guard let id = try Self.int64(found.first, "id") else {
            throw LedgerError(.notFound, "the attempt of document \(documentID) was not stored")
        }
        return id
    }

    public func finishAttempt(_ attemptID: Int64, _ result: AttemptResult) async throws {
        try await finishAttempt(attemptID, result, on: rows)
    }

    func finishAttempt(_ attemptID: Int64, _ result: AttemptResult, on run: Statements) async throws {
        let now = nowMillis
        _ = try await run("""
            UPDATE attempts SET ended_at = \(now), outcome = \(result.outcome), http_status = \(result.httpStatus.map(Int32.init)),
                dify_code = \(result.difyCode), message = \(result.message), failed_node = \(result.failedNode)
            WHERE id = \(attemptID)
            """)
    }

    public func recordUsage(documentID: Int64, jobID: Int64, runID: Int64?, difyRunID: String?, _ usage: UsageAmounts) async throws {
        try await recordUsage(documentID: documentID, jobID: jobID, runID: runID, difyRunID: difyRunID, usage, on: rows)
    }

    func recordUsage(documentID: Int64, jobID: Int64, runID: Int64?, difyRunID: String?, _ usage: UsageAmounts,
                     on run: Statements) async throws {
        let now = nowMillis
        let (priceText, priceNanos) = try PriceNanos.stored(usage.totalPrice)
        _ = try await run("""
            INSERT INTO usage (document_id, job_id, run_id, dify_run_id, prompt_tokens, completion_tokens,
                total_tokens, total_price, total_price_nanos, currency, latency_ms, recorded_at, usage_source)
            VALUES (\(documentID), \(jobID), \(runID), \(difyRunID), \(usage.promptTokens.map(Int64.init)),
                \(usage.completionTokens.map(Int64.init)), \(usage.totalTokens.map(Int64.init)), \(priceText), \(priceNanos),
                \(usage.currency), \(usage.latencyMilliseconds.map(Int64.init)), \(now), \(usage.source))
            ON CONFLICT DO NOTHING
            """)
    }

    public func storeResult(documentID: Int64, status: String, outputsJSON: String) async throws {
        try await storeResult(documentID: documentID, status: status, outputsJSON: outputsJSON, on: rows)
    }

    func storeResult(documentID: Int64, status: String, outputsJSON: String, on run: Statements) async throws {
        let now = nowMillis
        // One statement: the result and the mark that only local work is left appear together.
        _ = try await run("""
            WITH stored AS (
                INSERT INTO results (document_id, status, outputs_json, recorded_at) VALUES (\(documentID), \(status), \(outputsJSON), \(now))
                ON CONFLICT (document_id) DO UPDATE SET status = excluded.status, outputs_json = excluded.outputs_json,
                    recorded_at = excluded.recorded_at
                RETURNING document_id)
            UPDATE documents SET result_stored = 1, updated_at = \(now) WHERE id IN (SELECT document_id FROM stored)
            """)
    }

    // MARK: - Batches (issue 14)

    /// The batch in one PostgreSQL transaction on one pooled connection (BEGIN … COMMIT; any error rolls it back).
    @discardableResult
    public func write(_ writes: [LedgerWrite]) async throws -> LedgerWriteResult {
        try writes.checkLegal()
        let date = now()
        return try await inTransaction { run in
            var result = LedgerWriteResult()
            for item in writes {
                switch item {
                case .transition(let id, let from, let to, let changes):
                    result.documents.append(try await apply(id, expecting: from, newState: to,
                                                            LedgerWrite.transitionChanges(to: to, changes, now: date), on: run))
                case .update(let id, let state, let changes):
                    result.documents.append(try await apply(id, expecting: state, newState: nil, changes, on: run))
                case .beginAttempt(let documentID, let runID, let phase):
                    result.attemptIDs.append(try await beginAttempt(documentID: documentID, runID: runID, phase: phase, on: run))
                case .finishAttempt(let id, let attempt):
                    try await finishAttempt(id, attempt, on: run)
                case .attempt(let documentID, let runID, let phase, let elapsed, let attempt):
                    let id = try await beginAttempt(documentID: documentID, runID: runID, phase: phase, elapsedMilliseconds: elapsed, on: run)
                    try await finishAttempt(id, attempt, on: run)
                case .recordUsage(let documentID, let jobID, let runID, let difyRunID, let usage):
                    try await recordUsage(documentID: documentID, jobID: jobID, runID: runID, difyRunID: difyRunID, usage, on: run)
                case .storeResult(let documentID, let status, let outputsJSON):
                    try await storeResult(documentID: documentID, status: status, outputsJSON: outputsJSON, on: run)
                case .countInRun(let runID, let jobID, let state):
                    try await countInRun(runID: runID, jobID: jobID, state: state, on: run)
                }
            }
            return result
        }
    }

    // MARK: - Runs

    public func beginRun(command: String, pid: Int, host: String, jobIDs: [Int64]) async throws -> Int64 {
        let now = nowMillis
        // One statement: the run and its per-job rows appear together.
        let found = try await rows("""
            WITH run AS (INSERT INTO runs (command, started_at, pid, host) VALUES (\(command), \(now), \(Int64(pid)), \(host)) RETURNING id),
                 jobs AS (INSERT INTO run_jobs (run_id, job_id) SELECT run.id, j FROM run, unnest(\(jobIDs)::bigint[]) AS j)
            SELECT id FROM run
            """)
        guard let id = try Self.int64(found.first, "id") else {
            throw LedgerError(.notFound, "the run was not stored")
        }
        return id
    }

    public func countInRun(runID: Int64, jobID: Int64, state: DocumentState) async throws {
        try await countInRun(runID: runID, jobID: jobID, state: state, on: rows)
    }

    func countInRun(runID: Int64, jobID: Int64, state: DocumentState, on run: Statements) async throws {
        guard let column = state.runJobsColumn else { return }
        _ = try await run("""
            INSERT INTO run_jobs (run_id, job_id, \(unescaped: column)) VALUES (\(runID), \(jobID), 1)
            ON CONFLICT (run_id, job_id) DO UPDATE SET \(unescaped: column) = run_jobs.\(unescaped: column) + 1
            """)
    }

    public func unfinishedRuns() async throws -> [RunRecord] {
        try await rows("SELECT * FROM runs WHERE ended_at IS NULL ORDER BY id DESC").map { try RunRecord(row: PostgresLedgerRow($0)) }
    }

    public func recordNotMatched(runID: Int64, jobID: Int64, count: Int) async throws {
        _ = try await rows("""
            INSERT INTO run_jobs (run_id, job_id, not_matched) VALUES (\(runID), \(jobID), \(Int64(count)))
            ON CONFLICT (run_id, job_id) DO UPDATE SET not_matched = excluded.not_matched
            """)
    }

    public func recordUnsettled(runID: Int64, jobID: Int64, count: Int, oldestPath: String?, since: Date?) async throws {
        let sinceMillis = since.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }
        _ = try await rows("""
            INSERT INTO run_jobs (run_id, job_id, unsettled, unsettled_oldest, unsettled_since)
            VALUES (\(runID), \(jobID), \(Int64(count)), \(oldestPath), \(sinceMillis))
            ON CONFLICT (run_id, job_id) DO UPDATE SET unsettled = excluded.unsettled,
                unsettled_oldest = excluded.unsettled_oldest, unsettled_since = excluded.unsettled_since
            """)
    }

    public func finishRun(_ runID: Int64, exitCode: Int) async throws {
        let now = nowMillis
        _ = try await rows("UPDATE runs SET ended_at = \(now), exit_code = \(Int32(exitCode)) WHERE id = \(runID)")
    }

    // MARK: - Row mapping

    static func job(_ row: PostgresRow) throws -> JobRecord { try JobRecord(row: PostgresLedgerRow(row)) }
    static func document(_ row: PostgresRow) throws -> DocumentRecord { try DocumentRecord(row: PostgresLedgerRow(row)) }
    static func int64(_ row: PostgresRow?, _ column: String) throws -> Int64? { try row.flatMap { try PostgresLedgerRow($0).int64(column) } }
}
