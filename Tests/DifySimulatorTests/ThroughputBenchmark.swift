import DifySimulator
import Foundation
import Testing

/// Measures sustained upload + streaming-run pairs per second over loopback.
/// Off by default; run with:
///   DIFY_SIM_BENCH=1 swift test --skip-build --filter ThroughputBenchmark
/// Optional: DIFY_SIM_BENCH_SECONDS (default 10), DIFY_SIM_BENCH_CONCURRENCY (default 16).
@Suite("Throughput benchmark (DIFY_SIM_BENCH=1)")
struct ThroughputBenchmark {
    static var enabled: Bool { ProcessInfo.processInfo.environment["DIFY_SIM_BENCH"] == "1" }

    @Test(.enabled(if: ThroughputBenchmark.enabled))
    func uploadPlusStreamingRunPairsPerSecond() async throws {
        let env = ProcessInfo.processInfo.environment
        let seconds = Double(env["DIFY_SIM_BENCH_SECONDS"] ?? "") ?? 10
        let concurrency = Int(env["DIFY_SIM_BENCH_CONCURRENCY"] ?? "") ?? 16
        try await withSimulator { simulator, client in
            let clock = ContinuousClock()
            let deadline = clock.now + .milliseconds(Int64(seconds * 1000))
            let start = clock.now
            let pairs = try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<concurrency {
                    group.addTask {
                        var done = 0
                        while clock.now < deadline {
                            let id = try await client.uploadID(bytes: helloText, user: "bench-\(worker)")
                            let r = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id, user: "bench-\(worker)", mode: "streaming"))
                            guard r.status == 200, r.events.last?.event == "workflow_finished" else { throw BenchFailure(status: r.status) }
                            done += 1
                        }
                        return done
                    }
                }
                return try await group.reduce(0, +)
            }
            let elapsed = (clock.now - start)
            let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let rate = Double(pairs) / secs
            print("BENCH: \(pairs) upload+streaming-run pairs in \(String(format: "%.1f", secs)) s with \(concurrency) clients = \(String(format: "%.0f", rate)) pairs/s (\(String(format: "%.0f", rate * 2)) req/s); peak concurrent runs \(simulator.stats.peakConcurrentRuns)")
            #expect(pairs > 0)
        }
    }

    struct BenchFailure: Error { let status: Int }
}
