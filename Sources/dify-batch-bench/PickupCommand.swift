import ArgumentParser
import DifyBatch
import DifySimulator
import Foundation

/// 5. Pick-up latency in `watch` mode: rename into the inbox → upload starts.
struct PickupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pickup",
        abstract: "Latency from a file's rename into the inbox until its upload starts (`watch`, settle 0s).",
        discussion: """
            `dify-batch watch` runs in-process (default options: inotify on, tick 200ms) against an in-process \
            simulator. Each trial writes a file outside the inbox, waits a random 20–150 ms (so trials do not \
            line up with the tick), takes a monotonic timestamp and rename(2)s it into the inbox. The upload's \
            start is the monotonic instant the pipeline's upload attempt began (PipelineEvent.attemptFinished: \
            end − duration). Trials run one at a time; each waits for the previous document to settle.
            """)

    @Option(help: "Files dropped one at a time.") var trials = 50
    @Option(help: "The pipeline's loop tick (default as dify-batch: 200ms).") var tick = "200ms"
    @Flag(name: .customLong("no-inotify"), help: "Rely on the tick's rescans instead of inotify.") var noInotify = false

    func run() async throws {
        let tickDuration = try parseDuration(tick)
        let useInotify = !noInotify
        let trials = self.trials
        let latencies: [Double] = try await withDifySimulator { _, baseURL in
            let workspace = try BenchWorkspace()
            defer { workspace.remove() }
            try workspace.writeSpec(baseURL: baseURL, concurrency: 4)
            let observer = BenchObserver()
            let (pipeline, _) = try workspace.makePipeline(mode: .watch, observers: [observer]) {
                $0.tick = tickDuration
                $0.useInotify = useInotify
            }
            return try await withThrowingTaskGroup(of: [Double]?.self) { group in
                group.addTask {
                    _ = try? await pipeline.run()
                    return nil
                }
                group.addTask {
                    try await Self.waitFor(timeout: .seconds(10)) { observer.state.withLock { $0.jobStarted } }
                    try await Task.sleep(for: .milliseconds(300))
                    var latencies: [Double] = []
                    for index in 0..<trials {
                        let staged = workspace.stage + "/pick-\(index).txt"
                        try BenchWorkspace.writeFile(BenchWorkspace.smallText(index), to: staged)
                        try await Task.sleep(for: .milliseconds(Int.random(in: 20...150)))
                        let renamed = ContinuousClock.now
                        guard rename(staged, workspace.inbox + "/pick-\(index).txt") == 0 else { throw BenchError("rename failed") }
                        try await Self.waitFor(timeout: .seconds(10)) { observer.state.withLock { $0.uploadStarts.count > index } }
                        let started = observer.state.withLock { $0.uploadStarts[index] }
                        latencies.append(milliseconds(started - renamed))
                        try await Self.waitFor(timeout: .seconds(10)) { observer.state.withLock { $0.settled > index } }
                    }
                    return latencies
                }
                var latencies: [Double] = []
                while let next = try await group.next() {
                    if let next {
                        latencies = next
                        group.cancelAll()
                    }
                }
                return latencies
            }
        }
        say(Table.render(headers: ["mode", "tick", "trials", "min (ms)", "median (ms)", "p95 (ms)", "max (ms)"], rows: [[
            useInotify ? "watch, inotify" : "watch, no inotify", tick, String(latencies.count),
            fmt(latencies.min() ?? .nan, 2), fmt(percentile(latencies, 50), 2), fmt(percentile(latencies, 95), 2),
            fmt(latencies.max() ?? .nan, 2),
        ]]))
        note("latencies (ms): " + latencies.map { fmt($0, 1) }.joined(separator: " "))
    }

    static func waitFor(timeout: Duration, _ condition: @Sendable () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            if ContinuousClock.now > deadline { throw BenchError("timed out waiting for the pipeline") }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}
