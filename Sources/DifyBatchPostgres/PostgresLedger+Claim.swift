import DifyBatch
import Foundation
import PostgresNIO

/// Claims, state changes fenced on the lease, the scanner lease and lease takeover.
extension PostgresLedger {
    static let inFlightStates = "('uploading', 'uploaded', 'running', 'recovering')"

    public var coordinatesProcesses: Bool { true }

    /// Takes up to `limit` due documents with `FOR UPDATE SKIP LOCKED`: concurrent claimers on any host skip each
    /// other's rows instead of waiting, and each claimed document is leased to this process.
    public func claim(jobID: Int64, limit: Int, now date: Date) async throws -> [DocumentRecord] {
        try await claim(jobID: jobID, limit: limit, now: date, maxActive: nil, counting: nil)
    }

    /// As ``claim(jobID:limit:now:)``, and the job's in-flight documents across all processes stay at or under
    /// `maxActive`: claimers of the job take turns (a transaction-scoped advisory lock on the job) to count and claim.
    public func claim(jobID: Int64, limit: Int, now date: Date, maxActive: Int?) async throws -> [DocumentRecord] {
        try await claim(jobID: jobID, limit: limit, now: date, maxActive: maxActive, counting: nil)
    }

    public func claimCountingAttempts(jobID: Int64, limit: Int, now: Date, maxActive: Int?,
                                      tableFilesUncounted: Bool) async throws -> [DocumentRecord] {
        try await claim(jobID: jobID, limit: limit, now: now, maxActive: maxActive, counting: tableFilesUncounted)
    }

    /// `counting`: nil, attempts unchanged; otherwise each document claimed for upload or send gets `attempts + 1`
    /// (when true, not the table files of a rows job: `row_of` NULL).
    private func claim(jobID: Int64, limit: Int, now date: Date, maxActive: Int?, counting: Bool?) async throws -> [DocumentRecord] {
        guard limit > 0 else { return [] }
        guard let maxActive else {
            let ids = try await rows(claimQuery(jobID: jobID, limit: limit, due: date, counting: counting)).compactMap { try Self.int64($0, "id") }
            return try await claimed(ids)
        }
        let query = claimQuery(jobID: jobID, limit: limit, due: date, maxActive: maxActive, counting: counting)
        let ids = try await inTransaction { run in
            // 1684171370 = "dbjb": the key space of dify-batch's per-job claim locks.
            _ = try await run("SELECT pg_advisory_xact_lock(1684171370, \(Int32(truncatingIfNeeded: jobID)))")
            return try await run(query).compactMap { try Self.int64($0, "id") }
        }
        return try await claimed(ids)
    }

    /// The claiming UPDATE; with `maxActive`, the limit shrinks by the job's documents already in flight.
    private func claimQuery(jobID: Int64, limit: Int, due date: Date, maxActive: Int? = nil, counting: Bool? = nil) -> PostgresQuery {
        let attempts = switch counting {
        case nil: "attempts"
        case false?: "attempts + CASE WHEN result_stored = 1 THEN 0 ELSE 1 END"
        case true?: "attempts + CASE WHEN result_stored = 1 OR row_of IS NULL THEN 0 ELSE 1 END"
        }
        let due = Self.millis(date)
        let stamp = nowMillis
        let cap: Int64 = maxActive.map(Int64.init) ?? Int64(limit)
        return """
            UPDATE documents
            SET state = CASE WHEN result_stored = 1 THEN 'recovering' WHEN upload_file_id IS NULL THEN 'uploading' ELSE 'uploaded' END,
                next_attempt_at = NULL, duplicate_of = NULL, updated_at = \(stamp), attempts = \(unescaped: attempts),
                lease_owner = \(owner), lease_until = \(unescaped: Self.databaseNow) + \(leaseMillis)
            WHERE id IN (
                SELECT d.id FROM documents d
                WHERE d.job_id = \(jobID) AND (d.state = 'pending' OR (d.state = 'failed' AND d.next_attempt_at <= \(due)))
                  AND NOT (d.state = 'pending' AND d.duplicate_of IS NOT NULL AND EXISTS (
                      SELECT 1 FROM documents t WHERE t.id = d.duplicate_of AND t.state IN (\(unescaped: Self.processingStates), 'succeeded')))
                ORDER BY coalesce(d.next_attempt_at, 0), d.id
                LIMIT greatest(0, least(\(Int64(limit)), \(cap) - (SELECT count(*) FROM documents
                    WHERE job_id = \(jobID) AND state IN \(unescaped: Self.inFlightStates) AND \(maxActive != nil))))
                FOR UPDATE SKIP LOCKED)
            RETURNING id
            """
    }

    /// The documents of `ids` (just claimed or taken over by this process) that this process still holds. A process
    /// stopped between its claiming UPDATE and this read for longer than its lease may find some taken over by
    /// another process meanwhile, or already finished by it: those are not this process's to work on (attack3's
    /// storm: a resumed process settled documents another process had finished, writing their outbox files again).
    func claimed(_ ids: [Int64]) async throws -> [DocumentRecord] {
        guard !ids.isEmpty else { return [] }
        return try await rows("""
            \(unescaped: Self.documentSelect) WHERE d.id = ANY(\(ids)) AND d.lease_owner = \(owner) AND d.state IN \(unescaped: Self.inFlightStates)
            ORDER BY d.id
            """).map(Self.document)
    }

    @discardableResult
    public func transition(_ id: Int64, from: DocumentState, to: DocumentState, _ changes: [DocumentChange]) async throws -> DocumentRecord {
        guard from.canTransition(to: to) else {
            throw LedgerError(.illegalTransition, "document \(id): \(from.rawValue) → \(to.rawValue) is not a legal transition")
        }
        return try await apply(id, expecting: from, newState: to, LedgerWrite.transitionChanges(to: to, changes, now: now()), on: rows)
    }

    @discardableResult
    public func update(_ id: Int64, in state: DocumentState, _ changes: [DocumentChange]) async throws -> DocumentRecord {
        try await apply(id, expecting: state, newState: nil, changes, on: rows)
    }

    /// One UPDATE that also checks the lease: a document held by another process is not changed
    /// (``LedgerError/Code/leaseLost``). Entering an in-flight state leases the document to this process; leaving
    /// it releases the lease. `run` runs each statement (on the pool, or on a batch's transaction).
    func apply(_ id: Int64, expecting: DocumentState, newState: DocumentState?, _ changes: [DocumentChange],
               on run: Statements) async throws -> DocumentRecord {
        var statement = PostgresStatement()
        var sets = ["updated_at = \(statement.bind(nowMillis))"]
        if let newState {
            sets.append("state = \(statement.bind(newState.rawValue))")
            if newState.isInFlight {
                sets.append("lease_owner = \(statement.bind(owner)), lease_until = \(Self.databaseNow) + \(statement.bind(leaseMillis))")
            } else {
                sets.append("lease_owner = NULL, lease_until = NULL")
            }
        }
        for change in changes {
            switch change {
            case .attempts(let n): sets.append("attempts = \(statement.bind(Int64(n)))")
            case .incrementAttempts: sets.append("attempts = attempts + 1")
            case .nextAttemptAt(let d): sets.append("next_attempt_at = \(statement.bind(d.map(Self.millis)))")
            case .uploadFileID(let v): sets.append("upload_file_id = \(statement.bind(v))")
            case .workflowRunID(let v): sets.append("workflow_run_id = \(statement.bind(v))")
            case .messageID(let v): sets.append("message_id = \(statement.bind(v))")
            case .taskID(let v): sets.append("task_id = \(statement.bind(v))")
            case .runSentAt(let d): sets.append("run_sent_at = \(statement.bind(d.map(Self.millis)))")
            case .incrementDuplicateRuns: sets.append("duplicate_runs = duplicate_runs + 1")
            case .duplicateOf(let v): sets.append("duplicate_of = \(statement.bind(v))")
            case .outputPath(let v): sets.append("output_path = \(statement.bind(v))")
            case .lastError(let e):
                sets.append("last_error_class = \(statement.bind(e?.errorClass)), last_error_code = \(statement.bind(e?.code)), "
                            + "last_error_message = \(statement.bind(e?.message)), last_http_status = \(statement.bind(e?.httpStatus.map(Int64.init)))")
            case .finishedAt(let d): sets.append("finished_at = \(statement.bind(d.map(Self.millis)))")
            case .sha256(let v): sets.append("sha256 = \(statement.bind(v))")
            case .size(let v): sets.append("size = \(statement.bind(v))")
            case .mtimeNanoseconds(let v): sets.append("mtime_ns = \(statement.bind(v))")
            case .fileIdentity(let v):
                sets.append("size = \(statement.bind(v.size)), mtime_ns = \(statement.bind(v.mtimeNanoseconds)), "
                            + "device = \(statement.bind(v.deviceColumn)), inode = \(statement.bind(v.inodeColumn))")
            case .resultStored(let v): sets.append("result_stored = \(statement.bind(Int64(v ? 1 : 0)))")
            case .localFailures(let n): sets.append("local_failures = \(statement.bind(Int64(n)))")
            case .incrementRunPosts: sets.append("run_posts = run_posts + 1")
            case .runPosts(let n): sets.append("run_posts = \(statement.bind(Int64(n)))")
            case .duplicateRuns(let n): sets.append("duplicate_runs = \(statement.bind(Int64(n)))")
            case .outcomeUnknown(let v): sets.append("outcome_unknown = \(statement.bind(Int64(v ? 1 : 0)))")
            case .difyClockOffsetMilliseconds(let v): sets.append("dify_clock_offset_ms = \(statement.bind(v))")
            case .pausedAt(let d): sets.append("paused_at = \(statement.bind(d.map(Self.millis)))")
            case .text(let sha, let length):
                sets.append("text_sha256 = \(statement.bind(sha)), text_length = \(statement.bind(length.map(Int64.init)))")
            }
        }
        let idBind = statement.bind(id)
        let stateBind = statement.bind(expecting.rawValue)
        let ownerBind = statement.bind(owner)
        statement.append("""
            UPDATE documents SET \(sets.joined(separator: ", "))
            WHERE id = \(idBind) AND state = \(stateBind) AND (lease_owner IS NULL OR lease_owner = \(ownerBind))
            RETURNING id
            """)
        guard try await run(statement.query).count == 1 else {
            let found = try await run("SELECT state, lease_owner FROM documents WHERE id = \(id)")
            guard let row = found.first.map(PostgresLedgerRow.init) else { throw LedgerError(.notFound, "no document with id \(id)") }
            let actual = try row.string("state") ?? "?"
            let holder = try row.string("lease_owner")
            if actual == expecting.rawValue, let holder, holder != owner {
                throw LedgerError(.leaseLost, "document \(id) was taken over by \(holder) after this process's lease expired; leaving it to them")
            }
            if expecting.isInFlight && holder != owner {
                // This process held it in flight; another took it over after the lease expired and has moved it on
                // (settled it, or holds it in another state): the same loss, found one step later.
                throw LedgerError(.leaseLost, "document \(id) was taken over by \(holder ?? "another process") after this process's lease expired and is now \(actual); leaving it to them")
            }
            throw LedgerError(.stateChanged, "document \(id) is \(actual), not \(expecting.rawValue) as expected")
        }
        guard let document = try await run("\(unescaped: Self.documentSelect) WHERE d.id = \(id)").first.map(Self.document) else {
            throw LedgerError(.notFound, "no document with id \(id)")
        }
        return document
    }

    // MARK: - Leases

    /// Renews the leases of every in-flight document this process holds (and its scanner leases); returns how many
    /// documents it holds. Called by ``PostgresLedgerService``'s heartbeat.
    @discardableResult
    public func renewLeases() async throws -> Int {
        _ = try await rows("""
            UPDATE scanner_leases SET lease_until = \(unescaped: Self.databaseNow) + \(leaseMillis)
            WHERE owner = \(owner)
            """)
        return try await rows("""
            UPDATE documents SET lease_until = \(unescaped: Self.databaseNow) + \(leaseMillis)
            WHERE lease_owner = \(owner) AND state IN \(unescaped: Self.inFlightStates)
            RETURNING id
            """).count
    }

    /// Lets go of everything this process holds, so other processes take over at once instead of after the lease
    /// (called on shutdown; a document still in flight is then recovered by whoever takes it).
    public func releaseLeases() async throws {
        _ = try await rows("DELETE FROM scanner_leases WHERE owner = \(owner)")
        _ = try await rows("""
            UPDATE documents SET lease_until = \(unescaped: Self.databaseNow) - 1
            WHERE lease_owner = \(owner) AND state IN \(unescaped: Self.inFlightStates)
            """)
    }

    public func takeScannerLease(jobID: Int64) async throws -> Bool {
        let found = try await rows("""
            INSERT INTO scanner_leases AS s (job_id, owner, lease_until)
            VALUES (\(jobID), \(owner), \(unescaped: Self.databaseNow) + \(leaseMillis))
            ON CONFLICT (job_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
            WHERE s.owner = excluded.owner OR s.lease_until < \(unescaped: Self.databaseNow)
            RETURNING owner
            """)
        return !found.isEmpty
    }

    /// Leases to this process the in-flight documents of the job whose lease expired (or that have none: left by
    /// a process that stopped before leases existed), skipping rows another process is taking at this moment.
    public func takeOverExpired(jobID: Int64) async throws -> [DocumentRecord] {
        let found = try await rows("""
            UPDATE documents SET lease_owner = \(owner), lease_until = \(unescaped: Self.databaseNow) + \(leaseMillis)
            WHERE id IN (
                SELECT id FROM documents
                WHERE job_id = \(jobID) AND state IN \(unescaped: Self.inFlightStates)
                  AND (lease_owner IS NULL OR (lease_until < \(unescaped: Self.databaseNow) AND lease_owner <> \(owner)))
                ORDER BY id
                FOR UPDATE SKIP LOCKED)
            RETURNING id
            """)
        return try await claimed(try found.compactMap { try Self.int64($0, "id") })
    }

    /// Renews the document's lease if this process still holds it (even expired, when nobody took it over);
    /// throws ``LedgerError/Code/leaseLost`` otherwise.
    public func confirmLease(documentID: Int64) async throws {
        let renewed = try await rows("""
            UPDATE documents SET lease_until = \(unescaped: Self.databaseNow) + \(leaseMillis)
            WHERE id = \(documentID) AND lease_owner = \(owner)
            RETURNING id
            """)
        guard renewed.isEmpty else { return }
        let found = try await rows("SELECT lease_owner FROM documents WHERE id = \(documentID)")
        let current = try found.first.flatMap { try PostgresLedgerRow($0).string("lease_owner") } ?? "nobody"
        throw LedgerError(.leaseLost, "document \(documentID) is now held by \(current): this process lost its lease (stopped or cut off longer than \(leaseDuration)); abandoning it without writing anything")
    }

    public func othersActive(jobID: Int64) async throws -> Bool {
        let found = try await rows("""
            SELECT (SELECT count(*) FROM documents WHERE job_id = \(jobID) AND state IN \(unescaped: Self.inFlightStates)
                        AND lease_owner IS DISTINCT FROM \(owner))
                 + (SELECT count(*) FROM scanner_leases WHERE job_id = \(jobID) AND owner <> \(owner)
                        AND lease_until >= \(unescaped: Self.databaseNow)) AS n
            """)
        return (try Self.int64(found.first, "n") ?? 0) > 0
    }
}
