import AsyncHTTPClient
import Crypto
import DifyKit
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Requests to load the job specs again now (`watch`: SIGHUP).
public final class SpecReloadRequests: Sendable {
    let requests: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    public init() {
        (requests, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks the running `watch` to load its specs again (coalesced with a request not yet served).
    public func request() { continuation.yield() }
}

/// The jobs running in one invocation, by name: their spec, the trigger that stops each one alone, and a stream
/// of the names of jobs that ended.
final class RunningJobs: Sendable {
    private let jobs = Mutex<[String: (spec: JobSpec, stop: ShutdownTrigger)]>([:])
    private let fixed = Mutex<Set<String>>([])
    private let summaries = Mutex<[JobSummary]>([])
    let endings: AsyncStream<String>
    private let ended: AsyncStream<String>.Continuation

    init() { (endings, ended) = AsyncStream<String>.makeStream() }

    func started(_ spec: JobSpec, stop: ShutdownTrigger) { jobs.withLock { $0[spec.name] = (spec, stop) } }

    func ended(_ name: String) {
        _ = jobs.withLock { $0.removeValue(forKey: name) }
        ended.yield(name)
    }

    /// Drains and stops the job `name` alone.
    func stop(_ name: String) { jobs.withLock { $0[name]?.stop }?.fire() }

    var specs: [String: JobSpec] { jobs.withLock { $0.mapValues(\.spec) } }
    var isEmpty: Bool { jobs.withLock { $0.isEmpty } }

    /// Spec files that did not load at start and whose job started later.
    var fixedSpecFiles: Set<String> { fixed.withLock { $0 } }
    func markFixed(_ file: String) { _ = fixed.withLock { $0.insert(file) } }

    /// The summaries of jobs started by reloads, as they end.
    func record(_ summary: JobSummary) { summaries.withLock { $0.append(summary) } }
    var recorded: [JobSummary] { summaries.withLock { $0 } }
}

/// The inbox locks this process holds, by job (released when the job ends, so a new version can take it).
final class JobLocks: Sendable {
    private let locks = Mutex<[(job: String, lock: JobLock)]>([])

    func add(_ lock: JobLock, job: String) { locks.withLock { $0.append((job, lock)) } }

    func release(job: String) {
        let released = locks.withLock { value -> [JobLock] in
            let mine = value.filter { $0.job == job }.map(\.lock)
            value.removeAll { $0.job == job }
            return mine
        }
        released.forEach { $0.release() }
    }

    func releaseAll() { locks.withLock { $0 }.forEach { $0.lock.release() } }
}

/// One HTTP client per distinct CA trust (dify.ca_file, SSL_CERT_FILE), made when first needed; most setups have one.
final class HTTPClients: Sendable {
    private let clients = Mutex<[TLSTrust: HTTPClient]>([:])
    let timeouts: DifyClient.Timeouts
    let environment: [String: String]
    let maxConnectionsPerHost: Int

    init(timeouts: DifyClient.Timeouts, environment: [String: String], maxConnectionsPerHost: Int) {
        self.timeouts = timeouts
        self.environment = environment
        self.maxConnectionsPerHost = maxConnectionsPerHost
    }

    func client(caFile: String?) -> HTTPClient {
        let trust = TLSTrust.resolve(caFile: caFile, environment: environment)
        return clients.withLock { clients in
            if let existing = clients[trust] { return existing }
            let made = DifyClient.makeHTTPClient(timeouts: timeouts, maxConnectionsPerHost: maxConnectionsPerHost, trust: trust)
            clients[trust] = made
            return made
        }
    }

    func shutdown() async {
        for client in clients.withLock({ Array($0.values) }) { try? await client.shutdown() }
    }
}

extension Pipeline {
    private enum ReloadEvent: Sendable {
        case look(reason: String?)
        case ended(String)
        case shutdown
    }

    /// `watch` (issue 16): loads the specs at `paths` again on every SIGHUP (``PipelineOptions/specReloads``) and
    /// every ``PipelineOptions/specPollInterval``. A new spec (or one that did not load before and does now) starts
    /// its job; a spec whose file is gone stops its job, drained like a shutdown; a changed spec restarts its job
    /// once the old version has drained. A spec that does not load is reported once per content (all its errors,
    /// in file order) and the version already running keeps running. Returns the summaries of the jobs it started,
    /// after a graceful shutdown and once every job has ended.
    func reloadSpecs(paths: [String], running: RunningJobs, runID: Int64, limiter: InflightLimiter?, clients: HTTPClients,
                     locks: JobLocks) async -> [JobSummary] {
        let (events, emit) = AsyncStream<ReloadEvent>.makeStream()
        // Bad specs reported at start are not reported again while their content stays the same.
        var reported: [String: String] = [:]
        for failure in options.badSpecs { reported[failure.file] = Self.contentHash(failure.file) }
        let badAtStart = Set(options.badSpecs.map(\.file))
        var waitingToRestart: [String: JobSpec] = [:]
        // Why a loaded spec's job could not start, logged once per spec content and reason (tried again on every look).
        var refusals: [String: String] = [:]
        var stopping = false
        // Jobs this reloader stopped (spec removed or changed), as opposed to jobs that stopped by themselves.
        var stoppedHere: Set<String> = []

        // No job could start at all: `watch` ends as it always did (its exit code names why).
        if running.isEmpty { return [] }
        return await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { [options, clock] in
                    while !Task.isCancelled {
                        do { try await clock.sleep(for: options.specPollInterval) } catch { return }
                        emit.yield(.look(reason: nil))
                    }
                }
                group.addTask { [options] in
                    for await _ in options.specReloads.requests { emit.yield(.look(reason: "SIGHUP")) }
                }
                group.addTask {
                    for await name in running.endings { emit.yield(.ended(name)) }
                }

                func start(_ spec: JobSpec) async {
                    let job: JobRecord, key: String
                    switch await admit(spec, running: running, runID: runID, locks: locks) {
                    case .success(let admitted):
                        (job, key) = admitted
                        refusals[spec.name] = nil
                    case .failure(let refusal):
                        if refusals[spec.name] != spec.specHash + refusal.message {
                            refusals[spec.name] = spec.specHash + refusal.message
                            logger.error("\(refusal.message); the job does not start (tried again when the specs are loaded again)",
                                         metadata: ["job": "\(spec.name)"])
                        }
                        return
                    }
                    let stop = ShutdownTrigger()
                    let runner = makeRunner(spec: spec, key: key, runID: runID, limiter: limiter, clients: clients, stop: stop)
                    running.started(spec, stop: stop)
                    if badAtStart.contains(spec.specPath) { running.markFixed(spec.specPath) }
                    logger.notice("started job \(spec.name) from \(spec.specPath)", metadata: ["job": "\(spec.name)"])
                    group.addTask {
                        let summary = await runner.run(job: job)
                        running.record(summary)
                        running.ended(spec.name)
                    }
                }

                for await event in events {
                    switch event {
                    case .shutdown:
                        stopping = true
                    case .ended(let name):
                        locks.release(job: name)
                        let stoppedByReload = stoppedHere.remove(name) != nil
                        if !stopping, let next = waitingToRestart.removeValue(forKey: name) { await start(next) }
                        // Every job stopped by itself (configuration, key, lock): `watch` ends with that job's exit code,
                        // as it does without reloads; a folder emptied by removing specs keeps waiting for new ones.
                        if !stoppedByReload && running.isEmpty && waitingToRestart.isEmpty { stopping = true }
                    case .look(let reason):
                        guard !stopping else { break }
                        if let reason { logger.info("\(reason): loading the job specs again") }
                        let report = JobSpecLoader.loadReport(paths: paths)
                        let current = running.specs
                        let failedFiles = Set(report.failures.map(\.file))
                        for failure in report.failures {
                            let hash = Self.contentHash(failure.file)
                            guard reported[failure.file] != hash else { continue }
                            reported[failure.file] = hash
                            let keeps = current.values.filter { $0.specPath == failure.file }.map(\.name)
                            let consequence = keeps.isEmpty ? "the spec is skipped until it is fixed"
                                : "job \(keeps.joined(separator: ", ")) keeps running its previous version until the spec is fixed"
                            logger.error("\(failure)\n\(consequence)")
                        }
                        for file in reported.keys where !failedFiles.contains(file) { reported[file] = nil }
                        let loaded = Dictionary(report.specs.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
                        for (name, spec) in current.sorted(by: { $0.key < $1.key }) where loaded[name] == nil && !failedFiles.contains(spec.specPath) {
                            logger.notice("the spec of job \(name) (\(spec.specPath)) is gone; stopping the job (in-flight documents finish first)")
                            waitingToRestart[name] = nil
                            stoppedHere.insert(name)
                            running.stop(name)
                        }
                        for spec in report.specs {
                            if let old = current[spec.name] {
                                guard old.specHash != spec.specHash, waitingToRestart[spec.name]?.specHash != spec.specHash else { continue }
                                logger.notice("the spec of job \(spec.name) changed; restarting the job once its in-flight documents finish")
                                waitingToRestart[spec.name] = spec
                                stoppedHere.insert(spec.name)
                                running.stop(spec.name)
                            } else if waitingToRestart[spec.name] == nil {
                                await start(spec)
                            }
                        }
                    }
                    if stopping && running.isEmpty { break }
                }
                group.cancelAll()
                return running.recorded
            }
        } onGracefulShutdown: {
            emit.yield(.shutdown)
        }
    }

    /// Checks and takes what a job started by a reload needs (its key, folders that overlap no running job's, a name
    /// the ledger knows with this inbox, the inbox lock, writable output folders) and registers it in this run.
    /// A problem fails with its message (naming the fix); nothing is taken then.
    private func admit(_ spec: JobSpec, running: RunningJobs, runID: Int64, locks: JobLocks) async -> Result<(JobRecord, String), Refusal> {
        do {
            let key: String
            do { key = try spec.dify.apiKey.resolve(environment: environment) } catch var error as SpecError {
                if error.file == "environment" { error.file = spec.specPath }
                throw error
            }
            try FolderOverlap.check(Array(running.specs.values.filter { $0.name != spec.name }) + [spec])
            if !options.adoptInbox, let known = try await ledger.jobs().first(where: { $0.name == spec.name }),
               FolderOverlap.canonical(known.inbox) != FolderOverlap.canonical(spec.inbox) {
                throw SpecError(file: spec.specPath, keyPath: "inbox", message: "job \(spec.name) is registered in the ledger with inbox \(known.inbox), but this spec says \(spec.inbox); give this spec its own `name:` (or restart with --adopt-inbox if the job moved)")
            }
            var lock: JobLock?
            if !ledger.coordinatesProcesses { lock = try JobLock.acquire(inbox: spec.inbox, job: spec.name) }
            let identity = try await ledger.identity()
            if let problem = Self.unwritableFolder(spec) ?? ownershipRefusal(spec, identity) {
                lock?.release()
                return .failure(Refusal(message: problem))
            }
            let job = try await ledger.register(JobRegistration(
                name: spec.name, specPath: spec.specPath, specHash: spec.specHash, baseURL: spec.dify.baseURL,
                difyUser: spec.dify.user, inbox: spec.inbox, outbox: spec.outbox))
            // Counts this job in this run (its run_jobs row).
            try await ledger.recordNotMatched(runID: runID, jobID: job.id, count: 0)
            if let lock { locks.add(lock, job: spec.name) }
            return .success((job, key))
        } catch {
            return .failure(Refusal(message: "\(error)"))
        }
    }

    /// Why a job started by a reload could not start.
    struct Refusal: Error {
        var message: String
    }

    /// sha256 of a file's bytes ("" when it cannot be read), to report a bad spec again only when it changed.
    static func contentHash(_ path: String) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        return SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }
}
