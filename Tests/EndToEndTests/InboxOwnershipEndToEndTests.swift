import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Attack `two-ledgers.sh` (b): a second ledger on an inbox another ledger served, one after the other, never runs
/// and pays for its files again. The real binary against the simulator; runs counted at the server.
@Suite struct InboxOwnershipEndToEndTests {
    static let runs = "POST /v1/workflows/run"

    static func run(_ workspace: Workspace, db: String, _ extra: [String] = []) async throws -> CLI.Result {
        try await CLI.run(["run", "--db", db, "--progress", "never"] + extra + [workspace.specPath], environment: workspace.environment)
    }

    /// Three distinct files, `after_success: keep` (they stay in the inbox), processed by ledger A.
    static func served(_ body: @Sendable (DifySimulator, Workspace, String) async throws -> Void) async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, extra: "after_success: keep")
            for index in 1...3 { try workspace.drop("f\(index).txt", documentText(index)) }
            let ledgerA = workspace.scratch.file("a/ledger.sqlite")
            let first = try await Self.run(workspace, db: ledgerA)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == 3)
            try await body(simulator, workspace, ledgerA)
        }
    }

    @Test func run_withASecondLedgerAfterTheFirst_isRefusedExit2BeforeAnythingIsSent_namingTheOwnerAndTheWayOut() async throws {
        try await Self.served { simulator, workspace, ledgerA in
            let ledgerB = workspace.scratch.file("b/ledger.sqlite")
            let second = try await Self.run(workspace, db: ledgerB)
            #expect(second.status == 2, "\(second.stderr)")
            #expect(second.stderr.contains("belongs to another ledger") && second.stderr.contains("--db \(ledgerA)")
                    && second.stderr.contains("--take-over-inbox"), "\(second.stderr)")
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == 3, "nothing was paid again")
            #expect(simulator.stats.requestsByEndpoint["POST /v1/files/upload"] == 3, "nothing was even uploaded")
            #expect(try await SQLiteLedger(path: ledgerB).documents(matching: DocumentFilter()).isEmpty, "the refused ledger took no file")

            // `check` names the owner.
            let check = try await CLI.run(["check", "--json", workspace.specPath], environment: workspace.environment)
            let report = try #require(try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any], "\(check.stderr)")
            let inbox = try #require(((report["jobs"] as? [[String: Any]])?.first?["inbox"]) as? [String: Any])
            #expect((inbox["owner"] as? [String: Any])?["ledger"] as? String == ledgerA, "\(check.stdout)")

            // `watch` is refused the same way.
            let watch = try await CLI.run(["watch", "--db", ledgerB, "--progress", "never", workspace.specPath],
                                          environment: workspace.environment)
            #expect(watch.status == 2, "\(watch.stderr)")
            #expect(watch.stderr.contains("belongs to another ledger"), "\(watch.stderr)")

            // The owner itself goes on; a moved ledger file is still the owner (its id is in the file).
            let moved = workspace.scratch.file("moved/ledger.sqlite")
            try FileManager.default.createDirectory(atPath: workspace.scratch.file("moved"), withIntermediateDirectories: true)
            try FileManager.default.moveItem(atPath: ledgerA, toPath: moved)
            try workspace.drop("f4.txt", documentText(4))
            let again = try await Self.run(workspace, db: moved)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == 4, "only the new file ran")
            let marker = try String(contentsOfFile: (workspace.inbox as NSString).appendingPathComponent(InboxOwnership.fileName), encoding: .utf8)
            #expect(marker.contains(moved), "the marker names the ledger where it is now: \(marker)")
        }
    }

    @Test func run_withTakeOverInbox_keepsEveryResultAlreadyInTheOutbox_sendsOnlyNewContent_andThenOwnsTheInbox() async throws {
        try await Self.served { simulator, workspace, ledgerA in
            try workspace.drop("f1.txt", documentText(11))       // a new version at a known path
            try workspace.drop("new.txt", documentText(12))
            let before = try workspace.json("f2.txt.json")
            let ledgerB = workspace.scratch.file("b/ledger.sqlite")
            let takeOver = try await Self.run(workspace, db: ledgerB, ["--take-over-inbox"])
            #expect(takeOver.status == 0, "\(takeOver.stderr)")
            #expect(takeOver.stderr.contains("took the inbox over from the ledger \(ledgerA)"), "\(takeOver.stderr)")
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == 5, "3 paid before + the new version + the new file")
            let states = try await SQLiteLedger(path: ledgerB).documents(matching: DocumentFilter()).map { "\($0.path):\($0.state.rawValue)" }.sorted()
            #expect(states == ["f1.txt:succeeded", "f2.txt:skipped", "f3.txt:skipped", "new.txt:succeeded"])
            // The outbox document of a result kept is the very file the first ledger wrote.
            let after = try workspace.json("f2.txt.json")
            #expect((after["dify"] as? [String: Any])?["workflow_run_id"] as? String == (before["dify"] as? [String: Any])?["workflow_run_id"] as? String)
            #expect(after["finished_at"] as? String == before["finished_at"] as? String)

            // Now ledger A is the other one.
            let old = try await Self.run(workspace, db: ledgerA)
            #expect(old.status == 2 && old.stderr.contains("--db \(ledgerB)"), "\(old.stderr)")
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == 5)
        }
    }

    @Test func run_whenNoOwnerIsRecorded_aResultAlreadyInTheOutboxForTheSameContentIsNeverPaidAgain() async throws {
        // An outbox written before owners were recorded, or whose markers were removed: the outbox itself is the evidence.
        try await Self.served { simulator, workspace, _ in
            for folder in [workspace.inbox, workspace.outbox] {
                try FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent(InboxOwnership.fileName))
            }
            // Same path, other content: that one is new work.
            try workspace.drop("f3.txt", documentText(33))
            let fresh = workspace.scratch.file("fresh/ledger.sqlite")
            let result = try await Self.run(workspace, db: fresh)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == 4, "only the changed content ran")
            let states = try await SQLiteLedger(path: fresh).documents(matching: DocumentFilter()).map { "\($0.path):\($0.state.rawValue)" }.sorted()
            #expect(states == ["f1.txt:skipped", "f2.txt:skipped", "f3.txt:succeeded"])
            // --reprocess runs everything on purpose.
            let reprocess = try await Self.run(workspace, db: workspace.scratch.file("other/ledger.sqlite"), ["--reprocess", "--take-over-inbox"])
            #expect(reprocess.status == 0, "\(reprocess.stderr)")
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == 7, "--reprocess sends every file again")
        }
    }

    @Test func run_withTakeOverInbox_aRunTheOtherLedgerLeftUnresolvedIsParkedUnresolved_neverSentAgain_untilRetried() async throws {
        var faults = FaultPlan()
        faults.dropAfterStartRate = 1.0   // billed, and a completion run cannot be looked up: unresolved
        try await withDifySimulator(SimulatorConfiguration(apps: [.completion(apiKey: "app-co")], faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, key: "app-co")
            try workspace.drop("a.txt", "alpha")
            let first = try await Self.run(workspace, db: workspace.scratch.file("a/ledger.sqlite"))
            #expect(first.status == 1, "\(first.stderr)")
            #expect(simulator.stats.runRequestsReceived == 1)

            let ledgerB = workspace.scratch.file("b/ledger.sqlite")
            let takeOver = try await Self.run(workspace, db: ledgerB, ["--take-over-inbox"])
            #expect(takeOver.status == 1, "\(takeOver.stderr)")
            #expect(takeOver.stderr.contains("unresolved 1"), "\(takeOver.stderr)")
            #expect(simulator.stats.runRequestsReceived == 1, "a run that may have been billed is not sent again")
            let ledger = try SQLiteLedger(path: ledgerB)
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state == .unresolved && document.outcomeUnknown, "\(document.state)")
            #expect(document.lastError?.message.contains("retry --state unresolved \(document.id)") == true)
            #expect(workspace.errorOutputs() == ["a.txt.error.json"])

            // The documented way out sends it (once).
            let retry = try await CLI.run(["retry", "--db", ledgerB, "--state", "unresolved", "\(document.id)"])
            #expect(retry.status == 0, "\(retry.stderr)")
            _ = try await Self.run(workspace, db: ledgerB)
            #expect(simulator.stats.runRequestsReceived == 2)
        }
    }
}
