import DifyBatch
import DifySimulator
import Foundation
import Testing

@Suite(.serialized) struct ProgressEndToEndTests {
    @Test func intoAPipe_progressIsPlainLinesWithoutEscapeCodes() async throws {
        var faults = FaultPlan()
        faults.latency = .milliseconds(100)
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 2)
            for index in 0..<8 { try workspace.drop("p\(index).txt", documentText(index)) }
            let result = try await CLI.run(["run", "--db", workspace.dbPath, "--progress-interval", "100ms", workspace.specPath], environment: workspace.environment)
            #expect(result.status == 0, "\(result.stderr)")
            let progress = result.stderr.split(separator: "\n").filter { $0.hasPrefix("progress: ") }
            #expect(!progress.isEmpty, "\(result.stderr)")
            #expect(progress.allSatisfy { $0.contains(" docs/s | ETA ") && $0.contains(" tokens") })
            #expect(!result.stderr.contains("\u{1B}") && !result.stderr.contains("\r"))
            #expect(!result.stdout.contains("\u{1B}"))
        }
    }

    @Test func always_andNever_intoAPipe_neverWriteEscapeCodes() async throws {
        try await withDifySimulator { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", documentText(1))
            let always = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "always", "--progress-interval", "10ms", workspace.specPath], environment: workspace.environment)
            #expect(always.status == 0, "\(always.stderr)")
            #expect(!always.stderr.contains("\u{1B}") && !always.stderr.contains("\r"))
            try workspace.drop("b.txt", documentText(2))
            let never = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", "--progress-interval", "10ms", workspace.specPath], environment: workspace.environment)
            #expect(never.status == 0, "\(never.stderr)")
            #expect(!never.stderr.contains("progress: ") && !never.stderr.contains("\u{1B}"))
        }
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script")))
    func onATerminal_progressIsOneRedrawnLine_clearedBeforeTheSummary() async throws {
        var faults = FaultPlan()
        faults.latency = .milliseconds(150)
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 2)
            for index in 0..<6 { try workspace.drop("t\(index).txt", documentText(index)) }
            let quote = { (text: String) in "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
            let command = ([CLI.binary, "run", "--db", workspace.dbPath, "--log-level", "warning", workspace.specPath]).map(quote).joined(separator: " ")
            // `script` gives the child a pseudo-terminal as stdin/stdout/stderr and copies what it writes to our pipe.
            let result = try await CLI.runProgram("/usr/bin/script", ["-qec", command, "/dev/null"], environment: workspace.environment)
            #expect(result.status == 0, "\(result.stdout)")
            #expect(result.stdout.contains("\r\u{1B}[2K0 succeeded") || result.stdout.contains("\r\u{1B}[2K1 succeeded"), "\(result.stdout.debugDescription)")
            #expect(result.stdout.contains(" docs/s | ETA "))
            #expect(!result.stdout.contains("progress: "), "no plain lines on a terminal")
            let summary = try #require(result.stdout.range(of: "docs:"), "\(result.stdout.debugDescription)")
            #expect(result.stdout[..<summary.lowerBound].hasSuffix("\r\u{1B}[2K"), "the live line is cleared before the summary")
        }
    }
}

