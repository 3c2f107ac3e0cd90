import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Issue 16: a file that never settles is named while `run` waits, and `run` gives up on it after
/// `match.settle_timeout` (rejected `never_settled`, `.error.json`, exit 1), leaving the file as it is.
@Suite(.serialized) struct SettleTimeoutEndToEndTests {
    /// A separate process that appends `x\n` to `path` every 100 ms (a process of its own keeps appending while
    /// this test process waits on a loaded machine). Stop it with ``stop(_:)``.
    static func appender(_ path: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "while :; do printf 'x\\n' >> \"$0\"; sleep 0.1; done", path]
        try process.run()
        return process
    }

    /// Stops the appender and returns the number of lines in the file (each exactly `x\n`, else nil).
    static func stop(_ appender: Process, _ path: String) -> Int? {
        appender.terminate()
        appender.waitUntilExit()
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        return text.hasSuffix("\n") && lines.allSatisfy { $0 == "x" } ? lines.count : nil
    }

    /// A workspace whose spec has `match: {settle: 1s, settle_timeout: …}` and a log file being appended to.
    static func workspace(_ baseURL: String, settleTimeout: String?) throws -> (Workspace, String) {
        let workspace = try Workspace(baseURL: baseURL)
        let spec = try String(contentsOfFile: workspace.specPath, encoding: .utf8)
        let match = "settle: 1s" + (settleTimeout.map { "\n  settle_timeout: \($0)" } ?? "")
        try spec.replacingOccurrences(of: "settle: 0s", with: match).write(toFile: workspace.specPath, atomically: true, encoding: .utf8)
        return (workspace, try workspace.drop("growing.txt", ""))
    }

    @Test func run_onAFileThatNeverSettles_givesUpAfterSettleTimeout_rejectsItAndExits1() async throws {
        try await withDifySimulator { simulator, baseURL in
            let (workspace, log) = try Self.workspace(baseURL, settleTimeout: "2s")
            try workspace.drop("fine.txt", "a settled document")
            let inode = try FileManager.default.attributesOfItem(atPath: log)[.systemFileNumber] as? Int
            let appender = try Self.appender(log)
            let result = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "always", "--progress-interval", "300ms",
                                            workspace.specPath], environment: workspace.environment, timeout: .seconds(60))
            let lines = Self.stop(appender, log)
            #expect(result.status == 1, "\(result.stderr)")
            #expect(result.stderr.contains("waiting for 1 file(s) to settle (oldest: growing.txt, changing for "), "\(result.stderr)")
            #expect(result.stderr.contains("never_settled"))
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            let documents = try await ledger.documents(matching: DocumentFilter())
            let rejected = try #require(documents.first { $0.path == "growing.txt" })
            #expect(rejected.state == .rejected && rejected.lastError?.code == "never_settled")
            #expect(documents.first { $0.path == "fine.txt" }?.state == .succeeded)
            #expect(workspace.errorOutputs() == ["growing.txt.error.json"])
            // Left as it is: the same file, holding exactly what the appender wrote.
            #expect(lines.map { $0 > 10 } == true, "\(String(describing: lines))")
            #expect(try FileManager.default.attributesOfItem(atPath: log)[.systemFileNumber] as? Int == inode)
            #expect(simulator.stats.uploads == 1, "only the settled file was sent")
        }
    }

    @Test func run_endedByMaxDuration_namesTheFileStillChanging_inTheSummaryAndStatus() async throws {
        try await withDifySimulator { _, baseURL in
            let (workspace, log) = try Self.workspace(baseURL, settleTimeout: nil)
            let appender = try Self.appender(log)
            let result = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", "--max-duration", "2s", workspace.specPath],
                                           environment: workspace.environment, timeout: .seconds(60))
            _ = Self.stop(appender, log)
            #expect(result.stderr.contains("docs: succeeded 0, skipped 0, dead 0, rejected 0; 0 waiting; waiting for 1 file(s) to settle (oldest: growing.txt, changing for "),
                    "\(result.stderr)")
            let status = try await CLI.run(["status", "--db", workspace.dbPath])
            #expect(status.stdout.contains("docs: at the end of the last run: waiting for 1 file(s) to settle (oldest: growing.txt, changing for "),
                    "\(status.stdout)")
            let json = try await CLI.run(["status", "--db", workspace.dbPath, "--json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            let lastRun = try #require(((object["jobs"] as? [[String: Any]])?.first?["last_run"]) as? [String: Any])
            let unsettled = try #require(lastRun["unsettled"] as? [String: Any])
            #expect(unsettled["count"] as? Int == 1 && unsettled["oldest"] as? String == "growing.txt")
            #expect((unsettled["changing_seconds"] as? Int).map { $0 >= 1 } == true)
        }
    }
}
