import DifyKit
import DifySimulator
import Foundation
import Logging
import Synchronization
import Testing
@testable import DifyBatch

/// Issue 11: SQLITE_BUSY while recording a paid success is a local failure of that document, retried from the
/// stored result without a new run.
@Suite struct BusyLedgerSettleTests {
    @Test func run_whenTheLedgerIsBusyAtTheSucceededTransition_recordsSQLITE_BUSY_andSettlesFromTheStoredResultWithoutANewRun() async throws {
        try await runOneFileWithTheLedgerLocked(at: .succeeded) { result, ledger, stats, dir in
            #expect(result.exitStatus == .success)
            #expect(ledger.localFailureCodes.withLock { $0 } == ["SQLITE_BUSY"], "the busy ledger was recorded on the document with its cause")
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state == .succeeded && document.localFailures == 0)
            #expect(FileManager.default.fileExists(atPath: dir.file("out/a.txt.json")))
            #expect(FileManager.default.fileExists(atPath: dir.file("done/a.txt")))
            #expect(stats.requestsByEndpoint["POST /v1/workflows/run"] == 1, "settled again without a new run")
        }
    }
}

/// One file (`in/a.txt`, and `otherFiles` more) through `run` with the ledger's write lock held by another connection at `step` (busy timeout 0.1 s).
func runOneFileWithTheLedgerLocked(at step: BusyOnSuccessLedger.Step, times: Int = 1, otherFiles: Int = 0,
                                    _ check: @escaping @Sendable (PipelineResult, BusyOnSuccessLedger, SimulatorStats, TemporaryDirectory) async throws -> Void) async throws {
    try await withDifySimulator { simulator, baseURL in
        let dir = try TemporaryDirectory()
        try dir.write("in/a.txt", "Invoice total 12 EUR")
        for index in 0..<otherFiles { try dir.write("in/more/\(index).txt", "Document \(index)") }
        let specPath = try dir.write("job.yaml", """
            name: stranded
            inbox: in
            outbox: out
            dify: {base_url: \(baseURL), api_key_env: DIFY_TEST_KEY, response_mode: streaming}
            match: {settle: 0s}
            retry: {max_attempts: 3, base_delay: 10ms, max_delay: 50ms}
            """)
        let ledgerPath = dir.file("ledger.sqlite")
        let ledger = BusyOnSuccessLedger(base: try SQLiteLedger(path: ledgerPath, busyTimeout: 0.1), path: ledgerPath, at: step, times: times)
        var options = PipelineOptions(mode: .once)
        options.tick = .milliseconds(20)
        options.recoveryPollInterval = .milliseconds(20)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let pipeline = Pipeline(specs: try JobSpecLoader.load(paths: [specPath]), ledger: ledger, options: options, logger: logger,
                                environment: ["DIFY_TEST_KEY": SimulatedApp.defaultAPIKey])
        let result = try await pipeline.run()
        #expect(ledger.lockedWrites.withLock { $0 } >= 1, "the held lock was met")
        try await check(result, ledger, simulator.stats, dir)
        if times > 1 {
            // The lock gone, a second run finishes what the first left.
            let again = Pipeline(specs: try JobSpecLoader.load(paths: [specPath]), ledger: try SQLiteLedger(path: ledgerPath),
                                 options: options, logger: logger, environment: ["DIFY_TEST_KEY": SimulatedApp.defaultAPIKey])
            let second = try await again.run()
            #expect(second.exitStatus == .success)
            #expect(try await SQLiteLedger(path: ledgerPath).documents(matching: DocumentFilter()).first?.state == .succeeded)
            #expect(simulator.stats.requestsByEndpoint["POST /v1/workflows/run"] == 1, "the second run sent it once")
        }
    }
}

/// Forwards to a ``SQLiteLedger``; its first `times` writes of `step` (default: the first transition to `succeeded`)
/// run while another connection holds the write lock (a real SQLITE_BUSY), and every local failure recorded is kept.
final class BusyOnSuccessLedger: Ledger {
    /// The one write that meets the held lock.
    enum Step: Sendable {
        /// The transition to `succeeded`.
        case succeeded
        /// The send record: `uploaded` → `running`, committed before the run's request leaves.
        case sendRecorded
        /// The run's ids, written when a streamed run starts (the run is then sent and running at Dify).
        case runIDsRecorded
        /// A scan's batch insert of new files (up to 256 per transaction).
        case scanBatch
    }
    let base: SQLiteLedger
    let path: String
    let step: Step
    /// How many writes of `step` meet the held lock (the first ones), and how many did.
    let times: Int
    let lockedWrites = Mutex(0)
    /// While the lock is held for the one busy write, the job loop's other ledger calls wait (they are not under test).
    let holding = Mutex(false)
    let localFailureCodes = Mutex<[String]>([])
    /// Called with every single-row insert before it is made.
    let onInsert: (@Sendable (NewDocument) -> Void)?

    init(base: SQLiteLedger, path: String, at step: Step = .succeeded, times: Int = 1,
         onInsert: (@Sendable (NewDocument) -> Void)? = nil) {
        self.base = base
        self.path = path
        self.step = step
        self.times = times
        self.onInsert = onInsert
    }

    func transition(_ id: Int64, from: DocumentState, to: DocumentState, _ changes: [DocumentChange]) async throws -> DocumentRecord {
        for case .lastError(let error?) in changes where error.errorClass == "local" {
            localFailureCodes.withLock { $0.append(error.code ?? "-") }
        }
        return try await busyOnce(if: step == .succeeded && to == .succeeded) { try await base.transition(id, from: from, to: to, changes) }
    }

    /// The first call with `condition` runs `body` while another connection holds the write lock.
    private func busyOnce<T>(if condition: Bool, _ body: () async throws -> T) async throws -> T {
        if condition, lockedWrites.withLock({ count in
            guard count < times else { return false }
            count += 1
            return true
        }) {
            holding.withLock { $0 = true }
            let holder = WriteLockHolder(path: path)
            #expect(holder.waitUntilLocked())
            defer {
                holder.release()
                holding.withLock { $0 = false }
            }
            return try await body()
        }
        try await pass()
        return try await body()
    }

    func write(_ writes: [LedgerWrite]) async throws -> LedgerWriteResult {
        var hit = false
        for case .transition(_, let from, let to, let changes) in writes {
            for case .lastError(let error?) in changes where error.errorClass == "local" {
                localFailureCodes.withLock { $0.append(error.code ?? "-") }
            }
            if step == .succeeded && to == .succeeded { hit = true }
            if step == .sendRecorded && from == .uploaded && to == .running { hit = true }
        }
        return try await busyOnce(if: hit) { try await base.write(writes) }
    }

    private func pass() async throws {
        while holding.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
    }

    func jobs() async throws -> [JobRecord] { try await pass(); return try await base.jobs() }
    func stateCounts() async throws -> [Int64: [DocumentState: Int]] { try await pass(); return try await base.stateCounts() }
    func lastRuns() async throws -> [Int64: JobLastRun] { try await pass(); return try await base.lastRuns() }
    func documents(matching filter: DocumentFilter) async throws -> [DocumentRecord] { try await pass(); return try await base.documents(matching: filter) }
    func document(id: Int64) async throws -> DocumentRecord? { try await pass(); return try await base.document(id: id) }
    func documents(path: String) async throws -> [DocumentRecord] { try await pass(); return try await base.documents(path: path) }
    func attempts(documentID: Int64) async throws -> [AttemptRecord] { try await pass(); return try await base.attempts(documentID: documentID) }
    func usage(documentID: Int64) async throws -> UsageAmounts? { try await pass(); return try await base.usage(documentID: documentID) }
    func usageTotals(matching filter: UsageFilter, by grouping: UsageGrouping) async throws -> [UsageTotal] {
        try await pass(); return try await base.usageTotals(matching: filter, by: grouping)
    }
    func result(documentID: Int64) async throws -> StoredResult? { try await pass(); return try await base.result(documentID: documentID) }
    func register(_ job: JobRegistration) async throws -> JobRecord { try await pass(); return try await base.register(job) }
    func setAppMode(jobID: Int64, mode: String) async throws { try await pass(); return try await base.setAppMode(jobID: jobID, mode: mode) }
    func latestVersions(jobID: Int64) async throws -> [PathKey: DocumentRecord] { try await pass(); return try await base.latestVersions(jobID: jobID) }
    func knownFiles(jobID: Int64) async throws -> [PathKey: KnownFile] { try await pass(); return try await base.knownFiles(jobID: jobID) }
    func insertRows(_ documents: [NewDocument]) async throws -> [DocumentRecord] {
        try await busyOnce(if: step == .scanBatch) { try await base.insertRows(documents) }
    }
    func insert(_ document: NewDocument) async throws -> DocumentRecord {
        try await pass()
        onInsert?(document)
        return try await base.insert(document)
    }
    func succeededDocument(jobID: Int64, sha256: String, excluding: Int64?) async throws -> DocumentRecord? {
        try await pass(); return try await base.succeededDocument(jobID: jobID, sha256: sha256, excluding: excluding)
    }
    func claim(jobID: Int64, limit: Int, now: Date) async throws -> [DocumentRecord] { try await pass(); return try await base.claim(jobID: jobID, limit: limit, now: now) }
    func update(_ id: Int64, in state: DocumentState, _ changes: [DocumentChange]) async throws -> DocumentRecord {
        var runIDs = false
        for case .workflowRunID(let id?) in changes where !id.isEmpty { runIDs = true }
        return try await busyOnce(if: step == .runIDsRecorded && state == .running && runIDs) { try await base.update(id, in: state, changes) }
    }
    func inFlight(jobID: Int64) async throws -> [DocumentRecord] { try await pass(); return try await base.inFlight(jobID: jobID) }
    func waitingCount(jobID: Int64) async throws -> Int { try await pass(); return try await base.waitingCount(jobID: jobID) }
    func requeue(ids: [Int64], from allowed: Set<DocumentState>) async throws -> Int { try await pass(); return try await base.requeue(ids: ids, from: allowed) }
    func beginAttempt(documentID: Int64, runID: Int64?, phase: AttemptPhase) async throws -> Int64 {
        try await pass(); return try await base.beginAttempt(documentID: documentID, runID: runID, phase: phase)
    }
    func finishAttempt(_ attemptID: Int64, _ result: AttemptResult) async throws { try await pass(); return try await base.finishAttempt(attemptID, result) }
    func recordUsage(documentID: Int64, jobID: Int64, runID: Int64?, difyRunID: String?, _ usage: UsageAmounts) async throws {
        try await pass(); return try await base.recordUsage(documentID: documentID, jobID: jobID, runID: runID, difyRunID: difyRunID, usage)
    }
    func storeResult(documentID: Int64, status: String, outputsJSON: String) async throws {
        try await pass(); return try await base.storeResult(documentID: documentID, status: status, outputsJSON: outputsJSON)
    }
    func identity() async throws -> LedgerIdentity { try await base.identity() }
    func beginRun(command: String, pid: Int, host: String, jobIDs: [Int64]) async throws -> Int64 {
        try await pass(); return try await base.beginRun(command: command, pid: pid, host: host, jobIDs: jobIDs)
    }
    func countInRun(runID: Int64, jobID: Int64, state: DocumentState) async throws {
        try await pass(); return try await base.countInRun(runID: runID, jobID: jobID, state: state)
    }
    func heldDuplicates(jobID: Int64) async throws -> [(waiting: DocumentRecord, original: DocumentRecord)] {
        try await pass(); return try await base.heldDuplicates(jobID: jobID)
    }
    func recordNotMatched(runID: Int64, jobID: Int64, count: Int) async throws {
        try await pass(); return try await base.recordNotMatched(runID: runID, jobID: jobID, count: count)
    }
    func recordUnsettled(runID: Int64, jobID: Int64, count: Int, oldestPath: String?, since: Date?) async throws {
        try await pass(); return try await base.recordUnsettled(runID: runID, jobID: jobID, count: count, oldestPath: oldestPath, since: since)
    }
    func finishRun(_ runID: Int64, exitCode: Int) async throws { try await pass(); return try await base.finishRun(runID, exitCode: exitCode) }
    func unfinishedRuns() async throws -> [RunRecord] { try await pass(); return try await base.unfinishedRuns() }
}
