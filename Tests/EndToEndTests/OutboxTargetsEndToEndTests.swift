import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Attack `outbox-name-clash.sh`: an outbox path that cannot be written is refused before anything is paid, with
/// the real binary against the simulator; `check` reports it.
@Suite struct OutboxTargetsEndToEndTests {
    static let runs = "POST /v1/workflows/run"
    static let uploads = "POST /v1/files/upload"

    @Test func run_whenAFileAndAnInboxFolderMapToOneOutboxPath_rejectsBothUnsent_everyFileHasAnOutcome_andCheckSaysSo() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("d.txt", "the file d")
            try workspace.drop("d.txt.json/e.txt", "the file e")
            try workspace.drop("other.txt", "an ordinary file")

            let check = try await CLI.run(["check", "--json", workspace.specPath], environment: workspace.environment)
            let report = try #require(try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any], "\(check.stderr)")
            let inbox = try #require(((report["jobs"] as? [[String: Any]])?.first?["inbox"]) as? [String: Any])
            let rejected = (inbox["rejected"] as? [[String: Any]] ?? []).map { "\($0["path"] ?? ""):\($0["code"] ?? "")" }.sorted()
            #expect(rejected == ["d.txt.json/e.txt:outbox_clash", "d.txt:outbox_clash"], "\(check.stdout)")

            for round in 1...2 {
                let run = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                            environment: workspace.environment)
                #expect(run.status == (round == 1 ? 1 : 0), "\(run.stderr)")
            }
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == 1, "only other.txt was run, once")
            #expect(simulator.stats.requestsByEndpoint[Self.uploads] == 1, "nothing of the clash was even uploaded")
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            let states = try await ledger.documents(matching: DocumentFilter()).map { "\($0.path):\($0.state.rawValue):\($0.lastError?.code ?? "-")" }.sorted()
            #expect(states == ["d.txt.json/e.txt:rejected:outbox_clash", "d.txt:rejected:outbox_clash", "other.txt:succeeded:-"])
            // Each input has one visible outcome, and both error files can coexist.
            #expect(workspace.errorOutputs() == ["d.txt.error.json", "d.txt.json/e.txt.error.json"])
            #expect(workspace.outputs() == ["other.txt.json"])
            let message = try #require(try workspace.json("d.txt.error.json")["error"] as? [String: Any])["message"] as? String
            #expect(message?.contains("d.txt.json/") == true && message?.contains("rename one of them") == true, "\(message ?? "")")
            // The sources of refused documents stay in the inbox.
            #expect(FileManager.default.fileExists(atPath: (workspace.inbox as NSString).appendingPathComponent("d.txt")))
        }
    }

    @Test func run_whenAFolderIsInTheWayOfAnOutboxFile_rejectsUnsent_andAfterItIsMovedARetryRunsItOnce() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", "document a")
            let obstacle = (workspace.outbox as NSString).appendingPathComponent("a.txt.json")
            try FileManager.default.createDirectory(atPath: obstacle, withIntermediateDirectories: true)

            let first = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                          environment: workspace.environment)
            #expect(first.status == 1, "\(first.stderr)")
            #expect(first.stderr.contains("outbox_blocked") && first.stderr.contains(obstacle), "\(first.stderr)")
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == nil, "nothing paid")
            #expect(workspace.errorOutputs() == ["a.txt.error.json"])

            // The fix the message names: move it away, requeue, run.
            try FileManager.default.removeItem(atPath: obstacle)
            let retry = try await CLI.run(["retry", "--db", workspace.dbPath, "--state", "rejected", "a.txt"])
            #expect(retry.status == 0, "\(retry.stderr)")
            let second = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                           environment: workspace.environment)
            #expect(second.status == 0, "\(second.stderr)")
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == 1)
            #expect(workspace.outputs() == ["a.txt.json"] && workspace.errorOutputs().isEmpty)
        }
    }

    @Test func run_whenACopyOfSucceededContentHasABlockedOutboxPath_isRejectedWithTheReason_notALocalFailureForever() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", "the same bytes")
            let first = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                          environment: workspace.environment)
            #expect(first.status == 0, "\(first.stderr)")
            try workspace.drop("b.txt", "the same bytes")
            try FileManager.default.createDirectory(atPath: (workspace.outbox as NSString).appendingPathComponent("b.txt.json"),
                                                    withIntermediateDirectories: true)
            let second = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                           environment: workspace.environment)
            #expect(second.status == 1, "\(second.stderr)")
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            let copy = try #require(try await ledger.documents(path: "b.txt").first)
            #expect(copy.state == .rejected && copy.lastError?.code == OutboxTargets.blockedCode, "\(copy.state) \(String(describing: copy.lastError))")
            #expect(workspace.errorOutputs() == ["b.txt.error.json"])
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == 1)
        }
    }
}
