import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Drives the built `dify-batch simulate` binary (skipped when it has not been built).
@Suite("dify-batch simulate")
struct SimulateCommandTests {
    static let binary = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug/dify-batch").path

    /// Starts `dify-batch simulate ARGS` and returns the process and the base URL it printed first.
    static func start(_ arguments: [String]) throws -> (Process, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["simulate"] + arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        // First stdout line: the base URL.
        var line: [UInt8] = []
        let handle = stdout.fileHandleForReading
        while !line.contains(0x0A) {
            let chunk = handle.availableData
            if chunk.isEmpty {
                process.terminate()
                throw SimulateFailed()
            }
            line += chunk
        }
        return (process, String(decoding: line.prefix { $0 != 0x0A }, as: UTF8.self))
    }

    struct SimulateFailed: Error {}

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: SimulateCommandTests.binary)))
    func simulate_printsBaseURLFirstServesKeyAndExitsOnSIGTERM() async throws {
        let (process, baseURL) = try Self.start(["--port", "0", "--key", "k1", "--key", "k2", "--mode", "completion", "--latency", "10ms"])
        defer { if process.isRunning { process.terminate() } }
        #expect(baseURL.hasPrefix("http://127.0.0.1:") && baseURL.hasSuffix("/v1"))
        let client = TestClient(baseURL: baseURL, key: "k2")
        let info = try await client.send(.GET, "/info")
        try await client.shutdown()
        #expect(info.status == 200)
        #expect(info.json?["mode"] == "completion")
        kill(process.processIdentifier, SIGTERM)
        let clock = ContinuousClock()
        let start = clock.now
        while process.isRunning && clock.now - start < .seconds(30) { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning, "exits on SIGTERM")
        #expect(process.terminationStatus == 0)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: SimulateCommandTests.binary)))
    func simulate_recoveryFaultFlagsReachTheServer() async throws {
        let start = Date()
        let (process, baseURL) = try Self.start([
            "--clock-offset", "-1h", "--gateway-rate-limit-rate", "1", "--gateway-retry-after", "5s",
            "--run-detail-not-found-first", "1", "--logs-bad-gateway-first", "1",
        ])
        defer { if process.isRunning { process.terminate() } }
        let client = TestClient(baseURL: baseURL)
        let info = try await client.send(.GET, "/info")
        let run = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: "f"))
        let detail = try await client.send(.GET, "/workflows/run/x")
        let logs = try await client.send(.GET, "/workflows/logs")
        try await client.shutdown()
        let date = try #require(RecoveryFaultTests.httpDate(info.header("Date")))
        #expect(RecoveryFaultTests.isNear(date, -3600, since: start))
        #expect(run.status == 429)
        #expect(run.header("Retry-After") == "5")
        #expect(run.text.contains("1015"))
        #expect(detail.status == 404)
        #expect(logs.status == 502)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: SimulateCommandTests.binary)))
    func simulate_rejectsABadClockOffset() throws {
        #expect(throws: SimulateFailed.self) { _ = try Self.start(["--clock-offset", "soon"]) }
    }
}
