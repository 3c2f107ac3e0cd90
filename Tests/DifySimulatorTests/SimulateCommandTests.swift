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

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: SimulateCommandTests.binary)))
    func simulate_printsBaseURLFirstServesKeyAndExitsOnSIGTERM() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["simulate", "--port", "0", "--key", "k1", "--key", "k2", "--mode", "completion", "--latency", "10ms"]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        // First stdout line: the base URL.
        var line: [UInt8] = []
        let handle = stdout.fileHandleForReading
        while !line.contains(0x0A) {
            let chunk = handle.availableData
            try #require(!chunk.isEmpty, "simulate exited before printing its URL")
            line += chunk
        }
        let baseURL = String(decoding: line.prefix { $0 != 0x0A }, as: UTF8.self)
        #expect(baseURL.hasPrefix("http://127.0.0.1:") && baseURL.hasSuffix("/v1"))
        let client = TestClient(baseURL: baseURL, key: "k2")
        let info = try await client.send(.GET, "/info")
        try await client.shutdown()
        #expect(info.status == 200)
        #expect(info.json?["mode"] == "completion")
        kill(process.processIdentifier, SIGTERM)
        let clock = ContinuousClock()
        let start = clock.now
        while process.isRunning && clock.now - start < .seconds(10) { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning, "exits on SIGTERM")
        #expect(process.terminationStatus == 0)
    }
}
