import ArgumentParser
import DifyBatch
import DifySimulator
import Foundation

/// 1. Pipeline efficiency: documents per second against the ideal `concurrency / latency`.
struct EfficiencyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "efficiency",
        abstract: "Throughput of `run` against the ideal c/L, for each latency × concurrency given.",
        discussion: """
            For each combination: a fresh workspace with --files small text files, a fresh in-process simulator \
            whose runs take latency + uniform(0...jitter), `dify-batch run` in-process (settle 0s, \
            after_success keep). The ideal is c / (latency + jitter/2). `wall` is the whole run (preflight, scan \
            with hashing, processing); `steady` is first upload start → last document settled.
            """)

    @Option(help: "Simulated run latencies, comma-separated (e.g. 50ms,200ms).") var latency = "200ms"
    @Option(help: "Extra uniform random latency in 0...jitter.") var jitter = "0ms"
    @Option(help: "Concurrencies, comma-separated (e.g. 1,8,32,64).") var concurrency = "64"
    @Option(help: "Small files per measurement.") var files = 1000
    @Option(name: .customLong("after-success"), help: "keep or move.") var afterSuccess = "keep"
    @Option(name: .customLong("response-mode"), help: "streaming or blocking.") var responseMode = "streaming"

    func run() async throws {
        let latencies = try latency.split(separator: ",").map { try parseDuration(String($0)) }
        let concurrencies = concurrency.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let jitterDuration = try parseDuration(jitter)
        guard !latencies.isEmpty, !concurrencies.isEmpty, files > 0 else { throw ValidationError("nothing to measure") }
        var rows: [[String]] = []
        for l in latencies {
            for c in concurrencies {
                note("efficiency: L=\(milliseconds(l))ms jitter=\(milliseconds(jitterDuration))ms c=\(c) files=\(files)…")
                let row = try await Self.measure(latency: l, jitter: jitterDuration, concurrency: c, files: files,
                                                 afterSuccess: afterSuccess, responseMode: responseMode)
                rows.append(row.cells)
                note("  → \(row.cells.joined(separator: "  "))")
            }
        }
        say(Table.render(headers: EfficiencyRow.headers, rows: rows))
    }

    struct EfficiencyRow {
        static let headers = ["L (ms)", "jitter (ms)", "c", "files", "ok", "wall (s)", "docs/s", "ideal c/L", "ratio",
                              "steady docs/s", "steady ratio", "peak runs", "upload ms", "run ms", "CPU ms/doc (all)"]
        var cells: [String]
        var ratio: Double
        var succeeded: Int
    }

    static func measure(latency: Duration, jitter: Duration, concurrency: Int, files: Int,
                        afterSuccess: String = "keep", responseMode: String = "streaming") async throws -> EfficiencyRow {
        var faults = FaultPlan()
        faults.latency = latency
        faults.latencyJitter = jitter
        return try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try BenchWorkspace()
            defer { workspace.remove() }
            try workspace.writeSpec(baseURL: baseURL, concurrency: concurrency, afterSuccess: afterSuccess, responseMode: responseMode)
            try workspace.dropSmallFiles(files)
            let observer = BenchObserver()
            let (pipeline, _) = try workspace.makePipeline(mode: .once, observers: [observer])
            let cpu0 = ProcessStats.cpuSeconds()
            let start = ContinuousClock.now
            let result = try await pipeline.run()
            let wall = (ContinuousClock.now - start).seconds
            let cpu = ProcessStats.cpuSeconds() - cpu0
            let state = observer.state.withLock { $0 }
            let succeeded = result.summaries.first?.counts[.succeeded] ?? 0
            if succeeded != files { note("  warning: \(succeeded) of \(files) succeeded (exit \(result.exitStatus))") }
            let meanLatency = latency.seconds + jitter.seconds / 2
            let ideal = meanLatency > 0 ? Double(concurrency) / meanLatency : .infinity
            let rate = Double(succeeded) / wall
            var steady = Double.nan
            if let first = state.firstUploadStart, let last = state.lastSettle {
                steady = Double(succeeded) / (last - first).seconds
            }
            let stats = simulator.stats
            return EfficiencyRow(cells: [
                fmt(milliseconds(latency), 0), fmt(milliseconds(jitter), 0), String(concurrency), String(files), String(succeeded),
                fmt(wall, 2), fmt(rate), fmt(ideal), fmt(rate / ideal, 3), fmt(steady), fmt(steady / ideal, 3),
                String(stats.peakConcurrentRuns), fmt(observer.meanMilliseconds("upload")), fmt(observer.meanMilliseconds("run")),
                fmt(cpu * 1000 / Double(max(succeeded, 1)), 2),
            ], ratio: rate / ideal, succeeded: succeeded)
        }
    }
}
