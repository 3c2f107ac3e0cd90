import ArgumentParser
import DifyBatch
import DifySimulator
import Foundation
import Logging
import Synchronization

/// `dify-batch demo`: the whole pipeline on the bundled `samples/`, against the embedded Dify simulator on
/// loopback (same process). No API key, no network.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the pipeline on samples/ against an embedded Dify simulator (no API key, no network).",
        discussion: """
            Starts the Dify simulator on 127.0.0.1 inside this process, writes a job spec into the demo folder \
            (a new temporary folder, or --dir), copies samples/ into its inbox, runs the pipeline once, and prints \
            what happened to each document, how the run ended (its exit code as `dify-batch run` would end, which \
            the ledger records, and why each rejected document was rejected), the status table, where the outputs \
            are and the token usage. One sample (an image) is rejected on purpose: the simulated app's file input \
            takes documents only, so the recorded run ends exit 1. Exit codes of the demo itself: 0 every document \
            succeeded or was rejected without upload; otherwise the pipeline's code (1 a document ended dead, 2 \
            usage error, 3/4 simulator problems).
            """)

    /// The job's name in the demo ledger.
    static let jobName = "demo"
    /// The environment variable the demo spec reads its key from; set only in the pipeline's environment.
    static let keyVariable = "DIFY_BATCH_DEMO_KEY"

    @Option(name: .long, help: "Folder for the demo's inbox, outbox, archive, spec and ledger (kept afterwards). Default: a new temporary folder.")
    var dir: String?
    @Option(name: .long, help: "The ledger (default: ledger.sqlite in the demo folder; never your real ledger).")
    var db: String?
    @Option(name: .long, help: "The sample documents (default: ./samples, else samples/ of the repository the binary was built in).")
    var samples: String?
    @Option(name: .long, help: "Log level for stderr (default error; progress is shown anyway).") var logLevel: String = "error"
    @Option(name: .long, help: "Progress on stderr: auto (a live line on a terminal, one plain line per finished document otherwise), always, never (default auto).")
    var progress: String = "auto"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
        guard ProgressReporter.Mode(rawValue: progress) != nil else { throw ValidationError("--progress must be auto, always or never") }
    }

    /// On a terminal the shared live progress line; into a pipe or file one plain line per finished document
    /// (never an escape code); nothing for `--progress never`.
    func makeObservers(total: Int) -> [any PipelineObserver] {
        let mode = ProgressReporter.Mode(rawValue: progress) ?? .auto
        if mode == .never { return [] }
        let writer = StandardErrorWriter.shared
        if writer.isTerminal {
            return [ProgressReporter(style: ProgressReporter.style(mode: mode, isTerminal: true, plainWhenNotTerminal: true), writer: writer)]
        }
        return [DemoProgress(total: total)]
    }

    func run() async throws {
        guard let samplesFolder = Self.locateSamples(samples) else {
            Console.error("""
                dify-batch: cannot find the samples/ folder\(samples.map { " at \($0)" } ?? ""). Run the demo from the dify-batch \
                repository root (`swift run -c release dify-batch demo`) or pass --samples DIR.
                """)
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        let folder = try Self.prepareFolder(dir)
        let dbPath = db.map(Self.absolute) ?? (folder as NSString).appendingPathComponent("ledger.sqlite")
        let inbox = (folder as NSString).appendingPathComponent("inbox")
        let copied: Int
        do {
            copied = try Self.copyTree(from: samplesFolder, to: inbox)
        } catch {
            Console.error("dify-batch: cannot copy \(samplesFolder) into \(inbox): \(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        var logger = Logger(label: "dify-batch") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .error
        let environment = ProcessInfo.processInfo.environment.merging([Self.keyVariable: SimulatedApp.defaultAPIKey]) { _, demo in demo }
        let observers = makeObservers(total: copied)
        let pipelineLogger = logger

        let (baseURL, result) = try await Self.withQuietSimulator { baseURL in
            Console.error("dify-batch demo: Dify simulator listening on \(baseURL) (in this process); \(copied) sample(s) copied to \(inbox)")
            let specPath = try Self.writeSpec(folder: folder, baseURL: baseURL)
            let spec: JobSpec
            do {
                spec = try JobSpecLoader.load(path: specPath)
            } catch {
                Console.error("dify-batch: the demo spec \(specPath) is invalid: \(error)")
                throw ExitCode(ExitStatus.usage.rawValue)
            }
            // PipelineLauncher runs the display loop of a ProgressReporter among the observers.
            let result = try await PipelineLauncher.launch(specs: [spec], dbPath: dbPath, options: PipelineOptions(mode: .once),
                                                           logger: pipelineLogger, observers: observers, environment: environment)
            return (baseURL, result)
        }

        let store = try SQLiteLedger(path: dbPath)
        let code = Self.exitCode(for: result)
        // The ledger records the run's own exit code (what `dify-batch run` would exit); the summary says why the
        // demo itself may end 0 anyway.
        Console.out(try await Self.summary(result: result, store: store, folder: folder, dbPath: dbPath, baseURL: baseURL))
        if code != ExitStatus.success.rawValue { throw ExitCode(code) }
    }

    /// 0 when every document succeeded, was skipped, or was rejected (the rejection is part of the demo);
    /// otherwise the pipeline's own exit code.
    static func exitCode(for result: PipelineResult) -> Int32 {
        if result.exitStatus == .documentsFailed && !result.summaries.contains(where: { ($0.counts[.dead] ?? 0) > 0 }) {
            return ExitStatus.success.rawValue
        }
        return result.exitStatus.rawValue
    }

    // MARK: - Output

    /// How the demo's run ended, in the words of the status table: its exit code (as `dify-batch run` would end),
    /// why each rejected document was rejected, and why the demo itself still exits 0 when only rejections made
    /// the run exit 1.
    static func outcome(result: PipelineResult, rejected: [DocumentRecord]) -> String {
        let run = result.runID.map { "Run #\($0)" } ?? "The run"
        let status = result.exitStatus.rawValue
        guard status != ExitStatus.success.rawValue else { return "\(run) ended with exit 0: every document succeeded or was skipped.\n" }
        var text = "\(run) ended with exit \(status), as `dify-batch run` would"
        if rejected.isEmpty {
            text += ".\n"
        } else {
            text += ": \(rejected.count) document(s) rejected before upload:\n"
            for document in rejected {
                text += "  \(document.path): \(document.lastError.map { "\($0.code.map { "\($0): " } ?? "")\($0.message)" } ?? "rejected")\n"
            }
        }
        if exitCode(for: result) == ExitStatus.success.rawValue {
            text += "The demo itself exits 0: that rejection is part of it (the simulated app's `document` input takes documents only, not images).\n"
        }
        return text
    }

    static func summary(result: PipelineResult, store: SQLiteLedger, folder: String, dbPath: String, baseURL: String) async throws -> String {
        func shown(_ path: String?) -> String {
            guard let path else { return "" }
            let prefix = folder.hasSuffix("/") ? folder : folder + "/"
            return path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
        }
        var text = "dify-batch demo: \(result.summaries.reduce(0) { $0 + $1.touched.count }) document(s) processed against the Dify simulator at \(baseURL)\n\n"
        let documents = try await store.documents(matching: DocumentFilter(jobName: jobName))
            .sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        let touched = Set(result.summaries.flatMap { $0.touched.map(\.id) })
        let rows = documents.filter { touched.contains($0.id) || touched.isEmpty }.map { document -> [String] in
            let detail: String
            switch document.state {
            case .succeeded, .skipped: detail = shown(document.outputPath)
            default: detail = document.lastError?.message ?? shown(document.outputPath)
            }
            return [document.state.rawValue, String(document.id), document.path, detail]
        }
        text += ReportFormatting.table(headers: ["STATE", "ID", "DOCUMENT", "RESULT (outbox file, or why)"], rows: rows)
        for stop in result.summaries.compactMap(\.stop) { text += "job stopped: \(stop.message)\n" }
        text += "\n" + outcome(result: result, rejected: documents.filter { $0.state == .rejected && (touched.contains($0.id) || touched.isEmpty) })

        text += "\nStatus\n"
        text += try await StatusReport.build(from: store, database: dbPath).renderText()

        text += "\nUsage\n"
        text += try await UsageReport.build(from: store, filter: UsageFilter(jobName: jobName), by: .job).renderText()

        let path = { (name: String) in (folder as NSString).appendingPathComponent(name) }
        text += """

            Where things are (kept for you to look at)
              outputs:  \(path("outbox"))/  one <document>.json per success, <document>.error.json per rejection
              sources:  \(path("done"))/  (moved there after success; rejected files stay in \(path("inbox"))/)
              spec:     \(path("demo.yaml"))
              ledger:   \(dbPath)
            Try: \(Self.invocation) list --db '\(dbPath)'   ·   \(Self.invocation) show --db '\(dbPath)' ID   ·   \(Self.invocation) usage --db '\(dbPath)' --by job

            """
        return text
    }

    /// Runs the simulator on 127.0.0.1 (free port) in a child task for the duration of `body`, with its own
    /// logging silenced (its shutdown chatter is not the demo's business), then cancels and awaits it.
    static func withQuietSimulator<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        let simulator = DifySimulator(configuration: SimulatorConfiguration(host: "127.0.0.1", port: 0),
                                      logger: Logger(label: "dify-simulator") { _ in SwiftLogNoOpLogHandler() })
        let (urls, ready) = AsyncStream<String>.makeStream()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { ready.finish() }
                try await simulator.run(onReady: { url in ready.yield(url) })
            }
            var iterator = urls.makeAsyncIterator()
            guard let url = await iterator.next() else {
                try await group.waitForAll()
                Console.error("dify-batch: the embedded Dify simulator did not start")
                throw ExitCode(ExitStatus.unavailable.rawValue)
            }
            let outcome: Result<T, any Error>
            do { outcome = .success(try await body(url)) } catch { outcome = .failure(error) }
            group.cancelAll()
            while await group.nextResult() != nil {}
            return try outcome.get()
        }
    }

    // MARK: - Files

    /// `--samples`, else `./samples`, else `samples/` in a parent of the executable that holds `Package.swift`.
    static func locateSamples(_ given: String?) -> String? {
        let manager = FileManager.default
        func isFolder(_ path: String) -> Bool {
            var isDirectory: ObjCBool = false
            return manager.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
        }
        if let given { return isFolder(given) ? absolute(given) : nil }
        let local = absolute("samples")
        if isFolder(local) { return local }
        let executable = (try? manager.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? absolute(CommandLine.arguments[0])
        var folder = (executable as NSString).deletingLastPathComponent
        while folder != "/" && !folder.isEmpty {
            let candidate = (folder as NSString).appendingPathComponent("samples")
            if isFolder(candidate) && manager.fileExists(atPath: (folder as NSString).appendingPathComponent("Package.swift")) {
                return candidate
            }
            folder = (folder as NSString).deletingLastPathComponent
        }
        return nil
    }

    /// How to call this binary in the hints: `dify-batch` when it was called by that name (found on `PATH`), else
    /// the path it was called by, relative to the working folder when inside it (after `swift run`:
    /// `.build/<triple>/debug/dify-batch`).
    static var invocation: String {
        let called = CommandLine.arguments.first ?? "dify-batch"
        guard called.contains("/") else { return called }
        let path = absolute(called)
        let folder = FileManager.default.currentDirectoryPath + "/"
        return path.hasPrefix(folder) ? String(path.dropFirst(folder.count)) : path
    }

    static func absolute(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }

    /// The demo folder with `inbox/` (and `outbox/`) created: `--dir` or a new temporary folder.
    static func prepareFolder(_ given: String?) throws -> String {
        let folder = given.map(absolute)
            ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("dify-batch-demo-\(UUID().uuidString.prefix(8).lowercased())")
        do {
            for name in ["inbox", "outbox"] {
                try FileManager.default.createDirectory(atPath: (folder as NSString).appendingPathComponent(name), withIntermediateDirectories: true)
            }
        } catch {
            Console.error("dify-batch: cannot create the demo folder \(folder): \(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        return folder
    }

    /// Copies every non-hidden file below `source` into `destination`, keeping relative paths. Returns the count.
    static func copyTree(from source: String, to destination: String) throws -> Int {
        let manager = FileManager.default
        var copied = 0
        guard let enumerator = manager.enumerator(atPath: source) else { return 0 }
        while let relative = enumerator.nextObject() as? String {
            if relative.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
            let from = (source as NSString).appendingPathComponent(relative)
            let to = (destination as NSString).appendingPathComponent(relative)
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: from, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                try manager.createDirectory(atPath: to, withIntermediateDirectories: true)
            } else {
                try manager.createDirectory(atPath: (to as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                if manager.fileExists(atPath: to) { try manager.removeItem(atPath: to) }
                try manager.copyItem(atPath: from, toPath: to)
                copied += 1
            }
        }
        return copied
    }

    /// Writes `demo.yaml` (the key is read from ``keyVariable``, never written) and returns its path.
    static func writeSpec(folder: String, baseURL: String) throws -> String {
        let path = (folder as NSString).appendingPathComponent("demo.yaml")
        let spec = """
            # Written by `dify-batch demo` for the embedded simulator; its port changes on every demo run.
            name: \(jobName)
            inbox: inbox
            outbox: outbox
            archive: done
            dify:
              base_url: \(baseURL)
              api_key_env: \(keyVariable)   # set by the demo for its own pipeline only
              app: auto
              inputs: {language: en}
            match:
              settle: 0s
            concurrency: 4
            retry: {max_attempts: 3, base_delay: 200ms, max_delay: 2s}
            timeout: 1m
            after_success: move

            """
        try spec.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

/// Plain progress lines on stderr (not a terminal), one per document that reaches a final state.
final class DemoProgress: PipelineObserver {
    let total: Int
    let done = Mutex(0)

    init(total: Int) { self.total = total }

    func record(_ event: PipelineEvent) {
        guard case let .documentSettled(_, document) = event else { return }
        switch document.state {
        case .succeeded, .skipped, .dead, .rejected:
            let count = done.withLock { value -> Int in
                value += 1
                return value
            }
            let reason = document.state == .rejected || document.state == .dead ? ": " + (document.lastError?.message ?? "") : ""
            Console.error("[\(count)/\(total)] \(document.state.rawValue) \(document.path)\(reason)")
        case .failed:
            Console.error("  \(document.path): attempt \(document.attempts) failed (\(document.lastError?.message ?? "")); retrying")
        default:
            break
        }
    }
}
