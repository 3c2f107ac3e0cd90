import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Issue 16: a file that never settles is named while `run` waits, and `run` gives up on it after
/// `match.settle_timeout` (rejected `never_settled`, `.error.json`, exit 1), leaving the file as it is.
@Suite(.serialized) struct SettleTimeoutEndToEndTests {
    /// Appends a line to `path` every 100 ms until cancelled; returns what it wrote.
    static func appendUntilCancelled(_ path: String) async -> Data {
        var written = Data()
        while !Task.isCancelled {
            let line = Data("line \(written.count)\n".utf8)
            if let handle = FileHandle(forWritingAtPath: path) {
                handle.seekToEndOfFile()
                handle.write(line)
                try? handle.close()
                written.append(line)
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return written
    }

    /// A workspace whose spec has `match: {settle: 1s, settle_timeout: …}` and a log file being appended to.
    static func workspace(_ baseURL: String, settleTimeout: String?) throws -> (Workspace, String) {
        let workspace = try Workspace(baseURL: baseURL)
        let spec = try String(contentsOfFile: workspace.specPath, encoding: .utf8)
        let match = "settle: 1s" + (settleTimeout.map { "\n  settle_timeout: \($0)" } ?? "")
        try spec.replacingOccurrences(of: "settle: 0s", with: match).write(toFile: workspace.specPath, atomically: true, encoding: .utf8)
        return (workspace, try workspace.drop("growing.log", ""))
    }

    @Test func run_onAFileThatNeverSettles_givesUpAfterSettleTimeout_rejectsItAndExits1() async throws {
        try await withDifySimulator { simulator, baseURL in
            let (workspace, log) = try Self.workspace(baseURL, settleTimeout: "2s")
            try workspace.drop("fine.txt", "a settled document")
            let appender = Task { await Self.appendUntilCancelled(log) }
            let result = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "always", "--progress-interval", "300ms",
                                            workspace.specPath], environment: workspace.environment, timeout: .seconds(60))
            appender.cancel()
            let written = await appender.value
            #expect(result.status == 1, "\(result.stderr)")
            #expect(result.stderr.contains("waiting for 1 file(s) to settle (oldest: growing.log, changing for "), "\(result.stderr)")
            #expect(result.stderr.contains("never_settled"))
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            let documents = try await ledger.documents(matching: DocumentFilter())
            let rejected = try #require(documents.first { $0.path == "growing.log" })
            #expect(rejected.state == .rejected && rejected.lastError?.code == "never_settled")
            #expect(documents.first { $0.path == "fine.txt" }?.state == .succeeded)
            #expect(workspace.errorOutputs() == ["growing.log.error.json"])
            #expect(try Data(contentsOf: URL(fileURLWithPath: log)) == written, "the input file is left as it is")
            #expect(simulator.stats.uploads == 1, "only the settled file was sent")
        }
    }

    @Test func run_endedByMaxDuration_namesTheFileStillChanging_inTheSummaryAndStatus() async throws {
        try await withDifySimulator { _, baseURL in
            let (workspace, log) = try Self.workspace(baseURL, settleTimeout: nil)
            let appender = Task { await Self.appendUntilCancelled(log) }
            let result = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", "--max-duration", "2s", workspace.specPath],
                                           environment: workspace.environment, timeout: .seconds(60))
            appender.cancel()
            _ = await appender.value
            #expect(result.stderr.contains("docs: succeeded 0, skipped 0, dead 0, rejected 0; 0 waiting; waiting for 1 file(s) to settle (oldest: growing.log, changing for "),
                    "\(result.stderr)")
            let status = try await CLI.run(["status", "--db", workspace.dbPath])
            #expect(status.stdout.contains("docs: at the end of the last run: waiting for 1 file(s) to settle (oldest: growing.log, changing for "),
                    "\(status.stdout)")
            let json = try await CLI.run(["status", "--db", workspace.dbPath, "--json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            let lastRun = try #require(((object["jobs"] as? [[String: Any]])?.first?["last_run"]) as? [String: Any])
            let unsettled = try #require(lastRun["unsettled"] as? [String: Any])
            #expect(unsettled["count"] as? Int == 1 && unsettled["oldest"] as? String == "growing.log")
            #expect((unsettled["changing_seconds"] as? Int).map { $0 >= 1 } == true)
        }
    }
}
