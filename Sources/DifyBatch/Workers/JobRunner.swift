import DifyKit
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// What one job did in one invocation.
public struct JobSummary: Sendable {
    public var job: String
    /// Documents that reached each state in this invocation.
    public var counts: [DocumentState: Int] = [:]
    /// Set when the job stopped early.
    public var stop: JobStop?
    /// Every document touched in this invocation, in its last known state (empty when
    /// ``PipelineOptions/keepsTouchedDocuments`` is false).
    public var touched: [DocumentRecord] = []
    /// Documents still waiting (pending or failed) when the job ended.
    public var remaining = 0
    /// Of the documents touched, those left `failed` by a local error after their result was stored (outbox,
    /// disposal, ledger): exit 1. They are retried from the stored result, never sent to Dify again.
    public var localFailures = 0
    /// Inbox files `match.include`/`exclude` left out at the last scan (relative paths).
    public var notMatched: [String] = []
    /// Files seen and still changing when the job ended (issue 16).
    public var unsettled = UnsettledFiles.none

    public init(job: String) { self.job = job }
}

/// Runs one job: preflight, crash recovery, then the scan → claim → process loop with a bounded task group of
/// `concurrency` documents in flight (and the global limiter across jobs).
public final class JobRunner: Sendable {
    let spec: JobSpec
    let ledger: any Ledger
    let client: DifyClient
    let options: PipelineOptions
    let clock: any PipelineClock
    let logger: Logger
    let limiter: InflightLimiter?
    let runID: Int64?
    let observer: PipelineObservers
    /// Fired to stop this job alone (drained like a shutdown): its spec was removed or changed.
    let stopRequest: ShutdownTrigger

    public init(spec: JobSpec, ledger: any Ledger, client: DifyClient, options: PipelineOptions, clock: any PipelineClock,
                logger: Logger, limiter: InflightLimiter?, runID: Int64?, observer: PipelineObservers = PipelineObservers(),
                stopRequest: ShutdownTrigger = ShutdownTrigger()) {
        self.stopRequest = stopRequest
        self.observer = observer
        self.spec = spec
        self.ledger = ledger
        self.client = client
        self.options = options
        self.clock = clock
        self.logger = logger
        self.limiter = limiter
        self.runID = runID
    }

    /// Things that wake the job loop.
    enum Wake: Sendable {
        case documentDone(DocumentOutcome)
        /// A poll of a paused run ended (it held no worker slot).
        case pausedPolled(Int64, DocumentOutcome)
        case filesChanged
        case tick
        case uploaded
        case shutdown
        case graceExpired
        /// A second shutdown signal: cancel what is in flight now.
        case drainCancelled
    }

    /// Collects what the job touched (written from worker tasks).
    final class Tracker: Sendable {
        struct State {
            /// Every touched document's last record, when kept (``PipelineOptions/keepsTouchedDocuments``).
            var touched: [Int64: DocumentRecord] = [:]
            var counts: [DocumentState: Int] = [:]
            /// Local failures per document in this invocation, and whether its last known state is one.
            var localFailures: [Int64: Int] = [:]
            var nowLocallyFailed: Set<Int64> = []
        }
        let state = Mutex(State())
        let notMatched = Mutex<[String]>([])
        let unsettled = Mutex<UnsettledFiles>(.none)
        /// Settled files the ledger could not record at the last scan (path, error).
        let unrecorded = Mutex<[(path: String, error: String)]>([])
        let keepsRecords: Bool

        init(keepsRecords: Bool = true) { self.keepsRecords = keepsRecords }

        func settled(_ document: DocumentRecord) {
            state.withLock { value in
                if keepsRecords { value.touched[document.id] = document }
                if document.state.isTerminal { value.counts[document.state, default: 0] += 1 }
                if Self.isLocalFailure(document) {
                    value.localFailures[document.id, default: 0] += 1
                    value.nowLocallyFailed.insert(document.id)
                } else if !value.nowLocallyFailed.isEmpty {
                    value.nowLocallyFailed.remove(document.id)
                }
            }
        }

        static func isLocalFailure(_ document: DocumentRecord) -> Bool {
            document.state == .failed && document.lastError?.errorClass == LocalFailure.errorClass
        }

        /// Documents now `failed` by local work that failed at least `limit` times in this invocation.
        func givenUp(limit: Int) -> Int {
            state.withLock { value in
                value.localFailures.filter { id, count in count >= limit && value.nowLocallyFailed.contains(id) }.count
            }
        }
    }

    /// Runs the job until its work is done (`run`) or a shutdown signal (`watch`).
    public func run(job: JobRecord) async -> JobSummary {
        var summary = JobSummary(job: spec.name)
        let tracker = Tracker(keepsRecords: options.keepsTouchedDocuments)
        observer.record(.jobAdmitted(job: spec.name))
        do {
            let preflight = try await preflightWithRetry()
            if let preflight {
                // The job can start: now its folders are created (issue 16 trial: not before the preflight).
                if let problem = Pipeline.unwritableFolder(spec, create: true) { throw JobStop(.usage, job: spec.name, problem) }
                try await claimInbox()
                try await ledger.setAppMode(jobID: job.id, mode: preflight.mode.rawValue)
                observer.record(.jobStarted(job: spec.name, mode: preflight.mode.rawValue))
                summary.stop = try await loop(job: job, preflight: preflight, tracker: tracker)
            }
        } catch let stop as JobStop {
            summary.stop = stop
        } catch is CancellationError {
            // Shutdown before the job started: nothing to record.
        } catch {
            summary.stop = JobStop(.unavailable, job: spec.name, "\(error)")
        }
        // `run` has not taken files the ledger refused to record: not "nothing to do" (exit 0) but exit 4.
        let unrecorded = tracker.unrecorded.withLock { $0 }
        if options.mode == .once, summary.stop == nil, let first = unrecorded.first {
            summary.stop = JobStop(.unavailable, job: spec.name,
                                   "\(unrecorded.count) inbox file(s) could not be recorded in the ledger (first: \(first.path): \(first.error)); free space on the ledger's file system (or fix its I/O error): the next run takes them")
        }
        // `run` prints the stop once, in its summary line at the end; a daemon logs it when it happens.
        if let stop = summary.stop, options.mode != .once {
            logger.error("\(stop)")
        }
        observer.record(.jobFinished(job: spec.name, stop: summary.stop))
        let snapshot = tracker.state.withLock { $0 }
        summary.counts = snapshot.counts
        summary.touched = snapshot.touched.values.sorted { $0.id < $1.id }
        summary.localFailures = snapshot.nowLocallyFailed.count
        summary.notMatched = tracker.notMatched.withLock { $0 }
        summary.unsettled = tracker.unsettled.withLock { $0 }
        summary.remaining = (try? await ledger.waitingCount(jobID: job.id)) ?? 0
        return summary
    }

    /// Records this ledger as the owner of the job's inbox before anything is sent (``InboxOwnership``). Throws
    /// ``JobStop`` (exit 2) when the outbox marker cannot be written or another ledger claimed the inbox meanwhile.
    private func claimInbox() async throws {
        let identity = try await ledger.identity()
        let previous = InboxOwnership.otherOwner(spec: spec, identity: identity)
        do {
            let inInbox = try InboxOwnership.claim(spec: spec, identity: identity, takeOver: options.takeOverInbox, now: clock.now())
            if !inInbox { logger.debug("the inbox is not writable: its owner ledger is recorded in the outbox only") }
        } catch let error as InboxOwnershipError {
            throw JobStop(.usage, job: spec.name, error.message)
        } catch {
            throw JobStop(.usage, job: spec.name, WritableFolder.problem(key: "outbox", folder: spec.outbox, error: error))
        }
        if let previous, options.takeOverInbox {
            logger.warning("took the inbox over from the ledger \(previous.owner.ledger) (ledger id \(previous.owner.ledgerID)) with --take-over-inbox; this ledger (\(identity.location)) owns it now")
        }
    }

    /// Preflight; in `watch` mode transport problems are retried with backoff until shutdown.
    private func preflightWithRetry() async throws -> JobPreflight? {
        var attempt = 0
        var random = SystemRandomNumberGenerator()
        while true {
            do {
                return try await JobPreflight.run(spec: spec, client: client)
            } catch let error as DifyError {
                let stop = PreflightFailure.stop(for: error, spec: spec)
                if stop.reason == .configuration { throw stop }
                if error.classification == .quota && options.mode == .once { throw stop }
                attempt += 1
                if options.mode == .once && attempt >= options.unreachableLimit {
                    throw JobStop(.unavailable, job: spec.name, "\(stop.message); work is kept for the next run", isUnreachable: true)
                }
                let delay = Backoff(policy: spec.retry).delay(afterAttempt: min(attempt, 8), retryAfter: error.retryAfter,
                                                             using: &random)
                // The first failure at once, then a reminder at each (growing) backoff step.
                let text = attempt == 1 ? stop.message : "still failing after \(attempt) attempts: \(stop.message)"
                logger.warning("\(text); retrying in \(HumanDuration.format(delay))",
                               metadata: ["attempt": .stringConvertible(attempt)])
                if Task.isShuttingDownGracefully { return nil }
                // A shutdown signal ends the wait at once.
                do {
                    try await cancelWhenGracefulShutdown { try await self.clock.sleep(for: delay) }
                } catch is CancellationError where Task.isShuttingDownGracefully {
                    return nil
                }
            }
        }
    }


    // MARK: - The loop

    private func loop(job: JobRecord, preflight: JobPreflight, tracker: Tracker) async throws -> JobStop? {
        let (wakes, wake) = AsyncStream<Wake>.makeStream(bufferingPolicy: .unbounded)
        let drainToken = options.drainCancellation.onFire { wake.yield(.drainCancelled) }
        defer { options.drainCancellation.remove(drainToken) }
        // This one job stops (drains) when its spec was removed or changed (`watch` reloads).
        let stopToken = stopRequest.onFire { wake.yield(.shutdown) }
        defer { stopRequest.remove(stopToken) }
        let uploadedOnce = Atomic<Bool>(false)
        var context = JobContext(spec: spec, job: job, preflight: preflight, client: client, ledger: ledger, clock: clock,
                                 runID: runID, logger: logger,
                                 rateLimiter: spec.rateLimit.map { RateLimiter(perMinute: $0, clock: clock) },
                                 random: SharedRandom(seed: options.seed ?? UInt64.random(in: 1...UInt64.max)))
        context.recoveryPollInterval = options.recoveryPollInterval
        context.stopOnBackpressure = options.mode == .once
        let lookupStop = context.lookupStop
        context.onUploaded = {
            if !uploadedOnce.exchange(true, ordering: .relaxed) { wake.yield(.uploaded) }
        }
        let observer = self.observer
        let jobName = spec.name
        context.onSettled = { document in
            tracker.settled(document)
            observer.record(.documentSettled(job: jobName, document: document))
        }
        context.observer = observer
        let scanner = JobScanner(spec: spec, job: job, preflight: preflight, ledger: ledger, clock: clock, logger: logger,
                                 reprocess: options.reprocess, runID: runID, givesUpUnsettled: options.mode == .once,
                                 onSettled: { document in
                                     tracker.settled(document)
                                     observer.record(.documentSettled(job: jobName, document: document))
                                 }, onNotMatched: { paths in tracker.notMatched.withLock { $0 = paths } })
        context.onSuperseded = { path in
            // The file at `path` is a new version: look at it again now (a `run` would otherwise end without it).
            scanner.forget(path: path)
            wake.yield(.filesChanged)
        }
        let processor = DocumentProcessor(context: context)

        // Temporary files a killed process left in the outbox (we hold the job's lock). Not with a shared ledger:
        // other processes may be writing into the same outbox right now.
        let coordinated = ledger.coordinatesProcesses
        let leftoverTemporaries = coordinated ? 0 : AtomicFile.removeTemporaryFiles(under: spec.outbox)
        if leftoverTemporaries > 0 {
            logger.info("removed \(leftoverTemporaries) temporary file(s) an interrupted process left in the outbox")
        }

        // Crash recovery first: documents a killed process left in flight (with a shared ledger: only those whose
        // holder's lease expired; the others belong to live processes).
        let leftovers = coordinated ? try await ledger.takeOverExpired(jobID: job.id) : try await ledger.inFlight(jobID: job.id)
        let toRecover = try await LeftoverTriage.requeueUnsent(leftovers, ledger: ledger, logger: logger)
        if !toRecover.isEmpty {
            logger.info("recovering \(toRecover.count) run(s) left in flight by an earlier process before new work starts")
        }
        var lastTakeover = clock.now()
        var holdsScannerLease = false

        let started = clock.now()
        var warmedUp = try await hasUploadedBefore(job: job)
        var stop: JobStop?
        var draining = false
        var consecutiveUnreachable = 0

        return try await withGracefulShutdownHandler {
            // A discarding group: finished document tasks are released at once (a plain task group would keep
            // every finished child until the job ends). Children never throw; they end when the group is cancelled.
            try await withThrowingDiscardingTaskGroup(returning: JobStop?.self) { group in
                // Background children: the ticker and (watch) the inotify watcher.
                group.addTask { [clock, options] in
                    while !Task.isCancelled {
                        do { try await clock.sleep(for: options.tick) } catch { return }
                        wake.yield(.tick)
                    }
                }
                func startWatcher() {
                    guard options.mode == .watch && options.useInotify else { return }
                    do {
                        let watcher = try InboxWatcher(directory: spec.inbox, recursive: spec.match.recursive)
                        group.addTask {
                            for await _ in watcher.changes() { wake.yield(.filesChanged) }
                        }
                    } catch {
                        logger.warning("inotify unavailable (\(error)); falling back to rescanning every \(HumanDuration.format(options.rescanInterval))")
                    }
                }
                startWatcher()
                // `watch`: an inbox that cannot be listed (removed, unmounted) is waited for, not fatal.
                var inboxMissing = false
                // Files that do not settle (issue 16): what the ledger was last told, and when to log them again.
                var recordedUnsettled = UnsettledFiles.none
                var nextUnsettledLog: Duration = .seconds(60)

                func reportUnsettled() async throws {
                    let unsettled = scanner.unsettled(now: clock.instant())
                    tracker.unsettled.withLock { $0 = unsettled }
                    observer.record(.unsettled(job: jobName, files: unsettled))
                    if unsettled.count != recordedUnsettled.count || unsettled.oldestPath != recordedUnsettled.oldestPath {
                        recordedUnsettled = unsettled
                        if let runID {
                            let since = unsettled.count > 0 ? clock.now().addingTimeInterval(-unsettled.oldestFor.seconds) : nil
                            try await ledger.recordUnsettled(runID: runID, jobID: job.id, count: unsettled.count,
                                                             oldestPath: unsettled.oldestPath, since: since)
                        }
                    }
                    guard let text = unsettled.summary else {
                        nextUnsettledLog = .seconds(60)
                        return
                    }
                    // At 1m, 2m, 4m, … of the oldest file's changing, then hourly.
                    if unsettled.oldestFor >= nextUnsettledLog {
                        let what = options.mode == .watch
                            ? "still waiting (watch never gives up on a file)"
                            : "run gives up on a file after match.settle_timeout (\(HumanDuration.format(spec.match.settleTimeout)))"
                        logger.warning("\(text); \(what)")
                        nextUnsettledLog = unsettled.oldestFor + min(max(unsettled.oldestFor, .seconds(60)), .seconds(3600))
                    }
                }

                var inFlight = 0
                var heldSlots = 0
                // Documents whose worker stopped on a ledger/file-system error while they were in flight: sorted
                // again like a crash's leftovers once their backoff is over (a daemon would otherwise leave them in
                // flight until its restart, with nobody working on them).
                var stranded = StrandedDocuments()
                // Recoveries go first, bounded like any other work.
                var recoveryQueue = toRecover[...]
                var needScan = true
                var lastFullScan: Date? = nil
                // Paused runs (Human Input) being polled right now; they hold no worker slot.
                var polling: Set<Int64> = []
                // A new invocation polls every paused run once at its start, whatever its next poll time.
                var firstPausedPoll = true

                func pollPausedRuns() async throws {
                    guard !draining, stop == nil else { return }
                    let now = clock.now()
                    let everyOne = firstPausedPoll
                    firstPausedPoll = false
                    let due = try await ledger.documents(matching: DocumentFilter(jobName: job.name, states: [.paused]))
                        .filter { !polling.contains($0.id) && (everyOne || ($0.nextAttemptAt ?? now) <= now) }
                    for document in due {
                        polling.insert(document.id)
                        group.addTask {
                            let outcome = await processor.pollPaused(document)
                            wake.yield(.pausedPolled(document.id, outcome))
                        }
                    }
                }

                func startRecoveries() async {
                    while inFlight < spec.concurrency, let next = recoveryQueue.popFirst() {
                        inFlight += 1
                        group.addTask {
                            let outcome = await processor.recover(next)
                            wake.yield(.documentDone(outcome))
                        }
                    }
                }

                func claimMore() async throws {
                    guard !draining, stop == nil, recoveryQueue.isEmpty else { return }
                    if let maxDuration = options.maxDuration, clock.now().timeIntervalSince(started) >= maxDuration.seconds {
                        if !draining { logger.info("--max-duration reached; taking no new work; open run lookups stay recovering for the next run") }
                        draining = true
                        lookupStop.stop()
                        return
                    }
                    let cap = warmedUp ? spec.concurrency : 1
                    var want = cap - inFlight
                    guard want > 0 else { return }
                    if let limiter {
                        var got = 0
                        while got < want, await limiter.tryAcquire() { got += 1 }
                        want = got
                    }
                    guard want > 0 else { return }
                    // Issue 14: the claim counts each document's attempt in its own transaction (no write before the upload).
                    let claimed = try await ledger.claimCountingAttempts(jobID: job.id, limit: want, now: clock.now(), maxActive: spec.maxActive,
                                                                         tableFilesUncounted: preflight.rowForm != nil)
                    if let limiter {
                        for _ in claimed.count..<want { await limiter.release() }
                    }
                    heldSlots += claimed.count
                    for document in claimed {
                        inFlight += 1
                        group.addTask {
                            let outcome = await processor.process(document, attemptCounted: true)
                            wake.yield(.documentDone(outcome))
                        }
                    }
                }

                /// Sorts the stranded documents whose backoff is over: requeued when nothing was sent, recovered
                /// (looked up, never re-sent) when a run was. A ledger still failing only pushes the next try back.
                func sortStranded() async {
                    guard !draining, stop == nil else { return }
                    for id in stranded.due(at: clock.now(), limit: options.mode == .once ? options.localRetriesPerRun : nil) {
                        do {
                            guard let document = try await ledger.document(id: id), document.state.isInFlight else {
                                stranded.resolved(id)
                                continue
                            }
                            let runs = try await LeftoverTriage.requeueUnsent([document], ledger: ledger, logger: logger)
                            stranded.resolved(id)
                            recoveryQueue.append(contentsOf: runs)
                        } catch let error as LedgerError where error.code == .leaseLost {
                            stranded.resolved(id)  // another process took it over
                        } catch {
                            let next = stranded.add(id, now: clock.now())
                            logger.warning("document \(id) is still left in flight: \(error); trying again in \(HumanDuration.format(next))")
                        }
                    }
                    await startRecoveries()
                }

                try await scanner.settleDuplicates()
                await startRecoveries()
                wake.yield(.tick)
                for await event in wakes {
                    // Paused runs are polled by time (their next poll is at least a poll interval away): at the
                    // start and on each tick, not after every document (issue 14: one ledger read less per document).
                    var pollPaused = false
                    switch event {
                    case .documentDone(let outcome):
                        inFlight -= 1
                        if heldSlots > 0, let limiter {
                            heldSlots -= 1
                            await limiter.release()
                        }
                        switch outcome {
                        case .stopJob(let reason):
                            if reason.reason == .configuration {
                                stop = stop ?? reason
                            } else if reason.isUnreachable {
                                consecutiveUnreachable += 1
                                if options.mode == .once && consecutiveUnreachable >= options.unreachableLimit { stop = stop ?? reason }
                            } else if options.mode == .once {
                                stop = stop ?? reason
                            } else {
                                logger.warning("\(reason); its documents wait for their next attempt time")
                            }
                        case .settled(let state):
                            if state == .succeeded {
                                consecutiveUnreachable = 0
                                try await scanner.settleDuplicates()
                            }
                        case .interrupted:
                            break
                        case .stranded(let id):
                            stranded.add(id, now: clock.now())
                        }
                        await startRecoveries()
                    case .pausedPolled(let id, let outcome):
                        polling.remove(id)
                        if case .settled(.succeeded) = outcome { try await scanner.settleDuplicates() }
                        if case .stopJob(let reason) = outcome, reason.reason == .configuration { stop = stop ?? reason }
                        if case .stranded(let id) = outcome { stranded.add(id, now: clock.now()) }
                    case .filesChanged:
                        needScan = true
                    case .uploaded:
                        warmedUp = true
                    case .tick:
                        pollPaused = true
                        if coordinated && !draining && stop == nil && clock.now().timeIntervalSince(lastTakeover) >= 1 {
                            // Documents of a process that died or was cut off: taken over through recovery.
                            lastTakeover = clock.now()
                            let taken = try await ledger.takeOverExpired(jobID: job.id)
                            if !taken.isEmpty {
                                let runs = try await LeftoverTriage.requeueUnsent(taken, ledger: ledger, logger: logger)
                                logger.warning("took over \(taken.count) document(s) whose process's lease expired; \(runs.count) sent run(s) are looked up, not sent again")
                                recoveryQueue.append(contentsOf: runs)
                                await startRecoveries()
                            }
                            if !holdsScannerLease { needScan = true }
                        }
                        if let next = scanner.nextSettleInstant, next <= clock.instant() { needScan = true }
                        if options.mode == .watch, let last = lastFullScan,
                           clock.now().timeIntervalSince(last) >= options.rescanInterval.seconds {
                            needScan = true
                        }
                        if !options.useInotify && options.mode == .watch { needScan = true }
                        if inboxMissing, let last = lastFullScan, clock.now().timeIntervalSince(last) >= 1 { needScan = true }
                    case .shutdown:
                        if !draining {
                            logger.info("shutting down: taking no new work; waiting up to \(HumanDuration.format(options.grace)) for \(inFlight) document(s) in flight")
                            draining = true
                            lookupStop.stop()
                            group.addTask { [clock, options] in
                                do { try await clock.sleep(for: options.grace) } catch { return }
                                wake.yield(.graceExpired)
                            }
                        }
                    case .graceExpired, .drainCancelled:
                        var why = "grace period over"
                        if case .drainCancelled = event { why = "second signal: the drain is cancelled" }
                        if inFlight > 0 {
                            logger.warning("\(why): \(inFlight) document(s) left in flight are recorded and will be recovered on the next start")
                        }
                        lookupStop.stop()
                        group.cancelAll()
                        wake.finish()
                        continue
                    }
                    if needScan && !draining && stop == nil {
                        needScan = false
                        // Exactly one process scans a job at a time (the scanner lease); the others only claim.
                        holdsScannerLease = try await ledger.takeScannerLease(jobID: job.id)
                        if holdsScannerLease {
                            lastFullScan = clock.now()
                            do {
                                try await scanner.scan()
                                tracker.unrecorded.withLock { $0 = scanner.unrecorded }
                                if inboxMissing {
                                    inboxMissing = false
                                    logger.info("the inbox \(spec.inbox) can be listed again; watching it")
                                    startWatcher()
                                }
                            } catch let error as ScanError where options.mode == .watch {
                                if !inboxMissing {
                                    inboxMissing = true
                                    logger.warning("cannot list the inbox (\(error)); waiting for it to come back (looking every second)")
                                }
                            }
                        }
                    }
                    if !stranded.isEmpty { await sortStranded() }
                    if stop == nil {
                        try await claimMore()
                        if pollPaused || firstPausedPoll { try await pollPausedRuns() }
                    }
                    try await reportUnsettled()
                    let waiting = try await ledger.waitingCount(jobID: job.id)
                    observer.record(.queue(job: jobName, inFlight: inFlight, waiting: waiting))
                    var finished: Bool
                    if stop != nil || draining {
                        finished = inFlight == 0
                    } else if options.mode == .once {
                        // Paused runs are polled while there is other work; a poll already sent is awaited (one GET).
                        // Documents whose local work kept failing (outbox, disposal) do not hold `run` open
                        // forever: after `localRetriesPerRun` failures in this invocation they wait for the next one.
                        finished = inFlight == 0 && polling.isEmpty && recoveryQueue.isEmpty && !scanner.hasUnsettledFiles
                            && waiting <= tracker.givenUp(limit: options.localRetriesPerRun)
                            && !stranded.hasRetriesLeft(limit: options.localRetriesPerRun)
                        if finished && coordinated {
                            // Another process's documents may still come back (its lease expires): wait for them.
                            let othersActive = try await ledger.othersActive(jobID: job.id)
                            finished = !othersActive
                        }
                    } else {
                        finished = false
                    }
                    if finished {
                        if options.mode == .once && !stranded.isEmpty && stop == nil {
                            // `run` gave them up after `localRetriesPerRun` tries: not "everything succeeded" (exit 0).
                            stop = JobStop(.unavailable, job: spec.name,
                                           "\(stranded.count) document(s) stayed in flight after ledger or file-system errors (see the log); the work is kept: the next run sorts them")
                        }
                        group.cancelAll()
                        wake.finish()
                        // Events still buffered in the stream (ticks) must not claim more work into a cancelled
                        // group: a document claimed now would be left `recovering` with its worker cancelled.
                        break
                    }
                }
                // Children (ticker, watcher, timers) end with the cancelled group.
                return stop
            }
        } onGracefulShutdown: {
            wake.yield(.shutdown)
        }
    }

    private func hasUploadedBefore(job: JobRecord) async throws -> Bool {
        !(try await ledger.documents(matching: DocumentFilter(jobName: job.name, states: [.succeeded], limit: 1)).isEmpty)
    }
}
