import AsyncHTTPClient
import DifyKit
import Foundation
import Logging

/// The result of a `run`/`watch` invocation.
public struct PipelineResult: Sendable {
    public var summaries: [JobSummary]
    public var exitStatus: ExitStatus
    public var runID: Int64?
}

/// Runs several jobs at once against one ledger: resolves keys, takes the job locks, records the run, and
/// maps what happened to the documented exit code.
public struct Pipeline: Sendable {
    let specs: [JobSpec]
    let ledger: any Ledger
    let options: PipelineOptions
    let clock: any PipelineClock
    let logger: Logger
    let environment: [String: String]
    /// Client timeouts; `total` is taken from each spec's `timeout`.
    let timeouts: DifyClient.Timeouts
    /// Progress, metrics and other watchers of what happens.
    let observer: PipelineObservers

    public init(specs: [JobSpec], ledger: any Ledger, options: PipelineOptions,
                clock: any PipelineClock = SystemPipelineClock(), logger: Logger = Logger(label: "dify-batch"),
                environment: [String: String] = ProcessInfo.processInfo.environment,
                timeouts: DifyClient.Timeouts = .init(), observers: [any PipelineObserver] = []) {
        self.observer = PipelineObservers(observers)
        self.specs = specs
        self.ledger = ledger
        self.options = options
        self.clock = clock
        self.logger = logger
        self.environment = environment
        self.timeouts = timeouts
    }

    /// Runs the jobs. Throws ``SpecError`` (exit 2) for a key that cannot be read, specs whose folders overlap,
    /// or a job name the ledger knows with another inbox (unless ``PipelineOptions/adoptInbox``). A job whose
    /// outbox, archive or failed folder is not writable, or whose inbox this user cannot lock, does not start
    /// (exit 2; the other jobs run). An inbox held by another process ends the invocation with
    /// ``ExitStatus/locked`` before anything is sent (unless `waitForLock`).
    public func run() async throws -> PipelineResult {
        // Keys first: a missing key is a usage error and nothing is touched.
        var keys: [String] = []
        for spec in specs {
            do {
                keys.append(try spec.dify.apiKey.resolve(environment: environment))
            } catch var error as SpecError {
                if error.file == "environment" { error.file = spec.specPath }
                throw error
            }
        }
        try FolderOverlap.check(specs)
        try await checkRegisteredInboxes()

        // Which ledger this is: an inbox another ledger owns is not started (InboxOwnership).
        let identity = try await ledger.identity()
        var refused: [Int: JobStop] = [:]
        let locks = JobLocks()
        defer { locks.releaseAll() }
        for (index, spec) in specs.enumerated() {
            // A ledger that coordinates processes (PostgreSQL) replaces the inbox lock with leases: several
            // processes on several hosts may serve one job.
            if ledger.coordinatesProcesses {
                if let problem = Self.unwritableFolder(spec) ?? ownershipRefusal(spec, identity) {
                    refused[index] = JobStop(.usage, job: spec.name, problem)
                }
                continue
            }
            let lock: JobLock
            do {
                if options.waitForLock {
                    lock = try await JobLock.acquire(inbox: spec.inbox, job: spec.name, waitingEvery: .milliseconds(500))
                } else {
                    lock = try JobLock.acquire(inbox: spec.inbox, job: spec.name)
                }
            } catch var error as JobLockError {
                if error.exitStatus == .usage {
                    refused[index] = JobStop(.usage, job: spec.name, "\(error)")
                    continue
                }
                error = await namingHolder(error)
                logger.error("\(error)")
                var summary = JobSummary(job: spec.name)
                summary.stop = JobStop(.locked, job: spec.name, "\(error)")
                return PipelineResult(summaries: [summary], exitStatus: .locked, runID: nil)
            }
            // Only the holder of the inbox touches the job's folders (creating a missing outbox is a write).
            if let problem = Self.unwritableFolder(spec) ?? ownershipRefusal(spec, identity) {
                lock.release()
                refused[index] = JobStop(.usage, job: spec.name, problem)
                continue
            }
            locks.add(lock, job: spec.name)
        }
        for stop in refused.sorted(by: { $0.key < $1.key }).map(\.value) {
            logger.error("\(stop); the job does not start")
        }

        let started = specs.indices.filter { refused[$0] == nil }
        var jobs: [Int: JobRecord] = [:]
        for index in started {
            let spec = specs[index]
            jobs[index] = try await ledger.register(JobRegistration(
                name: spec.name, specPath: spec.specPath, specHash: spec.specHash, baseURL: spec.dify.baseURL,
                difyUser: spec.dify.user, inbox: spec.inbox, outbox: spec.outbox))
        }
        let runID = try await ledger.beginRun(command: options.mode.rawValue, pid: Int(getpid()),
                                              host: JobLock.hostName, jobIDs: started.compactMap { jobs[$0]?.id })
        let totalConcurrency = specs.reduce(0) { $0 + $1.concurrency }
        let limiter = options.maxInflight.map { InflightLimiter(limit: $0) }
        let clients = HTTPClients(timeouts: timeouts, environment: environment,
                                  maxConnectionsPerHost: min(options.maxInflight ?? totalConcurrency, totalConcurrency) + 4)
        let running = RunningJobs()
        let jobSummaries: [JobSummary]
        do {
            jobSummaries = await withTaskGroup(of: (Int, [JobSummary]).self) { group in
                for (index, spec) in specs.enumerated() {
                    guard let job = jobs[index] else {
                        var summary = JobSummary(job: spec.name)
                        summary.stop = refused[index]
                        group.addTask { (index, [summary]) }
                        continue
                    }
                    let stop = ShutdownTrigger()
                    let runner = makeRunner(spec: spec, key: keys[index], runID: runID, limiter: limiter, clients: clients, stop: stop)
                    running.started(spec, stop: stop)
                    group.addTask {
                        let summary = await runner.run(job: job)
                        running.ended(spec.name)
                        return (index, [summary])
                    }
                }
                if options.mode == .watch, let paths = options.specPaths {
                    // Specs loaded again on SIGHUP and when their files change (issue 16).
                    group.addTask {
                        (Int.max, await self.reloadSpecs(paths: paths, running: running, runID: runID, limiter: limiter, clients: clients,
                                                         locks: locks))
                    }
                }
                var results: [(Int, [JobSummary])] = []
                for await result in group { results.append(result) }
                return results.sorted { $0.0 < $1.0 }.flatMap(\.1)
            }
        }
        await clients.shutdown()
        // A bad spec fixed while `watch` ran started its job: it no longer counts as a job that could not start.
        let fixed = running.fixedSpecFiles
        let summaries = jobSummaries + Self.badSpecSummaries(options.badSpecs.filter { !fixed.contains($0.file) })
        let status = Self.exitStatus(for: summaries)
        try await ledger.finishRun(runID, exitCode: Int(status.rawValue))
        return PipelineResult(summaries: summaries, exitStatus: status, runID: runID)
    }

    /// The runner of one job, with its Dify client (one HTTP client per CA trust).
    func makeRunner(spec: JobSpec, key: String, runID: Int64, limiter: InflightLimiter?, clients: HTTPClients,
                    stop: ShutdownTrigger) -> JobRunner {
        var timeouts = self.timeouts
        timeouts.total = spec.timeout
        var jobLogger = logger
        jobLogger[metadataKey: "job"] = "\(spec.name)"
        var configuration = DifyClient.Configuration(baseURL: spec.dify.baseURL, apiKey: key, timeouts: timeouts)
        // DifyKit's request lines (trace) and failures (debug) go to the job's log.
        configuration.logger = jobLogger
        let client = DifyClient(configuration: configuration, httpClient: clients.client(caFile: spec.dify.caFile))
        return JobRunner(spec: spec, ledger: ledger, client: client, options: options, clock: clock,
                         logger: jobLogger, limiter: limiter, runID: runID, observer: observer, stopRequest: stop)
    }

    /// A job that could not start for each spec file that did not load (named after the file).
    static func badSpecSummaries(_ failures: [SpecError]) -> [JobSummary] {
        failures.map { failure in
            let name = ((failure.file as NSString).lastPathComponent as NSString).deletingPathExtension
            var summary = JobSummary(job: name)
            summary.stop = JobStop(.usage, job: name, "the spec \(failure.file) did not load; fix it (see the errors above)")
            return summary
        }
    }

    /// 5 for a held inbox, 2 for a job that could not start, 3 for a configuration stop, then 4 for
    /// unavailable/quota, then 1 when documents ended dead, rejected or unresolved (or wait for local work, see ``JobSummary``).
    static func exitStatus(for summaries: [JobSummary]) -> ExitStatus {
        if summaries.contains(where: { $0.stop?.reason == .locked }) { return .locked }
        if summaries.contains(where: { $0.stop?.reason == .usage }) { return .usage }
        if summaries.contains(where: { $0.stop?.reason == .configuration }) { return .configuration }
        if summaries.contains(where: { $0.stop?.reason == .unavailable }) { return .unavailable }
        if summaries.contains(where: { ($0.counts[.dead] ?? 0) + ($0.counts[.rejected] ?? 0) + ($0.counts[.unresolved] ?? 0) + $0.localFailures > 0 }) {
            return .documentsFailed
        }
        return .success
    }

    /// A job name already registered with another inbox is a different job reusing the name (its files would be
    /// taken for the other inbox's), unless `--adopt-inbox` says the job moved.
    private func checkRegisteredInboxes() async throws {
        guard !options.adoptInbox else { return }
        let registered = Dictionary(try await ledger.jobs().map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for spec in specs {
            guard let known = registered[spec.name],
                  FolderOverlap.canonical(known.inbox) != FolderOverlap.canonical(spec.inbox) else { continue }
            throw SpecError(file: spec.specPath, keyPath: "inbox", message: """
                job \(spec.name) is registered in the ledger with inbox \(known.inbox) (spec \(known.specPath)), but this spec \
                says \(spec.inbox); if the job moved on purpose, pass --adopt-inbox; otherwise give this spec its own `name:`
                """)
        }
    }

    /// The first of outbox, archive (`after_success: move`) and failed folder this process cannot write, as a message.
    ///
    /// With `create: false` (before the job may start) a missing folder is not created: its nearest existing
    /// parent is probed. ``JobRunner`` creates the folders (`create: true`) only once Dify accepted the job's
    /// configuration, so a job that stops at its preflight (exit 3) leaves no folders behind.
    static func unwritableFolder(_ spec: JobSpec, create: Bool = false) -> String? {
        var folders = [("outbox", spec.outbox)]
        if spec.afterSuccess == .move { folders.append(("archive", spec.archive)) }
        if let failed = spec.failedFolder { folders.append(("failed_folder", failed)) }
        for (key, folder) in folders {
            do { try WritableFolder.verify(folder, create: create) } catch {
                return WritableFolder.problem(key: key, folder: folder, error: error)
            }
        }
        return nil
    }

    /// Why this ledger may not start `spec` (another ledger owns its inbox), unless `--take-over-inbox`.
    func ownershipRefusal(_ spec: JobSpec, _ identity: LedgerIdentity) -> String? {
        options.takeOverInbox ? nil : InboxOwnership.refusal(spec: spec, identity: identity)
    }

    /// Adds what the ledger's `runs` table knows about the holder's pid (its command and start time).
    private func namingHolder(_ error: JobLockError) async -> JobLockError {
        guard case .held(let pid?, let host, _) = error.code,
              let run = (try? await ledger.unfinishedRuns())?.first(where: { $0.pid == Int(pid) && $0.host == host }) else {
            return error
        }
        var named = error
        named.code = .held(pid: pid, host: host, since: run.startedAt)
        named.holderRun = "dify-batch \(run.command), run #\(run.id) in this ledger"
        return named
    }
}
