import DifyBatch
import DifySimulator
import Foundation
import Testing

/// `dify-batch retry` on a ledger prepared by a real pipeline run against a simulator whose workflows all fail.
@Suite struct RetryEndToEndTests {
    /// Two dead documents (every workflow fails, one attempt allowed) and one rejected image.
    static func prepare(_ body: @Sendable (Workspace, SQLiteLedger) async throws -> Void) async throws {
        var faults = FaultPlan()
        faults.failedWorkflowRate = 1
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL, retry: "{max_attempts: 1, base_delay: 10ms, max_delay: 10ms}")
            try workspace.drop("a.txt", "first document")
            try workspace.drop("sub dir/b é.md", "second document")
            try workspace.drop("photo.png", "pixels")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed)
            let states = try await ledger.documents(matching: DocumentFilter()).map { "\($0.path):\($0.state.rawValue)" }.sorted()
            #expect(states == ["a.txt:dead", "photo.png:rejected", "sub dir/b é.md:dead"])
            try await body(workspace, ledger)
        }
    }

    @Test func retry_default_requeuesDeadDocuments_resetsAttempts_keepsHistory() async throws {
        try await Self.prepare { workspace, ledger in
            let before = try await ledger.documents(matching: DocumentFilter(states: [.dead]))
            let result = try await CLI.run(["retry", "--db", workspace.dbPath])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("Requeued 2 documents (dead → pending)."), "\(result.stdout)")
            #expect(result.stdout.contains("sub dir/b é.md") && result.stdout.contains("a.txt"))
            for document in before {
                let now = try #require(try await ledger.document(id: document.id))
                #expect(now.state == .pending && now.attempts == 0)
                #expect(try await ledger.attempts(documentID: document.id).count >= 2, "history kept")
            }
            #expect(try await ledger.documents(matching: DocumentFilter(states: [.rejected])).count == 1)

            // Nothing left in `dead`: still exit 0, nothing moved.
            let again = try await CLI.run(["retry", "--db", workspace.dbPath, "--json"])
            #expect(again.status == 0)
            let object = try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any]
            #expect(object?["moved"] as? Int == 0)

            // A rejected document is moved only when asked for. (Its file is sent as it is by the next run.)
            let json = try await CLI.run(["retry", "--db", workspace.dbPath, "--job", "docs", "--state", "rejected", "--json"])
            #expect(json.status == 0, "\(json.stderr)")
            let rejected = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            #expect(rejected["moved"] as? Int == 1)
            let moved = try #require((rejected["documents"] as? [[String: Any]])?.first)
            #expect(moved["path"] as? String == "photo.png" && moved["from"] as? String == "rejected" && moved["job"] as? String == "docs")
        }
    }

    @Test func retry_byPathOrID_unknownReferences_andTheNextRunSendsThem() async throws {
        try await Self.prepare { workspace, ledger in
            // By path (newest version) and by id; a reference that matches nothing exits 1.
            let dead = try await ledger.documents(matching: DocumentFilter(states: [.dead])).sorted { $0.path < $1.path }
            let byPath = try await CLI.run(["retry", "--db", workspace.dbPath, "sub dir/b é.md"])
            #expect(byPath.status == 0 && byPath.stdout.contains("Requeued 1 document "), "\(byPath.stdout)")
            let byID = try await CLI.run(["retry", "--db", workspace.dbPath, "--json", String(dead[0].id), "nothing-here.txt"])
            #expect(byID.status == 1)
            #expect(byID.stderr.contains("'nothing-here.txt'"))
            #expect((try JSONSerialization.jsonObject(with: Data(byID.stdout.utf8)) as? [String: Any])?["moved"] as? Int == 1)
            #expect(try await ledger.documents(matching: DocumentFilter(states: [.pending])).count == 2)

            // Bad state and unknown job.
            #expect(try await CLI.run(["retry", "--db", workspace.dbPath, "--state", "succeeded"]).status == 2)
            #expect(try await CLI.run(["retry", "--db", workspace.dbPath, "--job", "nope"]).status == 1)

            // The next run against a healthy Dify sends the requeued documents.
            try await withDifySimulator { _, healthy in
                let spec = try String(contentsOfFile: workspace.specPath, encoding: .utf8)
                try spec.replacingOccurrences(of: workspace.baseURL, with: healthy).write(toFile: workspace.specPath, atomically: true, encoding: .utf8)
                let run = try await CLI.run(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment)
                #expect(run.status == 0, "\(run.stderr)")
                let states = try await ledger.documents(matching: DocumentFilter()).map { "\($0.path):\($0.state.rawValue)" }.sorted()
                #expect(states == ["a.txt:succeeded", "photo.png:rejected", "sub dir/b é.md:succeeded"])
            }
        }
    }

    @Test func retry_withoutLedger_movesNothing() async throws {
        let scratch = try Scratch()
        let result = try await CLI.run(["retry", "--db", scratch.file("missing.sqlite"), "--json"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("\"moved\" : 0"))
        #expect(!FileManager.default.fileExists(atPath: scratch.file("missing.sqlite")))
    }
}
