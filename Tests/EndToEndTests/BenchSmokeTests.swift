import Foundation
import Testing

/// A tiny run of the benchmark's efficiency measurement (the debug `dify-batch-bench` binary), so the benchmark
/// code path keeps working. The real numbers come from a release build; see BENCHMARKS.md.
@Suite struct BenchSmokeTests {
    static let binary: String? = {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dify-batch-bench").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent(".build/debug/dify-batch-bench").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    @Test func efficiency_20Files_c4_L10ms_allSucceedAndPrintARow() async throws {
        let binary = try #require(Self.binary, "dify-batch-bench is not built (swift build --product dify-batch-bench)")
        let result = try await CLI.runProgram(binary, ["efficiency", "--files", "20", "--concurrency", "4", "--latency", "10ms"],
                                              timeout: .seconds(60))
        let text = result.stdout
        #expect(result.status == 0, "\(text)\n\(result.stderr)")
        let row = try #require(text.split(separator: "\n").first { $0.hasPrefix("| 10 |") }, "\(text)")
        let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        // L, jitter, c, files, ok, wall, docs/s, ideal, ratio, ...
        #expect(cells[2] == "4" && cells[3] == "20")
        #expect(cells[4] == "20", "every document succeeded: \(row)")
        #expect((Double(cells[8]) ?? 0) > 0, "a ratio to the ideal is printed: \(row)")
    }
}
