import Foundation

/// Reading the ledger: what the CLI needs. Implementations must be safe to use from many tasks at once and
/// while another process writes.
public protocol LedgerReader: Sendable {
    /// All jobs, by name.
    func jobs() async throws -> [JobRecord]
    /// Document counts by state for each job id (states with no documents are absent).
    func stateCounts() async throws -> [Int64: [DocumentState: Int]]
    /// The most recent run that touched each job, by job id.
    func lastRuns() async throws -> [Int64: JobLastRun]
    /// Documents matching the filter, most recently updated first.
    func documents(matching filter: DocumentFilter) async throws -> [DocumentRecord]
    /// One document by id.
    func document(id: Int64) async throws -> DocumentRecord?
    /// Every version of the documents at this inbox-relative path (any job), newest first.
    func documents(path: String) async throws -> [DocumentRecord]
    /// The attempt history of a document, oldest first.
    func attempts(documentID: Int64) async throws -> [AttemptRecord]
    /// The usage rows of a document summed (nil when it has none).
    func usage(documentID: Int64) async throws -> UsageAmounts?
    /// Usage summed exactly per group (a group mixing currencies gets no total price and currency `mixed(...)`).
    func usageTotals(matching filter: UsageFilter, by grouping: UsageGrouping) async throws -> [UsageTotal]
    /// The stored result of a succeeded document.
    func result(documentID: Int64) async throws -> StoredResult?
}

/// The ledger the pipeline writes to. One store interface for SQLite today and PostgreSQL later: nothing here
/// assumes SQLite. Every state change is checked against ``DocumentState/canTransition(to:)`` and made only
/// if the document is still in the state the caller saw (`LedgerError.stateChanged` otherwise).
public protocol Ledger: LedgerReader {
    /// Creates the job or updates its spec path, hash, URL, user and folders; returns it.
    func register(_ job: JobRegistration) async throws -> JobRecord
    /// Records the app mode learned from Dify.
    func setAppMode(jobID: Int64, mode: String) async throws

    /// The newest version of every path of a job, keyed by the path's bytes (the scanner's view).
    func latestVersions(jobID: Int64) async throws -> [PathKey: DocumentRecord]
    /// The newest version of every path of a job, reduced to what a rescan compares (one covering-index scan),
    /// keyed by the path's bytes (names differing only in Unicode normalization are different paths).
    func knownFiles(jobID: Int64) async throws -> [PathKey: KnownFile]
    /// Adds a new document version.
    func insert(_ document: NewDocument) async throws -> DocumentRecord
    /// Issue 13: adds the rows of one table file, all or none (one transaction where the store has them). Issue 14:
    /// also a scan's plain new documents, in order (each sees the ones before it, as separate inserts would).
    func insertRows(_ documents: [NewDocument]) async throws -> [DocumentRecord]
    /// `pending` documents of a job that wait for a document with the same content which has now succeeded
    /// (issue 10 rule 6), each with that document. They are to be marked `skipped`.
    func heldDuplicates(jobID: Int64) async throws -> [(waiting: DocumentRecord, original: DocumentRecord)]
    /// A succeeded document of this job with this content, other than `excluding`.
    func succeededDocument(jobID: Int64, sha256: String, excluding: Int64?) async throws -> DocumentRecord?

    /// Atomically takes up to `limit` documents that are `pending`, or `failed` and due at `now`, moving them to
    /// `uploading` (or `uploaded` when Dify already holds the file, or `recovering` when the result is stored and
    /// only local work is left). Two callers never get the same document.
    func claim(jobID: Int64, limit: Int, now: Date) async throws -> [DocumentRecord]
    /// Moves a document from `from` to `to` and applies `changes`, in one statement.
    @discardableResult
    func transition(_ id: Int64, from: DocumentState, to: DocumentState, _ changes: [DocumentChange]) async throws -> DocumentRecord
    /// Applies `changes` to a document that must still be in `state`.
    @discardableResult
    func update(_ id: Int64, in state: DocumentState, _ changes: [DocumentChange]) async throws -> DocumentRecord
    /// Documents of a job left in an in-flight state (after a crash).
    func inFlight(jobID: Int64) async throws -> [DocumentRecord]
    /// How many of the job's documents wait (`pending` or `failed`), leaving out copies held behind a `paused` run of
    /// the same content (they wait for a human, as that run does). Cheap: one indexed count.
    func waitingCount(jobID: Int64) async throws -> Int
    /// Puts documents back in the queue (`pending`, attempts and the run-send budget reset, history kept; an
    /// `unresolved` document keeps `outcome_unknown`, so its next send counts in `duplicate_runs`). Returns how
    /// many moved. A document with a stored result keeps it (and its run ids): it is settled from it, never sent again.
    func requeue(ids: [Int64], from allowed: Set<DocumentState>) async throws -> Int

    /// Starts an attempt row; returns its id.
    func beginAttempt(documentID: Int64, runID: Int64?, phase: AttemptPhase) async throws -> Int64
    /// Ends an attempt row.
    func finishAttempt(_ attemptID: Int64, _ result: AttemptResult) async throws
    /// Records the usage of one Dify run. A second record for the same `difyRunID` of the same document is
    /// ignored, so recovering a run whose usage was already recorded never counts its tokens twice.
    func recordUsage(documentID: Int64, jobID: Int64, runID: Int64?, difyRunID: String?, _ usage: UsageAmounts) async throws
    /// Stores the result of a finished run (Dify's outputs) and marks the document `resultStored`: from here on
    /// only local work is left for it. Called BEFORE the outbox is written.
    func storeResult(documentID: Int64, status: String, outputsJSON: String) async throws

    /// Makes several writes in order in ONE transaction, all or none (issue 14: a document's adjacent durable
    /// steps cost one commit). Each write checks and means what its method means; the first that fails throws its
    /// error and nothing of the batch is written.
    @discardableResult
    func write(_ writes: [LedgerWrite]) async throws -> LedgerWriteResult

    /// This ledger's identity, created (once, also when processes race) the first time it is asked for (schema 11).
    func identity() async throws -> LedgerIdentity

    /// Records the start of a `run`/`watch` process for these jobs; returns the run id.
    func beginRun(command: String, pid: Int, host: String, jobIDs: [Int64]) async throws -> Int64
    /// Counts a document that reached `state` in this run.
    func countInRun(runID: Int64, jobID: Int64, state: DocumentState) async throws
    /// Sets how many inbox files `match.include`/`exclude` left out at this run's last scan of the job.
    func recordNotMatched(runID: Int64, jobID: Int64, count: Int) async throws
    /// Sets how many files the job saw still changing (not settled), the one changing the longest and since when.
    func recordUnsettled(runID: Int64, jobID: Int64, count: Int, oldestPath: String?, since: Date?) async throws
    /// Records the end of a run.
    func finishRun(_ runID: Int64, exitCode: Int) async throws
    /// Runs that have not ended (live processes, or ones that were killed), newest first: how a process refused
    /// a lock names the holder's command and start time.
    func unfinishedRuns() async throws -> [RunRecord]

    // Several processes on one ledger (issue 15; see LedgerCoordination.swift for the defaults of a
    // single-process store such as SQLite, which relies on the per-job file lock instead).

    /// True when several processes may serve one job at once through this ledger (leases instead of file locks).
    var coordinatesProcesses: Bool { get }
    /// Takes (or renews) the job's scanner lease: true when this process may scan the inbox and insert documents now.
    func takeScannerLease(jobID: Int64) async throws -> Bool
    /// Takes over the job's in-flight documents whose holder is gone (lease expired), leasing them to this process.
    /// The caller must treat them like a crash's leftovers: recovery, never a blind re-send.
    func takeOverExpired(jobID: Int64) async throws -> [DocumentRecord]
    /// Throws ``LedgerError/Code/leaseLost`` when this process no longer holds the document's lease (another
    /// process took it over): the caller must abandon the document without writing anything for it.
    func confirmLease(documentID: Int64) async throws
    /// True while another live process works on the job: holds in-flight documents or the scanner lease.
    func othersActive(jobID: Int64) async throws -> Bool
    /// ``claim(jobID:limit:now:)`` taking no more than keeps the job's in-flight documents (across every process
    /// on this ledger) at or under `maxActive` (the spec's `max_active`; nil: no cap).
    func claim(jobID: Int64, limit: Int, now: Date, maxActive: Int?) async throws -> [DocumentRecord]
    /// Issue 14: ``claim(jobID:limit:now:maxActive:)`` that also counts, in the same transaction, the attempt each
    /// claimed document starts (`attempts + 1`): every document it moves to `uploading` or `uploaded`, except, when
    /// `tableFilesUncounted`, the table files of a `rows: true` job (`row_of` NULL; they run nothing themselves).
    /// A document moved to `recovering` (result stored) starts no attempt. The pipeline claims this way, so a
    /// document's attempt costs no transaction of its own before its upload; a crash before the send leaves it
    /// `uploading`/`uploaded` with the attempt counted, which ``LeftoverTriage`` gives back when it requeues it.
    func claimCountingAttempts(jobID: Int64, limit: Int, now: Date, maxActive: Int?, tableFilesUncounted: Bool) async throws -> [DocumentRecord]
}

extension Ledger {
    /// The claim, then one increment per document that starts an attempt, each its own transaction (for a store
    /// without a claim of its own that counts; both shipped stores have one).
    public func claimCountingAttempts(jobID: Int64, limit: Int, now: Date, maxActive: Int?,
                                      tableFilesUncounted: Bool) async throws -> [DocumentRecord] {
        var claimed = try await claim(jobID: jobID, limit: limit, now: now, maxActive: maxActive)
        for (index, document) in claimed.enumerated() where document.state == .uploading || document.state == .uploaded {
            if tableFilesUncounted && document.rowOf == nil { continue }
            claimed[index] = try await update(document.id, in: document.state, [.incrementAttempts])
        }
        return claimed
    }

    /// One insert per row: a store without transactions across calls. A crash part-way leaves the first rows,
    /// which ``RowsExpander`` finds again and completes (it inserts only the rows that are missing).
    public func insertRows(_ documents: [NewDocument]) async throws -> [DocumentRecord] {
        var inserted: [DocumentRecord] = []
        for document in documents { inserted.append(try await insert(document)) }
        return inserted
    }
}
