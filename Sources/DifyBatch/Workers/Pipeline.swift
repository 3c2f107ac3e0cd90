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
    let lockDirectory: String
    let environment: [String: String]
    /// Client timeouts; `total` is taken from each spec's `timeout`.
    let timeouts: DifyClient.Timeouts
    /// Progress, metrics and other watchers of what happens.
    let observer: PipelineObservers

    public init(specs: [JobSpec], ledger: any Ledger, options: PipelineOptions, lockDirectory: String,
                clock: any PipelineClock = SystemPipelineClock(), logger: Logger = Logger(label: "dify-batch"),
                environment: [String: String] = ProcessInfo.processInfo.environment,
                timeouts: DifyClient.Timeouts = .init(), observers: [any PipelineObserver] = []) {
        self.observer = PipelineObservers(observers)
        self.specs = specs
        self.ledger = ledger
        self.options = options
        self.clock = clock
        self.logger = logger
        self.lockDirectory = lockDirectory
        self.environment = environment
        self.timeouts = timeouts
    }

    /// Runs the jobs. Throws ``SpecError`` (exit 2) for a key that cannot be read; a job held by another process
    /// ends the invocation with ``ExitStatus/locked`` before anything is sent (unless `waitForLock`).
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
        var locks: [JobLock] = []
        defer { locks.forEach { $0.release() } }
        // A ledger that coordinates processes (PostgreSQL) replaces the per-job file lock with leases: several
        // processes on several hosts may serve one job.
        for spec in specs where !ledger.coordinatesProcesses {
            do {
                if options.waitForLock {
                    locks.append(try await JobLock.acquire(directory: lockDirectory, job: spec.name, waitingEvery: .milliseconds(500)))
                } else {
                    locks.append(try JobLock.acquire(directory: lockDirectory, job: spec.name))
                }
            } catch let error as JobLockError {
                logger.error("\(error)")
                let stop = JobStop(.locked, job: spec.name, "\(error)")
                var summary = JobSummary(job: spec.name)
                summary.stop = stop
                return PipelineResult(summaries: [summary], exitStatus: .locked, runID: nil)
            }
        }

        var jobs: [JobRecord] = []
        for spec in specs {
            jobs.append(try await ledger.register(JobRegistration(
                name: spec.name, specPath: spec.specPath, specHash: spec.specHash, baseURL: spec.dify.baseURL,
                difyUser: spec.dify.user, inbox: spec.inbox, outbox: spec.outbox)))
        }
        let runID = try await ledger.beginRun(command: options.mode.rawValue, pid: Int(getpid()),
                                              host: ProcessInfo.processInfo.hostName, jobIDs: jobs.map(\.id))
        let totalConcurrency = specs.reduce(0) { $0 + $1.concurrency }
        let limiter = options.maxInflight.map { InflightLimiter(limit: $0) }
        let httpClient = DifyClient.makeHTTPClient(timeouts: timeouts,
                                                   maxConnectionsPerHost: min(options.maxInflight ?? totalConcurrency, totalConcurrency) + 4)
        let summaries: [JobSummary]
        do {
            summaries = await withTaskGroup(of: (Int, JobSummary).self) { group in
                for (index, spec) in specs.enumerated() {
                    var timeouts = self.timeouts
                    timeouts.total = spec.timeout
                    let client = DifyClient(configuration: DifyClient.Configuration(baseURL: spec.dify.baseURL, apiKey: keys[index],
                                                                                    timeouts: timeouts),
                                            httpClient: httpClient)
                    var jobLogger = logger
                    jobLogger[metadataKey: "job"] = "\(spec.name)"
                    let runner = JobRunner(spec: spec, ledger: ledger, client: client, options: options, clock: clock,
                                           logger: jobLogger, limiter: limiter, runID: runID, observer: observer)
                    let job = jobs[index]
                    group.addTask { (index, await runner.run(job: job)) }
                }
                var results: [(Int, JobSummary)] = []
                for await result in group { results.append(result) }
                return results.sorted { $0.0 < $1.0 }.map(\.1)
            }
        }
        try? await httpClient.shutdown()
        let status = Self.exitStatus(for: summaries)
        try await ledger.finishRun(runID, exitCode: Int(status.rawValue))
        return PipelineResult(summaries: summaries, exitStatus: status, runID: runID)
    }

    /// 3 for a configuration stop, then 4 for unavailable/quota, then 1 when documents ended dead or rejected.
    static func exitStatus(for summaries: [JobSummary]) -> ExitStatus {
        if summaries.contains(where: { $0.stop?.reason == .locked }) { return .locked }
        if summaries.contains(where: { $0.stop?.reason == .configuration }) { return .configuration }
        if summaries.contains(where: { $0.stop?.reason == .unavailable }) { return .unavailable }
        if summaries.contains(where: { ($0.counts[.dead] ?? 0) + ($0.counts[.rejected] ?? 0) > 0 }) { return .documentsFailed }
        return .success
    }
}
