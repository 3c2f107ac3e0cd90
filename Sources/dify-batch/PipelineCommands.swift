import ArgumentParser
import DifyBatch
import DifyBatchPostgres
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// Options shared by `run` and `watch`.
struct PipelineArguments: ParsableArguments {
    @OptionGroup var ledger: LedgerOptions
    @Argument(help: "Job spec files or folders of *.yaml specs.") var specs: [String]
    @Option(name: .long, help: "Documents in flight across all jobs (default: the sum of the jobs' concurrency).") var maxInflight: Int?
    @Flag(name: .long, help: "Run documents again even when the same content already succeeded.") var reprocess = false
    @Flag(name: .long, help: "Wait for a job held by another run/watch instead of exiting with code 5.") var wait = false
    @Flag(name: .long, help: "A job name the ledger knows with another inbox moved on purpose: take this spec's inbox (otherwise exit 2).") var adoptInbox = false
    @Flag(name: .long, help: "An inbox another ledger owns (its .dify-batch-owner names that ledger) is taken over by this one: that ledger is gone or retired (otherwise exit 2).") var takeOverInbox = false
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (default info).") var logLevel: String = "info"
    @Option(name: .long, help: "Log format on stderr: human (default) or json (one JSON object per line, for log shippers).") var logFormat: String = "human"
    @Option(name: .long, help: "Progress on stderr: auto (a live line on a terminal; plain lines for `run` otherwise), always, never (default auto).") var progress: String = "auto"
    @Option(name: .long, help: .hidden) var progressInterval: String?
    @Option(name: .long, help: "PostgreSQL ledger only: how long a claimed document stays leased to this process without a heartbeat before another process may take it over through recovery (default 30s).")
    var lease: String = "30s"
    /// How long opening the ledger waits for another program's write lock (tests shorten it).
    @Option(name: .long, help: .hidden) var busyTimeout: String?

    func validate() throws {
        if let maxInflight, maxInflight < 1 { throw ValidationError("--max-inflight must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
        guard LogFormat(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be human or json") }
        guard ProgressReporter.Mode(rawValue: progress) != nil else { throw ValidationError("--progress must be auto, always or never") }
        guard let leaseDuration = HumanDuration.parse(lease), leaseDuration >= .seconds(1) else {
            throw ValidationError("--lease: expected a duration of at least 1s, such as 30s")
        }
        if let progressInterval, (HumanDuration.parse(progressInterval) ?? .zero) <= .zero {
            throw ValidationError("--progress-interval: expected a duration such as 10s")
        }
    }

    /// Loads the specs that load and reports every one that does not (all of its errors, in file order); exits 2
    /// when none loads. The bad ones are returned so the run can end with exit 2 (issue 16).
    func loadSpecs() throws -> (specs: [JobSpec], failures: [SpecError]) {
        let report = JobSpecLoader.loadReport(paths: specs)
        for failure in report.failures {
            Console.error("dify-batch: " + failure.description.replacingOccurrences(of: "\n", with: "\ndify-batch: "))
        }
        if report.specs.isEmpty { throw ExitCode(ExitStatus.usage.rawValue) }
        if !report.failures.isEmpty {
            Console.error("dify-batch: \(report.failures.count) spec file(s) did not load and are skipped; the other \(report.specs.count) job(s) run")
        }
        return (report.specs, report.failures)
    }

    /// The logger for `--log-level` and `--log-format`, writing to stderr.
    func makeLogger() -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let format = LogFormat(rawValue: logFormat) ?? .human
        var logger = Logger(label: "dify-batch") { label in format.makeHandler(label: label, level: level) }
        logger.logLevel = level
        return logger
    }

    /// The progress observer for `--progress` (`plainWhenNotTerminal`: plain lines into a pipe under `auto`).
    func makeProgress(plainWhenNotTerminal: Bool) -> ProgressReporter {
        let writer = StandardErrorWriter.shared
        let style = ProgressReporter.style(mode: ProgressReporter.Mode(rawValue: progress) ?? .auto,
                                           isTerminal: writer.isTerminal, plainWhenNotTerminal: plainWhenNotTerminal)
        return ProgressReporter(style: style, writer: writer,
                                plainInterval: progressInterval.flatMap(HumanDuration.parse) ?? .seconds(10),
                                plainJSON: LogFormat(rawValue: logFormat) == .json)
    }

    /// The per-job summary lines on stderr; with `--log-format json` they are log records too (message `summary`),
    /// so stderr stays one JSON object per line.
    /// `stopsLogged` (`watch`): a job's stop was logged as an error when it happened; the summary refers to it
    /// rather than printing it a second time (when the log level shows errors).
    func printSummaries(_ summaries: [JobSummary], stopsLogged: Bool = false) {
        guard LogFormat(rawValue: logFormat) == .json else {
            let logged = stopsLogged && makeLogger().logLevel <= .error
            for summary in summaries { Console.error(RunReport.summaryLine(summary, stopLogged: logged)) }
            return
        }
        var logger = makeLogger()
        logger.logLevel = .info
        for summary in summaries {
            var metadata: Logger.Metadata = ["job": "\(summary.job)", "waiting": .stringConvertible(summary.remaining)]
            for state in [DocumentState.succeeded, .skipped, .dead, .rejected, .unresolved, .paused] { metadata[state.rawValue] = .stringConvertible(summary.counts[state] ?? 0) }
            if summary.localFailures > 0 { metadata["local_failures"] = .stringConvertible(summary.localFailures) }
            if let stop = summary.stop { metadata["stopped"] = "\(stop.message)" }
            metadata["not_matched"] = "\(summary.notMatched.count)"
            if summary.unsettled.count > 0 {
                metadata["unsettled"] = .stringConvertible(summary.unsettled.count)
                metadata["unsettled_oldest"] = "\(summary.unsettled.oldestPath ?? "")"
            }
            logger.info("summary", metadata: metadata)
        }
    }

    /// Loads everything and runs the pipeline through ``PipelineLauncher``.
    func execute(mode: PipelineOptions.Mode, observers: [any PipelineObserver] = [], services: [any Service] = [],
                 configure: (inout PipelineOptions) -> Void) async throws -> PipelineResult {
        let (specs, failures) = try loadSpecs()
        var options = PipelineOptions(mode: mode)
        options.badSpecs = failures
        options.maxInflight = maxInflight
        options.reprocess = reprocess
        options.waitForLock = wait
        options.adoptInbox = adoptInbox
        options.takeOverInbox = takeOverInbox
        configure(&options)
        let progress = makeProgress(plainWhenNotTerminal: mode == .once)
        return try await PipelineLauncher.launch(specs: specs, dbPath: ledger.path, options: options, logger: makeLogger(),
                                                 observers: [progress] + observers, services: services,
                                                 lease: HumanDuration.parse(lease) ?? .seconds(30),
                                                 busyTimeout: busyTimeout.flatMap(HumanDuration.parse)?.seconds)
    }
}

/// Opens the ledger and runs a pipeline inside a ServiceGroup, so SIGTERM/SIGINT mean graceful shutdown.
/// Shared by `run`, `watch` and `demo`.
///
/// Every ``ProgressReporter`` among `observers` gets its display loop run as a child task, cancelled when the
/// pipeline ends (so `demo` only passes its reporter as an observer). `services` (e.g. the metrics server) run in
/// the same ServiceGroup, are shut down after the pipeline and end with it. `busyTimeout`: how long opening the
/// ledger waits for SQLite's write lock (default 10 s) or for the PostgreSQL server (default 20 s); either
/// running out is temporary: exit 4.
enum PipelineLauncher {
    static func launch(specs: [JobSpec], dbPath: String, options: PipelineOptions, logger: Logger,
                       observers: [any PipelineObserver] = [], services: [any Service] = [], lease: Duration = .seconds(30),
                       environment: [String: String] = ProcessInfo.processInfo.environment,
                       busyTimeout: TimeInterval? = nil) async throws -> PipelineResult {
        let store: any Ledger
        var ledgerServices: [any Service] = []
        var prepare: (@Sendable () async throws -> Void)?
        let url: LedgerURL
        do { url = try LedgerURL.parse(dbPath) } catch {
            Console.error("dify-batch: \(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        switch url {
        case .sqlite(let path):
            do { store = try SQLiteLedger(path: path, busyTimeout: busyTimeout ?? 10) } catch {
                Console.error("dify-batch: \(error)")
                throw ExitCode(((error as? LedgerError)?.exitStatus ?? .usage).rawValue)
            }
        case .postgres(let location):
            // The client and the lease heartbeat are services of the group, before the pipeline: they stop after it.
            let ledger: PostgresLedger
            do { ledger = try PostgresLedger(location: location, leaseDuration: lease, environment: environment, logger: logger) } catch {
                Console.error("dify-batch: \(error)")
                throw ExitCode(ExitStatus.usage.rawValue)
            }
            store = ledger
            ledgerServices = ledger.services
            // --busy-timeout (hidden, for tests) also bounds the wait for the PostgreSQL server.
            let wait = busyTimeout.map { Duration.milliseconds(Int64($0 * 1000)) } ?? .seconds(20)
            prepare = { try await ledger.prepare(timeout: wait) }
        }
        // An SQLite ledger's file alone holds everything when the command ends, however the process exits after it.
        defer { (store as? SQLiteLedger)?.checkpoint() }
        let pipeline = Pipeline(specs: specs, ledger: store, options: options, logger: logger,
                                environment: environment, observers: observers)
        let service = PipelineService(pipeline: pipeline, prepare: prepare)
        // Graceful shutdown goes from the last service to the first: the pipeline drains before the extra services stop.
        let extra = (ledgerServices + services).map { ServiceGroupConfiguration.ServiceConfiguration(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) }
        // Signals are ours, not the group's: the first SIGTERM/SIGINT shuts the group down gracefully (the drain),
        // a second one cancels the drain (issue 16).
        let group = ServiceGroup(configuration: .init(services: extra + [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                                                      gracefulShutdownSignals: [], cancellationSignals: [],
                                                      logger: Logger(label: "dify-batch.lifecycle", factory: { _ in SwiftLogNoOpLogHandler() })))
        let reporters = observers.compactMap { $0 as? ProgressReporter }
        // `watch`: SIGHUP loads the job specs again (issue 16); it never ends the process.
        let signals = options.mode == .watch && options.specPaths != nil
            ? await UnixSignalsSequence(trapping: .sigterm, .sigint, .sighup)
            : await UnixSignalsSequence(trapping: .sigterm, .sigint)
        do {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for reporter in reporters { tasks.addTask { await reporter.run() } }
                tasks.addTask {
                    var received = 0
                    for await signal in signals {
                        if signal == .sighup {
                            options.specReloads.request()
                            continue
                        }
                        received += 1
                        if received == 1 {
                            await group.triggerGracefulShutdown()
                        } else {
                            logger.warning("\(signal) again: cancelling the drain; what is in flight stays recorded and is recovered on the next start")
                            options.drainCancellation.fire()
                        }
                    }
                }
                defer { tasks.cancelAll() }
                try await group.run()
            }
        } catch let error as SpecError {
            Console.error("dify-batch: \(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        } catch let error as ServiceFailure {
            Console.error("dify-batch: \(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        } catch let error as LedgerError {
            Console.error("dify-batch: \(error)")
            throw ExitCode(error.exitStatus.rawValue)
        } catch let error where !(error is ExitCode) && !(error is CancellationError) {
            // What is left are the ledger's own writes around the jobs (registering them, recording the run's start
            // and end) failing: a full disk, an I/O error, another program holding the write lock past the busy
            // timeout. Temporary; the work is kept.
            Console.error("dify-batch: \(LedgerWriteFailure.message(ledger: dbPath, error: error))")
            throw ExitCode(ExitStatus.unavailable.rawValue)
        }
        guard let result = service.result.withLock({ $0 }) else { throw ExitCode(ExitStatus.unavailable.rawValue) }
        return result
    }
}

import Synchronization

/// The pipeline as a lifecycle service: runs once and keeps its result.
final class PipelineService: Service {
    let pipeline: Pipeline
    /// Runs first (the PostgreSQL ledger creates or migrates its schema once its client runs).
    let prepare: (@Sendable () async throws -> Void)?
    let result = Mutex<PipelineResult?>(nil)

    init(pipeline: Pipeline, prepare: (@Sendable () async throws -> Void)? = nil) {
        self.pipeline = pipeline
        self.prepare = prepare
    }

    func run() async throws {
        try await prepare?()
        let outcome = try await pipeline.run()
        result.withLock { $0 = outcome }
    }
}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Process everything in the jobs' inboxes (and every retry that comes due), then exit.",
        discussion: "Exit codes: 0 all succeeded or nothing to do; 1 some documents ended dead, rejected or unresolved, or a paid result could not be written out (outbox, disposal; retried later without calling Dify); 2 usage or spec error (also: an outbox, archive or failed folder not writable, an inbox this user cannot lock); 3 a job stopped on auth/app configuration; 4 Dify unreachable or quota (work kept); 5 a job is held by another process.")

    @OptionGroup var arguments: PipelineArguments
    @Option(name: .long, help: "Write one JSON line per document touched to this file.") var report: String?
    @Option(name: .long, help: "Stop taking new work after this long (e.g. 2h).") var maxDuration: String?

    func validate() throws {
        if let maxDuration, HumanDuration.parse(maxDuration) == nil { throw ValidationError("--max-duration: expected a duration such as 30m or 2h") }
    }

    func run() async throws {
        let result = try await arguments.execute(mode: .once) { options in
            options.maxDuration = maxDuration.flatMap(HumanDuration.parse)
            options.keepsTouchedDocuments = report != nil
        }
        arguments.printSummaries(result.summaries)
        if let report {
            try AtomicFile.write(Data(try RunReport.jsonLines(result.summaries).utf8), to: report)
        }
        if result.exitStatus != .success { throw ExitCode(result.exitStatus.rawValue) }
    }
}

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Run as a daemon: process files as they arrive until SIGTERM/SIGINT, then drain and exit 0. SIGHUP (or a changed spec file) loads the job specs again.")

    @OptionGroup var arguments: PipelineArguments
    @Option(name: .long, help: "After SIGTERM, how long in-flight documents may finish (default 30s).") var grace: String = "30s"
    @Option(name: .long, help: "Full inbox rescan interval, a safety net for missed inotify events (default 30s).") var rescan: String = "30s"
    @Option(name: .long, help: "Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464; port 0 picks a free port).") var metrics: String?
    /// How often the spec files are looked at for changes (tests lengthen it to prove SIGHUP alone reloads).
    @Option(name: .long, help: .hidden) var specPoll: String?

    func validate() throws {
        guard HumanDuration.parse(grace) != nil else { throw ValidationError("--grace: expected a duration such as 30s") }
        guard let interval = HumanDuration.parse(rescan), interval > .zero else { throw ValidationError("--rescan: expected a duration such as 30s") }
        if let metrics, MetricsAddress(metrics) == nil { throw ValidationError("--metrics: expected HOST:PORT such as 127.0.0.1:9464") }
    }

    func run() async throws {
        var observers: [any PipelineObserver] = []
        var services: [any Service] = []
        if let metrics, let address = MetricsAddress(metrics) {
            let registry = MetricsRegistry()
            observers.append(registry)
            let jobs = Set(JobSpecLoader.loadReport(paths: arguments.specs).specs.map(\.name))
            services.append(MetricsServer.make(registry: registry, address: address, ledger: LedgerCounts(path: arguments.ledger.path, jobs: jobs, registry: registry),
                                               logger: arguments.makeLogger()))
        }
        let result = try await arguments.execute(mode: .watch, observers: observers, services: services) { options in
            options.grace = HumanDuration.parse(grace) ?? .seconds(30)
            options.rescanInterval = HumanDuration.parse(rescan) ?? .seconds(30)
            options.specPaths = arguments.specs
            options.keepsTouchedDocuments = false
            if let specPoll { options.specPollInterval = HumanDuration.parse(specPoll) ?? .seconds(2) }
        }
        arguments.printSummaries(result.summaries, stopsLogged: true)
        switch result.exitStatus {
        case .usage, .configuration, .locked, .unavailable: throw ExitCode(result.exitStatus.rawValue)
        default: return
        }
    }
}
