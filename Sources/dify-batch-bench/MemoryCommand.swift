import ArgumentParser
import DifyBatch
import DifyKit
import DifySimulator
import Foundation

/// 3. Memory: peak RSS of the pipeline while it processes one large file, or many queued files.
struct MemoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Peak RSS (VmHWM) of the pipeline: one large file, or many queued small files.",
        discussion: """
            The simulator runs as a child process (upload limit raised to --file-mb), so this process's VmHWM is \
            the pipeline's. VmHWM is reset (`5 > /proc/self/clear_refs`) after the files are created, right \
            before Pipeline.run(); RSS is also sampled every 20 ms as a cross-check.
            """)

    enum Scenario: String, ExpressibleByArgument { case large, queued, hash, upload }

    @Option(help: "large (one file of --size-mb through the pipeline), queued (--files small files), or the large file's parts alone: hash (FileHasher.sha256) or upload (DifyClient.upload).") var scenario: Scenario = .large
    @Option(name: .customLong("size-mb"), help: "Size of the large file in MB.") var sizeMB = 200
    @Option(help: "Small files for the queued scenario.") var files = 10_000
    @Option(help: "Concurrency.") var concurrency = 8
    @Option(name: .customLong("simulator-latency"), help: "Simulated run latency.") var latency = "0ms"
    @Option(name: .customLong("max-duration"), help: "Stop taking new work after this long (queued scenario).") var maxDuration = "120s"

    func run() async throws {
        let simulator = try SimulatorChild(latency: latency, fileMB: max(sizeMB + 16, 15))
        defer { simulator.stop() }
        let workspace = try BenchWorkspace()
        defer { workspace.remove() }
        try workspace.writeSpec(baseURL: simulator.baseURL, concurrency: concurrency, afterSuccess: "keep",
                                maxSize: "\(max(sizeMB + 16, 15))MB")
        let count: Int
        switch scenario {
        case .hash, .upload:
            try BenchWorkspace.writeLarge(path: workspace.stage + "/large.txt", bytes: sizeMB << 20)
            try await Self.measurePart(scenario, path: workspace.stage + "/large.txt", baseURL: simulator.baseURL, sizeMB: sizeMB)
            return
        case .large:
            note("memory: writing a \(sizeMB) MB file…")
            try BenchWorkspace.writeLarge(path: workspace.stage + "/large.txt", bytes: sizeMB << 20)
            guard rename(workspace.stage + "/large.txt", workspace.inbox + "/large.txt") == 0 else { throw BenchError("rename failed") }
            count = 1
        case .queued:
            note("memory: writing \(files) files…")
            try workspace.dropSmallFiles(files)
            count = files
        }
        let limit = try parseDuration(maxDuration)
        // As `dify-batch run` without --report (and `watch`): no record kept per touched document.
        let (pipeline, _) = try workspace.makePipeline(mode: .once) {
            $0.maxDuration = limit
            $0.keepsTouchedDocuments = false
        }
        let before = ProcessStats.statusKB("VmRSS") ?? 0
        let reset = ProcessStats.resetPeakRSS()
        if !reset { note("  warning: cannot reset VmHWM; the peak includes the setup") }
        let sampler = RSSSampler()
        note("memory: running the pipeline…")
        let start = ContinuousClock.now
        let result = try await withThrowingTaskGroup(of: PipelineResult?.self) { group in
            group.addTask { await sampler.run(); return nil }
            let result = try await pipeline.run()
            group.cancelAll()
            return result
        }
        let wall = (ContinuousClock.now - start).seconds
        let hwm = ProcessStats.statusKB("VmHWM") ?? 0
        let after = ProcessStats.statusKB("VmRSS") ?? 0
        let succeeded = result.summaries.first?.counts[.succeeded] ?? 0
        let rows = [[scenario == .large ? "1 file of \(sizeMB) MB" : "\(files) queued files", String(count), String(succeeded),
                     fmt(wall, 2), fmt(Double(before) / 1024), fmt(Double(hwm) / 1024), fmt(Double(sampler.peakKB) / 1024),
                     fmt(Double(after) / 1024)]]
        say(Table.render(headers: ["scenario", "files", "ok", "wall (s)", "RSS before (MB)", "peak RSS VmHWM (MB)",
                                   "peak RSS sampled (MB)", "RSS after (MB)"], rows: rows))
    }

    /// One part of the large-file path alone, to see which one holds memory.
    static func measurePart(_ scenario: Scenario, path: String, baseURL: String, sizeMB: Int) async throws {
        let before = ProcessStats.statusKB("VmRSS") ?? 0
        ProcessStats.resetPeakRSS()
        let start = ContinuousClock.now
        if scenario == .hash {
            _ = try FileHasher.sha256(path: path)
        } else {
            let http = DifyClient.makeHTTPClient()
            do {
                let client = DifyClient(configuration: .init(baseURL: baseURL, apiKey: SimulatedApp.defaultAPIKey), httpClient: http)
                _ = try await client.upload(fileAt: path, filename: "large.txt", user: "bench")
            } catch {
                try? await http.shutdown()
                throw error
            }
            try await http.shutdown()
        }
        let wall = (ContinuousClock.now - start).seconds
        let hwm = ProcessStats.statusKB("VmHWM") ?? 0
        say(Table.render(headers: ["part", "size (MB)", "wall (s)", "RSS before (MB)", "peak RSS VmHWM (MB)"], rows: [[
            scenario == .hash ? "FileHasher.sha256 alone" : "DifyClient.upload alone", String(sizeMB), fmt(wall, 2),
            fmt(Double(before) / 1024), fmt(Double(hwm) / 1024),
        ]]))
    }
}
