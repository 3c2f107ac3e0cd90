import ArgumentParser
import DifyBatch
import DifySimulator
import Foundation
import Synchronization

/// 2. Overhead: CPU per document of the pipeline alone, with the simulator in a child process.
struct OverheadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overhead",
        abstract: "CPU ms per document of the pipeline (latency 0 unless --latency), the simulator running as a child process.",
        discussion: """
            The simulator runs as a child process (this binary's hidden `simulator` subcommand), so \
            getrusage(RUSAGE_SELF) around Pipeline.run() is the daemon's CPU alone: preflight, scan and sha256, \
            ledger writes (on disk, WAL, synchronous=NORMAL), HTTP client, outbox writes. The child's CPU is \
            reported separately from /proc/PID/stat.
            """)

    @Option(help: "Small files.") var files = 2000
    @Option(help: "Concurrency.") var concurrency = 8
    @Option(name: .customLong("after-success"), help: "keep or move.") var afterSuccess = "keep"
    @Option(name: .customLong("repeat"), help: "Repetitions (fresh workspace each).") var repetitions = 1
    @Option(name: .customLong("response-mode"), help: "streaming or blocking.") var responseMode = "streaming"
    @Option(help: "Also run this plain script (bench/baseline.py) on a copy of the same files against the same simulator child; its CPU comes from getrusage(RUSAGE_CHILDREN).")
    var baseline: String?
    @Option(help: "Latency of every simulated run (e.g. 200ms); with it, `of ideal c/L` is docs/s ÷ (concurrency ÷ latency), the simulator out of process (issue 14's c/L target).")
    var latency = "0ms"
    @Option(name: .customLong("simulator-url"), help: "Use a simulator already running at this base URL (`dify-batch-bench simulator`) instead of a child; its CPU is then not measured. For valgrind, which cannot start the child (BENCHMARKS.md §15).")
    var simulatorURL: String?
    @Option(name: .customLong("sql-trace"), help: "Write every distinct SQL statement the ledger ran, with its count per document, to this file (issue 14; the trace itself costs CPU: do not time such a run).")
    var sqlTrace: String?
    @Flag(help: "Delete the workspace after each run (default: keep it; deleting many files makes the next runs' file creations cost extra kernel CPU on ext4, issue 14).")
    var removeWorkspace = false

    func run() async throws {
        var rows: [[String]] = []
        for _ in 0..<max(1, repetitions) {
            note("overhead: files=\(files) c=\(concurrency)…")
            rows += try await Self.measure(files: files, concurrency: concurrency, afterSuccess: afterSuccess,
                                           responseMode: responseMode, baseline: baseline, removeWorkspace: removeWorkspace,
                                           latency: latency, simulatorURL: simulatorURL, sqlTrace: sqlTrace)
            note("  → \(rows.last!.joined(separator: "  "))")
        }
        say(Table.render(headers: ["client", "mode", "c", "files", "ok", "wall (s)", "docs/s", "daemon CPU ms/doc",
                                   "of which scan+hash ms/doc", "processing ms/doc", "user/sys (s)", "simulator CPU ms/doc",
                                   "write tx/doc", "ctx switches/doc (vol+invol)", "load avg", "of ideal c/L"],
                         rows: rows))
    }

    static func measure(files: Int, concurrency: Int, afterSuccess: String, responseMode: String = "streaming",
                        baseline: String? = nil, removeWorkspace: Bool = false, latency: String = "0ms",
                        simulatorURL: String? = nil, sqlTrace: String? = nil) async throws -> [[String]] {
        let simulator = try simulatorURL.map(SimulatorChild.init(external:)) ?? SimulatorChild(latency: latency)
        let latencySeconds = try parseDuration(latency).seconds
        // docs/s as a fraction of the ideal c / L ("-" at latency 0).
        func ofIdeal(_ docsPerSecond: Double) -> String {
            latencySeconds > 0 ? fmt(docsPerSecond / (Double(concurrency) / latencySeconds), 3) : "-"
        }
        defer { simulator.stop() }
        let workspace = try BenchWorkspace()
        defer { if removeWorkspace { workspace.remove() } else { note("  workspace kept: \(workspace.root)") } }
        try workspace.writeSpec(baseURL: simulator.baseURL, concurrency: concurrency, afterSuccess: afterSuccess,
                                responseMode: responseMode)
        try workspace.dropSmallFiles(files)
        let probe = ProcessStats.fileCreateMicroseconds(in: workspace.root + "/create-probe")
        note("  file-create probe: \(fmt(probe, 1)) µs of kernel CPU per file creation"
             + (probe > 100 ? " (HIGH: inodes deleted in the last minutes, e.g. by a build, inflate this run's sys CPU; wait and rerun)" : ""))
        let observer = BenchObserver()
        let statements = StatementCounter()
        let (pipeline, ledger) = try workspace.makePipeline(mode: .once, observers: [observer],
                                                            statements: sqlTrace == nil ? nil : statements)
        let mode = try ledger.journalMode()
        guard mode.lowercased() == "wal" else { throw BenchError("ledger journal mode is \(mode), not WAL") }
        let usage0 = ProcessStats.selfUsage()
        let simCPU0 = ProcessStats.cpuSeconds(pid: simulator.pid) ?? 0
        let writes0 = ledger.writeTransactions
        let start = ContinuousClock.now
        let result = try await pipeline.run()
        let wall = (ContinuousClock.now - start).seconds
        let usage1 = ProcessStats.selfUsage()
        let writes = ledger.writeTransactions - writes0
        let simCPU = (ProcessStats.cpuSeconds(pid: simulator.pid) ?? 0) - simCPU0
        func secs(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        let user = secs(usage1.ru_utime) - secs(usage0.ru_utime)
        let system = secs(usage1.ru_stime) - secs(usage0.ru_stime)
        let cpu0 = secs(usage0.ru_utime) + secs(usage0.ru_stime)
        let succeeded = result.summaries.first?.counts[.succeeded] ?? 0
        if succeeded != files { note("  warning: \(succeeded) of \(files) succeeded (exit \(result.exitStatus))") }
        let n = Double(max(succeeded, 1))
        let state = observer.state.withLock { $0 }
        let scanCPU = (state.cpuAtFirstUpload ?? cpu0) - cpu0
        // Where the wall time goes (c/L): before the first upload, the runs, after the last settle.
        if let first = state.firstUploadStart, let last = state.lastSettle {
            note("  timeline: first upload at \(fmt((first - start).seconds, 3)) s, last settle at "
                 + "\(fmt((last - start).seconds, 3)) s, run returned at \(fmt(wall, 3)) s")
        }
        if let sqlTrace {
            try statements.report(perDocument: n).write(toFile: sqlTrace, atomically: true, encoding: .utf8)
            note("  SQL statements: \(fmt(Double(statements.total) / n, 2)) per document, listed in \(sqlTrace)")
        }
        var rows = [["dify-batch", responseMode, String(concurrency), String(files), String(succeeded), fmt(wall, 2),
                     fmt(Double(succeeded) / wall), fmt((user + system) * 1000 / n, 3), fmt(scanCPU * 1000 / n, 3),
                     fmt((user + system - scanCPU) * 1000 / n, 3), "\(fmt(user, 2))/\(fmt(system, 2))", fmt(simCPU * 1000 / n, 3),
                     // Every write transaction of the run (scan inserts, claims and the run's own rows included).
                     fmt(Double(writes) / n, 2),
                     "\(fmt(Double(usage1.ru_nvcsw - usage0.ru_nvcsw) / n, 1))+\(fmt(Double(usage1.ru_nivcsw - usage0.ru_nivcsw) / n, 1))",
                     ProcessStats.loadAverage(), ofIdeal(Double(succeeded) / wall)]]
        if let baseline {
            rows.append(try runBaseline(script: baseline, workspace: workspace, simulator: simulator, files: files,
                                        concurrency: concurrency, responseMode: responseMode, ofIdeal: ofIdeal))
        }
        return rows
    }

    /// Runs the plain script on its own copy of the same files; CPU from RUSAGE_CHILDREN (the simulator child is
    /// still running, so only the script's finished process is counted).
    static func runBaseline(script: String, workspace: BenchWorkspace, simulator: SimulatorChild, files: Int,
                            concurrency: Int, responseMode: String, ofIdeal: (Double) -> String) throws -> [String] {
        let inbox = workspace.root + "/baseline-in"
        let outbox = workspace.root + "/baseline-out"
        try workspace.dropSmallFiles(files, into: inbox)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "--base-url", simulator.baseURL, "--key", SimulatedApp.defaultAPIKey,
                             "--inbox", inbox, "--outbox", outbox, "--concurrency", String(concurrency),
                             "--mode", responseMode]
        let output = Pipe()
        process.standardOutput = output
        let children0 = ProcessStats.childrenUsage()
        let simCPU0 = ProcessStats.cpuSeconds(pid: simulator.pid) ?? 0
        let start = ContinuousClock.now
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let wall = (ContinuousClock.now - start).seconds
        let children1 = ProcessStats.childrenUsage()
        let simCPU = (ProcessStats.cpuSeconds(pid: simulator.pid) ?? 0) - simCPU0
        func secs(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        let user = secs(children1.ru_utime) - secs(children0.ru_utime)
        let system = secs(children1.ru_stime) - secs(children0.ru_stime)
        let ok = text.split(separator: " ").first { $0.hasPrefix("ok=") }.flatMap { Int($0.dropFirst(3)) } ?? 0
        if ok != files { note("  warning: baseline: \(text.trimmingCharacters(in: .whitespacesAndNewlines))") }
        let n = Double(max(ok, 1))
        return ["baseline.py", responseMode, String(concurrency), String(files), String(ok), fmt(wall, 2),
                fmt(Double(ok) / wall), fmt((user + system) * 1000 / n, 3), "-", "-",
                "\(fmt(user, 2))/\(fmt(system, 2))", fmt(simCPU * 1000 / n, 3), "-",
                "\(fmt(Double(children1.ru_nvcsw - children0.ru_nvcsw) / n, 1))+\(fmt(Double(children1.ru_nivcsw - children0.ru_nivcsw) / n, 1))",
                ProcessStats.loadAverage(), ofIdeal(Double(ok) / wall)]
    }
}

/// Counts the ledger's statements by SQL text (`overhead --sql-trace`).
final class StatementCounter: Sendable {
    private let counts = Mutex<[String: (count: Int, time: Duration)]>([:])

    @Sendable func count(_ sql: String, _ duration: Duration?) {
        counts.withLock {
            if let duration { $0[sql, default: (0, .zero)].time += duration } else { $0[sql, default: (0, .zero)].count += 1 }
        }
    }

    var total: Int { counts.withLock { $0.values.reduce(0) { $0 + $1.count } } }

    /// One line per distinct statement, most frequent first: count per document, total count, wall µs per document
    /// spent in it (SQLite's profile event, triggers included; blank for a trigger's own statements), the SQL on one line.
    func report(perDocument n: Double) -> String {
        let all = counts.withLock { $0 }.sorted { $0.value.count != $1.value.count ? $0.value.count > $1.value.count : $0.key < $1.key }
        return "per doc\tcount\tµs/doc\tstatement\n" + all.map { sql, value in
            let text = sql.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
            let micros = value.time == .zero ? "" : fmt(value.time.seconds * 1e6 / n, 1)
            return "\(fmt(Double(value.count) / n, 3))\t\(value.count)\t\(micros)\t\(text)"
        }.joined(separator: "\n") + "\n"
    }
}
