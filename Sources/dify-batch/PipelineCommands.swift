import ArgumentParser
import DifyBatch
import Foundation
import Logging
import ServiceLifecycle

/// Options shared by `run` and `watch`.
struct PipelineArguments: ParsableArguments {
    @OptionGroup var ledger: LedgerOptions
    @Argument(help: "Job spec files or folders of *.yaml specs.") var specs: [String]
    @Option(name: .long, help: "Documents in flight across all jobs (default: the sum of the jobs' concurrency).") var maxInflight: Int?
    @Flag(name: .long, help: "Run documents again even when the same content already succeeded.") var reprocess = false
    @Flag(name: .long, help: "Wait for a job held by another run/watch instead of exiting with code 5.") var wait = false
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (default info).") var logLevel: String = "info"

    func validate() throws {
        if let maxInflight, maxInflight < 1 { throw ValidationError("--max-inflight must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
    }

    /// Loads the specs or exits 2 with the spec error.
    func loadSpecs() throws -> [JobSpec] {
        do {
            return try JobSpecLoader.load(paths: specs)
        } catch let error as SpecError {
            Console.error("dify-batch: \(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
    }

    func makeLogger() -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        var logger = Logger(label: "dify-batch") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = level
        return logger
    }

    /// Loads everything and runs the pipeline through ``PipelineLauncher``.
    func execute(mode: PipelineOptions.Mode, configure: (inout PipelineOptions) -> Void) async throws -> PipelineResult {
        let specs = try loadSpecs()
        var options = PipelineOptions(mode: mode)
        options.maxInflight = maxInflight
        options.reprocess = reprocess
        options.waitForLock = wait
        configure(&options)
        return try await PipelineLauncher.launch(specs: specs, dbPath: ledger.path, options: options, logger: makeLogger())
    }
}

/// Opens the ledger and runs a pipeline inside a ServiceGroup, so SIGTERM/SIGINT mean graceful shutdown.
/// Shared by `run`, `watch` and `demo`.
enum PipelineLauncher {
    static func launch(specs: [JobSpec], dbPath: String, options: PipelineOptions, logger: Logger,
                       observers: [any PipelineObserver] = [], environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> PipelineResult {
        let store: SQLiteLedger
        do { store = try SQLiteLedger(path: dbPath) } catch {
            Console.error("dify-batch: \(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        let pipeline = Pipeline(specs: specs, ledger: store, options: options, lockDirectory: dbPath + ".locks", logger: logger,
                                environment: environment, observers: observers)
        let service = PipelineService(pipeline: pipeline)
        let group = ServiceGroup(configuration: .init(services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [],
                                                      logger: Logger(label: "dify-batch.lifecycle", factory: { _ in SwiftLogNoOpLogHandler() })))
        do {
            try await group.run()
        } catch let error as SpecError {
            Console.error("dify-batch: \(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        guard let result = service.result.withLock({ $0 }) else { throw ExitCode(ExitStatus.unavailable.rawValue) }
        return result
    }
}

import Synchronization

/// The pipeline as a lifecycle service: runs once and keeps its result.
final class PipelineService: Service {
    let pipeline: Pipeline
    let result = Mutex<PipelineResult?>(nil)

    init(pipeline: Pipeline) { self.pipeline = pipeline }

    func run() async throws {
        let outcome = try await pipeline.run()
        result.withLock { $0 = outcome }
    }
}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Process everything in the jobs' inboxes (and every retry that comes due), then exit.",
        discussion: "Exit codes: 0 all succeeded or nothing to do; 1 some documents ended dead or rejected; 2 usage or spec error; 3 a job stopped on auth/app configuration; 4 Dify unreachable or quota (work kept); 5 a job is held by another process.")

    @OptionGroup var arguments: PipelineArguments
    @Option(name: .long, help: "Write one JSON line per document touched to this file.") var report: String?
    @Option(name: .long, help: "Stop taking new work after this long (e.g. 2h).") var maxDuration: String?

    func validate() throws {
        if let maxDuration, HumanDuration.parse(maxDuration) == nil { throw ValidationError("--max-duration: expected a duration such as 30m or 2h") }
    }

    func run() async throws {
        let result = try await arguments.execute(mode: .once) { options in
            options.maxDuration = maxDuration.flatMap(HumanDuration.parse)
        }
        for summary in result.summaries { Console.error(RunReport.summaryLine(summary)) }
        if let report {
            try AtomicFile.write(Data(try RunReport.jsonLines(result.summaries).utf8), to: report)
        }
        if result.exitStatus != .success { throw ExitCode(result.exitStatus.rawValue) }
    }
}

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Run as a daemon: process files as they arrive until SIGTERM/SIGINT, then drain and exit 0.")

    @OptionGroup var arguments: PipelineArguments
    @Option(name: .long, help: "After SIGTERM, how long in-flight documents may finish (default 30s).") var grace: String = "30s"
    @Option(name: .long, help: "Full inbox rescan interval, a safety net for missed inotify events (default 30s).") var rescan: String = "30s"

    func validate() throws {
        guard HumanDuration.parse(grace) != nil else { throw ValidationError("--grace: expected a duration such as 30s") }
        guard let interval = HumanDuration.parse(rescan), interval > .zero else { throw ValidationError("--rescan: expected a duration such as 30s") }
    }

    func run() async throws {
        let result = try await arguments.execute(mode: .watch) { options in
            options.grace = HumanDuration.parse(grace) ?? .seconds(30)
            options.rescanInterval = HumanDuration.parse(rescan) ?? .seconds(30)
        }
        for summary in result.summaries { Console.error(RunReport.summaryLine(summary)) }
        switch result.exitStatus {
        case .configuration, .locked, .unavailable: throw ExitCode(result.exitStatus.rawValue)
        default: return
        }
    }
}
