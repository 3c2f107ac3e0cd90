import DifyKit
import Foundation
import Logging
import Synchronization

/// How one document's turn ended, as far as the job loop is concerned.
public enum DocumentOutcome: Sendable, Equatable {
    /// The document rests in this state (terminal, or `failed` with a retry time, or `pending`).
    case settled(DocumentState)
    /// The job must stop (configuration problem, quota, Dify unreachable); the document was put back.
    case stopJob(JobStop)
    /// The task was cancelled (shutdown past its grace period); the ledger keeps the in-flight state for recovery.
    case interrupted
    /// The worker stopped on a ledger or file-system error it could not record (the ledger write-locked past its
    /// busy timeout, a full disk, a lost PostgreSQL connection): the document may be left in flight in the ledger
    /// with nobody working on it. The job loop sorts it like a crash's leftover (``LeftoverTriage``) after a
    /// backoff, in this process: requeued when nothing was sent, looked up when a run was sent.
    case stranded(documentID: Int64)
}

/// Everything a document needs from its job while it is processed.
public struct JobContext: Sendable {
    public var spec: JobSpec
    public var job: JobRecord
    public var preflight: JobPreflight
    public var client: DifyClient
    public var ledger: any Ledger
    public var clock: any PipelineClock
    public var runID: Int64?
    public var logger: Logger
    public var rateLimiter: RateLimiter?
    /// Jitter source for backoff (seeded in tests).
    public var random: SharedRandom
    /// How often recovery polls a run's detail at first (doubles up to 15 s), and a paused run's first poll.
    public var recoveryPollInterval: Duration = .milliseconds(500)
    /// The job's one backpressure state, shared by its workers (issue 10 rule 4).
    public var backpressure: Backpressure
    /// `run` (true): stop the job with exit 4 after `retry.max_backpressure` of continuous backpressure.
    /// `watch` (false): keep waiting at `retry.max_delay`.
    public var stopOnBackpressure = true
    /// Set when the process must stop (`--max-duration`, SIGTERM): open lookups end, leaving `recovering`.
    public var lookupStop = LookupStop()
    /// Called after every upload that succeeded (the job loop uses it to go concurrent after the first one).
    public var onUploaded: @Sendable () -> Void = {}
    /// Called with every document that reached a resting state in this invocation.
    public var onSettled: @Sendable (DocumentRecord) -> Void = { _ in }
    /// Called with the path of a version found replaced or rewritten before it was sent (the scanner then takes
    /// the file at that path as a new version).
    public var onSuperseded: @Sendable (String) -> Void = { _ in }
    /// Receives attempt and usage events.
    public var observer = PipelineObservers()

    public init(spec: JobSpec, job: JobRecord, preflight: JobPreflight, client: DifyClient, ledger: any Ledger,
                clock: any PipelineClock, runID: Int64?, logger: Logger, rateLimiter: RateLimiter?, random: SharedRandom) {
        self.spec = spec
        self.job = job
        self.preflight = preflight
        self.client = client
        self.ledger = ledger
        self.clock = clock
        self.runID = runID
        self.logger = logger
        self.rateLimiter = rateLimiter
        self.random = random
        backpressure = Backpressure(policy: spec.retry, seed: random.nextSeed())
    }
}

/// A flag that tells open lookups to stop and leave their document `recovering` for the next process.
public final class LookupStop: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func stop() { flag.store(true, ordering: .relaxed) }
    public var isStopped: Bool { flag.load(ordering: .relaxed) }
}

/// A random number generator shared by the workers of a job (seeded in tests so jitter replays exactly).
public final class SharedRandom: @unchecked Sendable {
    private let lock = NSLock()
    private var generator: SeededRandom

    public init(seed: UInt64 = UInt64.random(in: 1...UInt64.max)) { generator = SeededRandom(seed: seed) }

    func delay(_ backoff: Backoff, afterAttempt attempt: Int, retryAfter: Duration?) -> Duration {
        lock.withLock { backoff.delay(afterAttempt: attempt, retryAfter: retryAfter, using: &generator) }
    }

    func nextSeed() -> UInt64 { lock.withLock { generator.next() } }
}

/// Takes one claimed document through upload → run → outbox → succeeded, or to the right failure state.
/// Never runs a document twice blindly: a run whose outcome is unknown is recovered first.
public struct DocumentProcessor: Sendable {
    let context: JobContext
    let settler: DocumentSettler
    let backoff: Backoff
    /// Whether a document's outbox files can be written, decided before anything is sent.
    let outboxTargets: OutboxTargets

    public init(context: JobContext) {
        self.context = context
        settler = DocumentSettler(spec: context.spec, jobID: context.job.id, appMode: context.preflight.mode.rawValue,
                                  ledger: context.ledger, clock: context.clock, runID: context.runID, logger: context.logger,
                                  onSettled: context.onSettled, onSuperseded: context.onSuperseded)
        backoff = Backoff(policy: context.spec.retry)
        outboxTargets = OutboxTargets(spec: context.spec)
    }

    var ledger: any Ledger { context.ledger }
    var spec: JobSpec { context.spec }

    func logger(_ document: DocumentRecord) -> Logger {
        var logger = context.logger
        logger[metadataKey: "job"] = "\(spec.name)"
        logger[metadataKey: "path"] = "\(document.path)"
        logger[metadataKey: "document"] = .stringConvertible(document.id)
        return logger
    }

    func sourcePath(_ document: DocumentRecord) -> String {
        (spec.inbox as NSString).appendingPathComponent(document.path)
    }

    // MARK: - Entry points

    /// Processes a document just claimed (state `uploading`, or `uploaded` when Dify already holds the file, or
    /// `recovering` when its result is stored and only local work is left: that never calls Dify).
    ///
    /// `attemptCounted`: the claim already counted the attempt this turn starts
    /// (``Ledger/claimCountingAttempts(jobID:limit:now:maxActive:tableFilesUncounted:)``, issue 14); otherwise it is
    /// counted here, in the transaction of the document's first durable step.
    public func process(_ claimed: DocumentRecord, attemptCounted: Bool = false) async -> DocumentOutcome {
        await guarded(claimed, "processing") {
            if claimed.resultStored { return try await settler.resume(claimed) }
            // Issue 13: a table file of a `rows: true` job becomes one document per row; it runs nothing itself.
            if context.preflight.rowForm != nil && claimed.rowOf == nil { return try await RowsExpander(processor: self).expand(claimed) }
            return try await processThrowing(claimed, attemptCounted: attemptCounted)
        }
    }

    /// Resolves a document left `running`/`recovering` (after a crash, or a lost response). Never re-sends it.
    public func recover(_ document: DocumentRecord) async -> DocumentOutcome {
        await guarded(document, "recovery") {
            // Issue 13: a table file waits for its rows (it was never sent): its outbox files are written once they all ended.
            if context.preflight.rowForm != nil && document.rowOf == nil {
                return try await RowsFileSettler(settler: settler).finishIfComplete(tableID: document.id, resume: true)
            }
            var current = document
            if current.state == .running {
                current = try await ledger.transition(current.id, from: .running, to: .recovering, [])
            }
            // A result stored before the process stopped: only the local work is redone, Dify is not asked.
            if current.resultStored { return try await settler.resume(current) }
            return try await InFlightRecovery(processor: self).recover(current)
        }
    }

    /// Polls a `paused` run once (it leaves no worker slot taken); records it when it has ended.
    public func pollPaused(_ document: DocumentRecord) async -> DocumentOutcome {
        await guarded(document, "polling the paused run") { try await InFlightRecovery(processor: self).pollPaused(document) }
    }

    private func guarded(_ document: DocumentRecord, _ what: String,
                         _ body: () async throws -> DocumentOutcome) async -> DocumentOutcome {
        do {
            return try await body()
        } catch is CancellationError {
            return .interrupted
        } catch let error as LedgerError where error.code == .leaseLost {
            logger(document).warning("\(error)")
            return .interrupted
        } catch let error as DifyError where error.code == .cancelled {
            return .interrupted
        } catch {
            logger(document).error("\(what) failed: ledger or file system error: \(error); the document is sorted again like an interrupted one shortly")
            return .stranded(documentID: document.id)
        }
    }

    // MARK: - Upload and run

    var budget: SendBudget { SendBudget(maxSends: spec.retry.maxAttempts) }

    private func processThrowing(_ claimed: DocumentRecord, attemptCounted: Bool) async throws -> DocumentOutcome {
        do {
            return try await uploadAndRun(claimed, attemptCounted: attemptCounted)
        } catch is StoppedBeforeSend {
            return try await putBackUnsent(claimed.id)
        }
    }

    private func uploadAndRun(_ claimed: DocumentRecord, attemptCounted: Bool) async throws -> DocumentOutcome {
        // Issue 14: the attempt is counted by the claim, or else here in the same transaction as the next durable
        // step of the document (before its upload, or with its send), and written first whenever anything else
        // happens to it.
        var document = claimed
        var pending: [LedgerWrite] = []
        if !attemptCounted {
            document.attempts += 1
            pending = [.update(claimed.id, in: claimed.state, [.incrementAttempts])]
        }
        var reuploads = 0
        var inputs: DocumentInputs?
        while true {
            try Task.checkCancellation()
            if document.state == .uploading {
                switch try await upload(document, pending: &pending, attemptCounted: attemptCounted) {
                case .success(let uploaded, let prepared): (document, inputs) = (uploaded, prepared)
                case .failure(let outcome): return outcome
                }
            }
            let outcome = try await run(document, inputs: inputs, pending: &pending)
            switch outcome {
            case .reupload(let again):
                reuploads += 1
                guard reuploads <= 3 else {
                    return try await failed(again, from: .uploading, classification: .retryable, code: "invalid_upload_file",
                                            message: "Dify kept answering \"Invalid upload file\" right after our upload", httpStatus: 400,
                                            difyCode: "invalid_param", retryAfter: nil)
                }
                document = again
            case .done(let result):
                return result
            }
        }
    }

    /// Waits before a request is sent: while the job is under backpressure (one wait shared by every worker of the
    /// job), then for the job's `rate_limit` slot. Throws ``StoppedBeforeSend`` within 200 ms of the process
    /// stopping (SIGTERM/SIGINT, `--max-duration`), so a shutdown never waits out a backoff.
    func waitToSend() async throws {
        while true {
            let wait = context.backpressure.remainingWait(now: context.clock.instant())
            guard wait > .zero else { break }
            try await sleepUnlessStopping(wait)
        }
        if let limiter = context.rateLimiter {
            try await sleepUnlessStopping(await limiter.reserve())
        }
    }

    /// ``waitToSend()``, first writing `pending` when there is anything to wait for: a stop during the wait (which
    /// puts the document back reading the ledger) then finds the ledger as the document is. Without a wait nothing
    /// is written here and nothing can throw ``StoppedBeforeSend``.
    func waitToSend(flushing pending: inout [LedgerWrite], _ document: inout DocumentRecord) async throws {
        guard context.rateLimiter != nil || context.backpressure.remainingWait(now: context.clock.instant()) > .zero else { return }
        document = try await flush(&pending, document)
        try await waitToSend()
    }

    /// Writes the document's deferred writes (issue 14) in one transaction; returns the document as written.
    func flush(_ pending: inout [LedgerWrite], _ document: DocumentRecord) async throws -> DocumentRecord {
        guard !pending.isEmpty else { return document }
        let written = try await ledger.write(pending)
        pending = []
        return written.document ?? document
    }

    /// Sleeps in steps of at most 200 ms, throwing ``StoppedBeforeSend`` once the process is stopping.
    private func sleepUnlessStopping(_ duration: Duration) async throws {
        var left = duration
        while left > .zero {
            if context.lookupStop.isStopped { throw StoppedBeforeSend() }
            let step = min(left, .milliseconds(200))
            try await context.clock.sleep(for: step)
            left -= step
        }
        if context.lookupStop.isStopped { throw StoppedBeforeSend() }
    }

    /// The process began to stop while a document waited to send a request: nothing was sent for this wait.
    struct StoppedBeforeSend: Error {}

    /// Puts a document that was stopped before its send back in the queue (`pending`, its attempt given back).
    private func putBackUnsent(_ documentID: Int64) async throws -> DocumentOutcome {
        guard let current = try await ledger.document(id: documentID), current.state == .uploading || current.state == .uploaded else {
            return .interrupted
        }
        let moved = try await ledger.transition(current.id, from: current.state, to: .pending, [.attempts(max(0, current.attempts - 1))])
        logger(moved).info("stopping: not sent; back in the queue for the next run")
        context.onSettled(moved)
        return .settled(.pending)
    }

    enum UploadStep { case success(DocumentRecord, DocumentInputs), failure(DocumentOutcome) }

    /// Uploads the very file version that was recorded: opened once (no symlink, no FIFO), checked against the
    /// recorded (device, inode, size, mtime), streamed from that descriptor while hashing the bytes sent. A file
    /// replaced or rewritten since it was recorded is never sent under the old version's name and hash.
    private func upload(_ claimed: DocumentRecord, pending: inout [LedgerWrite], attemptCounted: Bool) async throws -> UploadStep {
        if claimed.rowOf != nil { return try await uploadRow(try await flush(&pending, claimed)) }
        var document = claimed
        // Every way out but the upload itself first writes what is pending (the attempt count).
        func written() async throws -> DocumentRecord { try await flush(&pending, document) }
        let path = sourcePath(document)
        let pinned: PinnedFile
        do {
            pinned = try PinnedFile(path: path)
        } catch {
            if error.code == .missing {
                return .failure(try await reject(try await written(), from: .uploading, code: "source_missing",
                                                 message: "the file disappeared from the inbox before it was uploaded"))
            }
            if error.code == .unreadable {
                return .failure(try await reject(try await written(), from: .uploading, code: "unreadable", message: error.message))
            }
            // A symlink or FIFO now at the path is not the file that was recorded.
            return .failure(try await supersede(try await written(), because: "the path now holds something else (\(error.message))"))
        }
        guard pinned.identity.matches(document.identity) else {
            return .failure(try await supersede(try await written(), because: "the file was replaced or changed before it was uploaded (recorded \(document.identity); now \(pinned.identity))"))
        }
        // A requeued rejected document (or a spec/app change) is checked again: nothing unsendable is uploaded.
        if let problem = context.preflight.rejection(filename: (document.path as NSString).lastPathComponent, size: pinned.identity.size) {
            return .failure(try await reject(try await written(), from: .uploading, code: problem.code ?? "rejected", message: problem.message))
        }
        // An outbox path that cannot be written (a clash with another inbox path, something in the way) would
        // make a paid result unwritable forever: refused before anything is uploaded or sent.
        if let problem = outboxTargets.problem(relativePath: document.path) {
            return .failure(try await reject(try await written(), from: .uploading, code: problem.code ?? OutboxTargets.blockedCode, message: problem.message))
        }
        let inputs: DocumentInputs
        switch try await DocumentInputs.prepare(path: path, filename: (document.path as NSString).lastPathComponent, preflight: context.preflight) {
        case .success(let prepared): inputs = prepared
        case .failure(let failure): return .failure(try await reject(try await written(), from: .uploading, code: failure.code, message: failure.message))
        }
        if let text = inputs.text {
            // The text was read by path: it must still be the pinned version.
            guard pinned.isStill(at: path), (try? pinned.sha256()) == document.sha256 || document.sha256 == nil else {
                return .failure(try await supersede(try await written(), because: "the file was replaced or changed while its text was extracted"))
            }
            pending.append(.update(document.id, in: .uploading, [.text(sha256: text.sha256, length: text.length)]))
            document.textSHA256 = text.sha256
            document.textLength = text.length
            logger(document).debug("text extracted", metadata: ["extractor": "\(text.method)", "characters": "\(text.length)"])
        }
        guard inputs.uploadsFile else {
            // Written with the send (or before anything else happens to the document).
            pending.append(.transition(document.id, from: .uploading, to: .uploaded, [.uploadFileID(nil)]))
            document.state = .uploaded
            document.uploadFileID = nil
            return .success(document, inputs)
        }
        try await waitToSend(flushing: &pending, &document)
        // Issue 14: no transaction of its own before the upload (an upload is never billed, and a crash during it
        // leaves the document `uploading`: requeued, its attempt given back). The attempt was counted by the claim;
        // the upload's attempt row is written with its end (``LedgerWrite/attempt``). A caller whose claim did not
        // count the attempt still has it written here first.
        if !attemptCounted { document = try await flush(&pending, document) }
        let attempt = AttemptHandle(documentID: document.id, runID: context.runID, phase: .upload, started: ContinuousClock.now)
        do {
            let sent = StreamingSHA256()
            let uploaded = try await context.client.upload(descriptor: pinned.descriptor, length: pinned.identity.size,
                                                           filename: (document.path as NSString).lastPathComponent,
                                                           user: spec.dify.user, onChunk: { bytes in sent.update(bytes) })
            context.backpressure.recordAnswer()
            let sentSHA = sent.finalize()
            if let recorded = document.sha256, sentSHA != recorded || (try? pinned.currentIdentity()) != pinned.identity {
                pending.append(finishing(attempt, AttemptResult(outcome: "failed", message: "the bytes uploaded (sha256 \(sentSHA)) are not the recorded version; not run")))
                return .failure(try await supersede(try await written(), because: "the file was rewritten while it was uploaded (sha256 \(recorded) recorded, \(sentSHA) sent); the upload is not used"))
            }
            context.onUploaded()
            logger(document).debug("uploaded", metadata: ["upload_file_id": "\(uploaded.id)"])
            // Dify's clock, learned from the upload's created_at (seconds): the logs search runs in Dify's time.
            let offset = (uploaded.serverDate ?? uploaded.createdAt.map { Date(timeIntervalSince1970: Double($0)) }).map(clockOffset)
            // Issue 14: the upload's end is written in the transaction that records the run's send (or before
            // anything else happens to the document). A crash before it leaves the document `uploading`, which
            // is requeued and uploaded again (an upload is never billed).
            pending += [finishing(attempt, .ok),
                        .transition(document.id, from: .uploading, to: .uploaded,
                                    [.uploadFileID(uploaded.id), .difyClockOffsetMilliseconds(offset)])]
            document.state = .uploaded
            document.uploadFileID = uploaded.id
            document.difyClockOffsetMilliseconds = offset
            return .success(document, inputs)
        } catch let error as DifyError {
            pending.append(finishing(attempt, Self.attemptResult(error)))
            return .failure(try await handle(error, document: try await written(), from: .uploading))
        }
    }

    /// The recorded version is gone from the path (replaced, rewritten, or something else put there): it ends
    /// `rejected` with code `source_changed` and no outbox file (the path's outcome comes from the new version,
    /// which the scanner records and processes in its own right).
    private func supersede(_ document: DocumentRecord, because reason: String) async throws -> DocumentOutcome {
        let error = RecordedError(errorClass: "rejected", code: "source_changed",
                                  message: reason + "; the new content is processed as a new version")
        let moved = try await ledger.transition(document.id, from: .uploading, to: .rejected,
                                                [.lastError(error), .nextAttemptAt(nil), .attempts(max(0, document.attempts - 1))])
        if let runID = context.runID { try await ledger.countInRun(runID: runID, jobID: context.job.id, state: .rejected) }
        context.onSettled(moved)
        logger(document).warning("\(error.message)")
        context.onSuperseded(document.path)
        return .settled(.rejected)
    }

    private enum RunStep { case done(DocumentOutcome), reupload(DocumentRecord) }

    private func run(_ claimedOrUploaded: DocumentRecord, inputs prepared: DocumentInputs?,
                     pending: inout [LedgerWrite]) async throws -> RunStep {
        var uploadedDocument = claimedOrUploaded
        // Every way out but the send first writes what is pending (the attempt count, the upload's end).
        func written() async throws -> DocumentRecord { try await flush(&pending, uploadedDocument) }
        func backToUpload() async throws -> RunStep {
            let moved = try await self.ledger.write(pending + [.transition(uploadedDocument.id, from: .uploaded, to: .uploading, [])])
            pending = []
            return .reupload(moved.document!)
        }
        let filename = (uploadedDocument.path as NSString).lastPathComponent
        // Claimed as `uploaded` (Dify already holds the file): decide the inputs again.
        let inputs: DocumentInputs
        if let prepared {
            inputs = prepared
        } else if uploadedDocument.rowOf != nil {
            // A row's file cells are uploaded again with its inputs (an upload is never billed).
            return try await backToUpload()
        } else if outboxTargets.problem(relativePath: uploadedDocument.path) != nil {
            // Claimed as `uploaded` while its outbox path became unwritable: the upload step refuses it, unsent.
            return try await backToUpload()
        } else {
            switch try await DocumentInputs.prepare(path: sourcePath(uploadedDocument), filename: filename, preflight: context.preflight) {
            case .success(let again): inputs = again
            case .failure(let failure):
                return .done(try await dead(try await written(), from: .uploaded,
                                            error: RecordedError(errorClass: "rejected", code: failure.code, message: failure.message)))
            }
        }
        if inputs.uploadsFile && uploadedDocument.uploadFileID == nil {
            return try await backToUpload()
        }
        // The send budget: max_attempts run POSTs per document version, whatever became of them (issue 10 rule 3).
        guard budget.allowsSend(uploadedDocument) else {
            return .done(try await dead(try await written(), from: .uploaded,
                                        error: RecordedError(errorClass: "permanent", code: "send_budget_exhausted",
                                                             message: budget.exhaustedMessage(uploadedDocument))))
        }
        let request = runRequest(inputs, uploadFileID: uploadedDocument.uploadFileID)
        try await waitToSend(flushing: &pending, &uploadedDocument)
        let sentAt = context.clock.now()
        // The send is counted in the same statement that records it as sent, and committed (issue 14: in one
        // transaction with the upload's end and the run's attempt row) before the request goes out: a crash after
        // this line still counts.
        let begun = try await ledger.write(pending + [
            .transition(uploadedDocument.id, from: .uploaded, to: .running,
                        [.runSentAt(sentAt), .workflowRunID(nil), .taskID(nil), .messageID(nil)] + budget.changesForSend(uploadedDocument)),
            .beginAttempt(documentID: uploadedDocument.id, runID: context.runID, phase: .run),
        ])
        pending = []
        var document = begun.document!
        if uploadedDocument.outcomeUnknown {
            logger(document).warning("sending a run whose previous outcome is unknown; counted in duplicate_runs (\(document.duplicateRuns))")
        }
        let sent = document
        let attempt = AttemptHandle(id: begun.attemptIDs[0], phase: .run, started: ContinuousClock.now)
        let ledger = self.ledger
        let documentID = document.id
        let started = Date()
        do {
            let streams = request.responseMode == .streaming
            let result = try await context.client.run(request) { ids in
                // Persist the ids the moment Dify sends them: they are how a lost run is found again. A blocking
                // answer brings them with the whole result, which is written with them just below (issue 14: one
                // transaction less per document; a stop in between is recovered as any blocking run cut off before
                // its answer is: looked up by user and time).
                guard streams else { return }
                try await ledger.update(documentID, in: .running, [.workflowRunID(ids.workflowRunID), .taskID(ids.taskID), .messageID(ids.messageID)])
            }
            context.backpressure.recordAnswer()
            // Issue 14: the attempt's end and the run's final ids are written with what follows (the usage and the
            // stored result of a succeeded run; before anything else otherwise).
            let ended: [LedgerWrite] = [
                finishing(attempt, AttemptResult(outcome: result.status.isSuccess ? "ok" : result.status == .paused ? "paused" : "failed",
                                                 httpStatus: 200, message: result.error, failedNode: result.failedNode)),
                .update(document.id, in: .running, [.workflowRunID(result.workflowRunID), .taskID(result.taskID), .messageID(result.messageID)]),
            ]
            document.workflowRunID = result.workflowRunID
            document.taskID = result.taskID
            document.messageID = result.messageID
            if result.isPaused, let runID = result.workflowRunID ?? document.workflowRunID {
                document = try await ledger.write(ended).document ?? document
                return .done(try await pause(document, from: .running, runID: runID))
            }
            let latency = result.usage.latency.map { Int(($0 * 1000).rounded()) } ?? Int(Date().timeIntervalSince(started) * 1000)
            return .done(try await finishRun(document, result: result, latencyMilliseconds: latency, pending: ended))
        } catch let error as DifyError {
            try await finish(attempt, error)
            if error.code == .cancelled { throw error }
            let refund = budget.changesAfterFailure(before: uploadedDocument, sent: sent, error)
            switch FailurePolicy.decide(error, phase: .run) {
            case .uploadAgain:
                logger(document).warning("Dify answered \"Invalid upload file\" for our own upload; uploading again")
                return .reupload(try await ledger.transition(document.id, from: .running, to: .uploading, [.uploadFileID(nil)] + refund))
            case .recover:
                let ids = error.runStarted ?? RunStarted()
                document = try await ledger.transition(document.id, from: .running, to: .recovering,
                                                       [.workflowRunID(ids.workflowRunID ?? document.workflowRunID),
                                                        .taskID(ids.taskID ?? document.taskID), .messageID(ids.messageID ?? document.messageID),
                                                        .lastError(recorded(error))] + refund
                                                       + (error.serverDate.map { [.difyClockOffsetMilliseconds(clockOffset($0))] } ?? []))
                logger(document).warning("run outcome unknown (\(error.message)); looking it up, never sending it again blindly")
                return .done(try await InFlightRecovery(processor: self).recover(document))
            default:
                if !refund.isEmpty { document = try await ledger.update(document.id, in: .running, refund) }
                return .done(try await handle(error, document: document, from: .running))
            }
        }
    }

    /// Dify's clock minus ours, in milliseconds, from a time Dify just reported.
    func clockOffset(_ difyNow: Date) -> Int64 {
        Int64((difyNow.timeIntervalSince(context.clock.now()) * 1000).rounded())
    }

    func runRequest(_ document: DocumentInputs, uploadFileID: String?) -> RunRequest {
        var inputs: [String: JSONValue] = [:]
        for (key, value) in spec.dify.inputs { inputs[key] = value.json }
        var files: [JSONValue] = []
        document.apply(uploadFileID: uploadFileID, to: &inputs, files: &files)
        let mode = context.preflight.mode
        let isChat = [AppMode.chat, .advancedChat, .agentChat, .agent].contains(mode)
        var query = isChat ? (spec.dify.query ?? "Process the attached document.") : spec.dify.query
        if case .row(_, let rowQuery?) = document { query = rowQuery }
        return RunRequest(mode: mode, inputs: inputs, user: spec.dify.user,
                          responseMode: spec.dify.responseMode == "blocking" && ![AppMode.agentChat, .agent].contains(mode) ? .blocking : .streaming,
                          query: query,
                          workflowID: spec.dify.workflowID, files: files.isEmpty ? nil : files)
    }

    // MARK: - Results

    /// Records a run that ended (from the response, or found again by recovery).
    ///
    /// `pending`: writes of the run not yet made (its attempt's end, its ids); they are made in the transaction that
    /// stores a succeeded run's usage and result, or first otherwise.
    func finishRun(_ document: DocumentRecord, result: RunResult, latencyMilliseconds: Int?,
                   pending: [LedgerWrite] = []) async throws -> DocumentOutcome {
        // Nothing is recorded or written for a document another process took over (this one was stopped or cut
        // off past its lease): that process recovers the run and writes the result.
        try await ledger.confirmLease(documentID: document.id)
        var pending = pending
        let usage = UsageAmounts(promptTokens: result.usage.promptTokens, completionTokens: result.usage.completionTokens,
                                 totalTokens: result.usage.totalTokens, totalPrice: result.usage.totalPrice,
                                 currency: result.usage.currency, latencyMilliseconds: latencyMilliseconds,
                                 source: result.usage.source?.rawValue)
        let difyRunID = result.workflowRunID ?? result.messageID ?? document.workflowRunID ?? document.messageID
        if usage.totalTokens != nil || usage.totalPrice != nil {
            pending.append(.recordUsage(documentID: document.id, jobID: context.job.id, runID: context.runID, difyRunID: difyRunID, usage))
            context.observer.record(.usageRecorded(job: spec.name, usage: usage))
        }
        let from = document.state
        guard result.status.isSuccess else {
            if !pending.isEmpty { try await ledger.write(pending) }
            let message = result.error.map { "the \(context.preflight.mode.rawValue) run ended \(result.status.rawValue): \($0)" }
                ?? "the run ended \(result.status.rawValue)"
            if result.status == .failed {
                let failure = RunFailure(node: result.failedNode, error: result.error ?? "")
                if FailurePolicy.decideEndedRun(failure, previous: try await previousRunFailure(document.id)) == .dead {
                    let node = failure.node.map { "node \"\($0)\": " } ?? ""
                    return try await dead(document, from: from, error: RecordedError(
                        errorClass: "permanent", code: "failed_same_way_twice",
                        message: "\(FailurePolicy.sameFailureTwiceReason) (\(node)\(failure.error.isEmpty ? "no error text" : failure.error)); "
                            + "not sent again: the same content would fail again. Fix the workflow or the file, then `dify-batch retry \(document.id)`"))
                }
            }
            return try await failed(document, from: from, classification: .retryable, code: "run_\(result.status.rawValue)",
                                    message: message, httpStatus: 200, difyCode: nil, retryAfter: nil)
        }
        var outputs = result.outputs
        if let answer = result.answer, outputs["answer"] == nil { outputs["answer"] = .string(answer) }
        var finished = document
        finished.workflowRunID = result.workflowRunID ?? document.workflowRunID
        finished.messageID = result.messageID ?? document.messageID
        finished.taskID = result.taskID ?? document.taskID
        return try await settler.succeeded(finished, from: from, status: result.status == .partialSucceeded ? "partial-succeeded" : "succeeded",
                                           outputs: outputs, with: pending)
    }

    // MARK: - Failures

    /// The run of this document version that ended `failed` before the one just recorded (the last attempt with
    /// outcome `failed` is the current run's), from the ledger's attempts.
    func previousRunFailure(_ documentID: Int64) async throws -> RunFailure? {
        let failures = try await ledger.attempts(documentID: documentID)
            .filter { $0.outcome == "failed" && ($0.phase == .run || $0.phase == .recover) }
        guard failures.count >= 2 else { return nil }
        let previous = failures[failures.count - 2]
        return RunFailure(node: previous.failedNode, error: previous.message ?? "")
    }

    /// The one catch site: what a failed upload or run means, from ``FailurePolicy``.
    func handle(_ error: DifyError, document: DocumentRecord, from state: DocumentState) async throws -> DocumentOutcome {
        switch FailurePolicy.decide(error, phase: state == .uploading ? .upload : .run) {
        case .stopJob(.unavailable, unreachable: true):
            try await putBack(document, from: state, refund: true, after: backoffDelay(attempt: 1, retryAfter: error.retryAfter), error: error)
            return .stopJob(JobStop(.unavailable, job: spec.name, PreflightFailure.unreachableMessage(error, spec: spec), isUnreachable: true))
        case .backOff:
            return try await backOff(document, from: state, error: error)
        case .stopJob(.configuration, _):
            try await putBack(document, from: state, refund: true, after: .zero, error: error)
            return .stopJob(JobStop(.configuration, job: spec.name, "\(error.message) (HTTP \(error.httpStatus.map(String.init) ?? "-") \(error.difyCode ?? ""))"))
        case .stopJob(let reason, _):
            try await putBack(document, from: state, refund: true, after: .seconds(900), error: error)
            return .stopJob(JobStop(reason, job: spec.name, "Dify quota exhausted: \(error.message); work is kept for the next run"))
        case .dead:
            return try await dead(document, from: state, error: recorded(error))
        case .retry, .recover, .uploadAgain:
            return try await failed(document, from: state, classification: error.classification, code: error.difyCode ?? error.code.description,
                                    message: error.message, httpStatus: error.httpStatus, difyCode: error.difyCode, retryAfter: error.retryAfter)
        }
    }

    /// A 429 or Dify's concurrency cap: the job's shared backpressure grows; the document waits without using an
    /// attempt. After `retry.max_backpressure` of continuous backpressure `run` stops the job (exit 4).
    private func backOff(_ document: DocumentRecord, from state: DocumentState, error: DifyError) async throws -> DocumentOutcome {
        let now = context.clock.instant()
        let delay = context.backpressure.record429(retryAfter: error.retryAfter, now: now)
        let continuous = context.backpressure.continuous(now: now)
        if error.backpressureSource == .gatewayRateLimit || (error.httpStatus == 429 && error.difyCode == nil) {
            logger(document).warning("HTTP 429 from a gateway/CDN rate limit in front of Dify, not from Dify (body: \(error.bodySnippet ?? String(error.message.prefix(200)))); backing off \(HumanDuration.format(delay)) without using an attempt")
        } else {
            logger(document).info("Dify is at its concurrency limit (429 \(error.difyCode ?? "")); backing off \(HumanDuration.format(delay)) without using an attempt")
        }
        try await putBack(document, from: state, refund: true, after: delay, error: error)
        if context.stopOnBackpressure && continuous >= spec.retry.maxBackpressure {
            return .stopJob(JobStop(.unavailable, job: spec.name,
                                    "Dify (or a gateway in front of it) answered 429 for \(HumanDuration.format(continuous)) without a break (retry.max_backpressure: \(HumanDuration.format(spec.retry.maxBackpressure))); work is kept for the next run"))
        }
        return .settled(.failed)
    }

    /// Records a `paused` run (Human Input): the document leaves its worker slot; its run is polled, never re-sent.
    func pause(_ document: DocumentRecord, from state: DocumentState, runID: String) async throws -> DocumentOutcome {
        let now = context.clock.now()
        let moved = try await ledger.transition(document.id, from: state, to: .paused,
                                                [.workflowRunID(runID), .pausedAt(document.pausedAt ?? now),
                                                 .nextAttemptAt(now.addingTimeInterval(context.recoveryPollInterval.seconds)), .lastError(nil)])
        logger(document).info("run \(runID) is paused in Dify (waiting for human input); polling it, never sending it again")
        context.onSettled(moved)
        return .settled(.paused)
    }

    /// A sent run whose outcome could not be established: parked `unresolved` with an `.error.json` (or, with
    /// `recovery.on_unknown: resend`, queued again and counted in `duplicate_runs` when it is sent).
    func unresolved(_ document: DocumentRecord, from state: DocumentState, reason: String) async throws -> DocumentOutcome {
        let sentAt = document.runSentAt.map { LogTimestamp.format($0) } ?? "an unknown time"
        if spec.recovery.onUnknown == .resend && budget.allowsSend(document) {
            let moved = try await ledger.transition(document.id, from: state, to: .pending,
                                                    [.outcomeUnknown(true), .workflowRunID(nil), .taskID(nil), .messageID(nil),
                                                     .lastError(RecordedError(errorClass: "ambiguous", code: "outcome_unknown", message: reason))])
            logger(document).warning("\(reason); sending it again (recovery.on_unknown: resend; it may run twice, counted in duplicate_runs)")
            context.onSettled(moved)
            return .settled(.pending)
        }
        let ids = [document.uploadFileID.map { "upload_file_id \($0)" }, document.workflowRunID.map { "workflow_run_id \($0)" },
                   document.taskID.map { "task_id \($0)" }, document.messageID.map { "message_id \($0)" }].compactMap { $0 }
        let message = "the run request was sent at \(sentAt) and its outcome could not be established: \(reason). The run may have happened in Dify (and been billed). "
            + "Look for it in Dify's logs (user \(spec.dify.user)\(ids.isEmpty ? "" : ", " + ids.joined(separator: ", "))). "
            + "If it did not run, send it again with `dify-batch retry --state unresolved \(document.id)`; otherwise leave it"
        let error = RecordedError(errorClass: "ambiguous", code: "outcome_unknown", message: message)
        // The source stays in the inbox until someone decides (never moved to a failed folder).
        try await settler.endWithError(document, from: state, to: .unresolved, error: error, difyCode: nil, disposeSource: false,
                                       extra: [.outcomeUnknown(true)])
        logger(document).error("unresolved: \(message)")
        return .settled(.unresolved)
    }

    func recorded(_ error: DifyError) -> RecordedError {
        RecordedError(errorClass: error.classification.errorClassName, code: error.difyCode ?? error.code.description,
                      message: error.message, httpStatus: error.httpStatus)
    }

    /// An attempt under way: its row's id, or (issue 14: an upload) no row yet, written whole when it ends.
    struct AttemptHandle {
        var id: Int64?
        var documentID: Int64
        var runID: Int64?
        var phase: AttemptPhase
        var started: ContinuousClock.Instant

        init(id: Int64, phase: AttemptPhase, started: ContinuousClock.Instant) {
            (self.id, documentID, runID, self.phase, self.started) = (id, 0, nil, phase, started)
        }

        init(documentID: Int64, runID: Int64?, phase: AttemptPhase, started: ContinuousClock.Instant) {
            (id, self.documentID, self.runID, self.phase, self.started) = (nil, documentID, runID, phase, started)
        }
    }

    func beginAttempt(_ documentID: Int64, _ phase: AttemptPhase) async throws -> AttemptHandle {
        AttemptHandle(id: try await ledger.beginAttempt(documentID: documentID, runID: context.runID, phase: phase),
                      phase: phase, started: ContinuousClock.now)
    }

    func finishAttempt(_ attempt: AttemptHandle, _ result: AttemptResult) async throws {
        try await ledger.write([finishing(attempt, result)])
    }

    /// The write that ends an attempt (made by the caller in a batch); the attempt's duration is observed now.
    func finishing(_ attempt: AttemptHandle, _ result: AttemptResult) -> LedgerWrite {
        observe(attempt, result)
        guard let id = attempt.id else {
            return .attempt(documentID: attempt.documentID, runID: attempt.runID, phase: attempt.phase,
                            elapsedMilliseconds: (ContinuousClock.now - attempt.started).milliseconds, result)
        }
        return .finishAttempt(id, result)
    }

    private func observe(_ attempt: AttemptHandle, _ result: AttemptResult) {
        context.observer.record(.attemptFinished(job: spec.name, phase: attempt.phase, outcome: result.outcome,
                                                 seconds: (ContinuousClock.now - attempt.started).seconds))
    }

    func finish(_ attempt: AttemptHandle, _ error: DifyError) async throws {
        try await finishAttempt(attempt, Self.attemptResult(error))
    }

    /// How an attempt that ended in `error` is recorded.
    static func attemptResult(_ error: DifyError) -> AttemptResult {
        AttemptResult(outcome: error.classification.errorClassName, httpStatus: error.httpStatus, difyCode: error.difyCode, message: error.message)
    }

    func backoffDelay(attempt: Int, retryAfter: Duration?) -> Duration {
        context.random.delay(backoff, afterAttempt: max(1, attempt), retryAfter: retryAfter)
    }

    /// Back to `failed` (due after `after`) without counting the attempt when `refund`.
    private func putBack(_ document: DocumentRecord, from state: DocumentState, refund: Bool, after: Duration, error: DifyError) async throws {
        let due = context.clock.now().addingTimeInterval(after.seconds)
        var changes: [DocumentChange] = [.nextAttemptAt(due), .lastError(recorded(error))]
        if refund { changes.append(.attempts(max(0, document.attempts - 1))) }
        let moved = try await ledger.transition(document.id, from: state, to: .failed, changes)
        context.onSettled(moved)
    }

    /// A counted failure: `failed` with a backoff, or `dead` when out of attempts.
    func failed(_ document: DocumentRecord, from state: DocumentState, classification: ErrorClass, code: String,
                        message: String, httpStatus: Int?, difyCode: String?, retryAfter: Duration?) async throws -> DocumentOutcome {
        let error = RecordedError(errorClass: classification.errorClassName, code: code, message: message, httpStatus: httpStatus)
        if document.attempts >= spec.retry.maxAttempts {
            return try await dead(document, from: state, error: error, difyCode: difyCode)
        }
        let delay = backoffDelay(attempt: document.attempts, retryAfter: retryAfter)
        let moved = try await ledger.transition(document.id, from: state, to: .failed,
                                                [.nextAttemptAt(context.clock.now().addingTimeInterval(delay.seconds)), .lastError(error)])
        logger(document).warning("attempt \(document.attempts)/\(spec.retry.maxAttempts) failed (\(code): \(message)); retrying in \(HumanDuration.format(delay))")
        context.onSettled(moved)
        return .settled(.failed)
    }

    private func dead(_ document: DocumentRecord, from state: DocumentState, error: RecordedError, difyCode: String? = nil) async throws -> DocumentOutcome {
        try await settler.endWithError(document, from: state, to: .dead, error: error,
                                       difyCode: difyCode ?? (error.httpStatus == nil ? nil : error.code))
        logger(document).error("dead after \(document.attempts) attempt(s): \(error.code ?? "-"): \(error.message)")
        return .settled(.dead)
    }

    func reject(_ document: DocumentRecord, from state: DocumentState, code: String, message: String) async throws -> DocumentOutcome {
        try await settler.endWithError(document, from: state, to: .rejected,
                                       error: RecordedError(errorClass: "rejected", code: code, message: message), difyCode: nil,
                                       disposeSource: false)
        logger(document).error("\(code): \(message)")
        return .settled(.rejected)
    }
}

extension ErrorClass {
    /// The snake_case name used in the ledger and reports.
    var errorClassName: String {
        switch self {
        case .invalidUploadFile: return "invalid_upload_file"
        default: return rawValue
        }
    }
}

extension SpecValue {
    /// As a DifyKit JSON value for `inputs`.
    var json: JSONValue {
        switch self {
        case .null: return .null
        case .bool(let value): return .bool(value)
        case .int(let value): return .int(Int64(value))
        case .double(let value): return .number(value)
        case .string(let value): return .string(value)
        case .list(let values): return .array(values.map(\.json))
        case .map(let values): return .object(values.mapValues(\.json))
        }
    }
}
