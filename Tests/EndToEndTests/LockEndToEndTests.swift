import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Issue 11, item 4: the inbox is the unit of locking; specs that share folders or move a job are refused.
@Suite(.serialized) struct LockEndToEndTests {
    /// A second spec in the workspace with its own name and folders (`inbox` given).
    static func writeSpec(_ workspace: Workspace, file: String, name: String, inbox: String, outbox: String, archive: String,
                          baseURL: String) throws -> String {
        let path = workspace.scratch.file("jobs/\(file)")
        try """
            name: \(name)
            inbox: \(inbox)
            outbox: \(outbox)
            archive: \(archive)
            dify: {base_url: \(baseURL), api_key_env: DIFY_TEST_KEY}
            match: {settle: 0s}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func run_whenAWatchOnAnotherLedgerHoldsTheInbox_exits5NamingItsPid_alsoForASymlinkedSpellingAndAnotherJobName() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            let watch = try Child(["watch", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                  environment: workspace.environment, stderrPath: workspace.scratch.file("watch.log"))
            defer { if watch.process.isRunning { watch.signal(SIGKILL) } }
            let started = try await waitUntilAsync {
                guard FileManager.default.fileExists(atPath: workspace.dbPath) else { return false }
                let runs = try await SQLiteLedger(path: workspace.dbPath).unfinishedRuns()
                return !runs.isEmpty
            }
            #expect(started, "\(watch.stderr)")
            let pid = watch.process.processIdentifier

            // Another ledger, same spec.
            let other = try await CLI.run(["run", "--db", workspace.scratch.file("b/ledger.sqlite"), "--progress", "never", workspace.specPath],
                                          environment: workspace.environment)
            #expect(other.status == 5, "\(other.stderr)")
            #expect(other.stderr.contains("held by pid \(pid)"), "\(other.stderr)")

            // The same ledger: the holder's run is named too.
            let same = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                         environment: workspace.environment)
            #expect(same.status == 5)
            #expect(same.stderr.contains("held by pid \(pid)") && same.stderr.contains("dify-batch watch, run #1 in this ledger"), "\(same.stderr)")

            // Another job name on a symlinked spelling of the same inbox.
            #expect(symlink(workspace.inbox, workspace.scratch.file("alias")) == 0)
            let aliasSpec = try Self.writeSpec(workspace, file: "alias.yaml", name: "alias", inbox: "../alias", outbox: "../out-alias",
                                               archive: "../done-alias", baseURL: baseURL)
            let alias = try await CLI.run(["run", "--db", workspace.scratch.file("c/ledger.sqlite"), "--progress", "never", aliasSpec],
                                          environment: workspace.environment)
            #expect(alias.status == 5, "\(alias.stderr)")
            #expect(!FileManager.default.fileExists(atPath: workspace.scratch.file("out-alias")), "the refused process wrote nothing")

            // Nothing was created in the inbox for the lock, and the holder still works.
            try workspace.drop("late.txt", documentText(1))
            #expect(try await waitUntil { workspace.outputs() == ["late.txt.json"] })
            watch.signal(SIGTERM)
            #expect(try await watch.exitStatus() == 0)
            #expect(simulator.stats.requestsByEndpoint["POST /v1/workflows/run"] == 1, "processed once")
        }
    }

    @Test func run_whenThisUserCannotOpenTheInbox_exits2WithTheFix_not5() async throws {
        try await withDifySimulator { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            guard let user = TestUser.ensure() else {
                print("skipped: no non-root test user can be created here (needs root and useradd)")
                return
            }
            try FileManager.default.createDirectory(atPath: workspace.scratch.file("state"), withIntermediateDirectories: true)
            try TestUser.giveTree(workspace.scratch.path, to: user, except: [workspace.inbox])
            #expect(chmod(workspace.inbox, 0o700) == 0)
            let result = try await CLI.runProgram("/usr/sbin/runuser", ["-u", user, "--", CLI.binary, "run", "--db", workspace.dbPath,
                                                                        "--progress", "never", workspace.specPath],
                                                  environment: workspace.environment)
            #expect(result.status == 2, "\(result.stderr)")
            #expect(result.stderr.contains("cannot lock the inbox") && result.stderr.contains("needs read access"), "\(result.stderr)")
        }
    }

    @Test func run_whenTwoSpecsShareAFolder_evenThroughASymlink_isRefusedWithExit2() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", documentText(2))
            try FileManager.default.createDirectory(atPath: workspace.scratch.file("in2"), withIntermediateDirectories: true)
            // Same default archive (the inboxes' common parent + done).
            let shared = try Self.writeSpec(workspace, file: "b.yaml", name: "b", inbox: "../in2", outbox: "../out2", archive: "../done",
                                            baseURL: baseURL)
            let refused = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath, shared],
                                            environment: workspace.environment)
            #expect(refused.status == 2, "\(refused.stderr)")
            #expect(refused.stderr.contains("is the same folder as archive"), "\(refused.stderr)")

            try FileManager.default.createDirectory(atPath: workspace.outbox, withIntermediateDirectories: true)
            #expect(symlink(workspace.outbox + "/", workspace.scratch.file("out-link")) == 0)
            let linked = try Self.writeSpec(workspace, file: "c.yaml", name: "c", inbox: "../in2", outbox: "../out-link/nested",
                                            archive: "../done-c", baseURL: baseURL)
            let overlapping = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath, linked],
                                                environment: workspace.environment)
            #expect(overlapping.status == 2, "\(overlapping.stderr)")
            #expect(overlapping.stderr.contains("overlaps outbox"), "\(overlapping.stderr)")
            #expect(simulator.stats.requestsByEndpoint["POST /v1/workflows/run"] == nil, "nothing was sent")
        }
    }

    @Test func run_whenTheJobNameIsRegisteredWithAnotherInbox_exits2NamingBoth_unlessAdoptInbox() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", documentText(3))
            let first = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath], environment: workspace.environment)
            #expect(first.status == 0, "\(first.stderr)")

            try FileManager.default.createDirectory(atPath: workspace.scratch.file("in2"), withIntermediateDirectories: true)
            try Data(documentText(4).utf8).write(to: URL(fileURLWithPath: workspace.scratch.file("in2/b.txt")))
            let text = try String(contentsOfFile: workspace.specPath, encoding: .utf8)
            try text.replacingOccurrences(of: "inbox: ../in\n", with: "inbox: ../in2\n").write(toFile: workspace.specPath, atomically: true, encoding: .utf8)

            let refused = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath], environment: workspace.environment)
            #expect(refused.status == 2, "\(refused.stderr)")
            #expect(refused.stderr.contains("registered in the ledger with inbox \(workspace.inbox)")
                    && refused.stderr.contains(workspace.scratch.file("in2")) && refused.stderr.contains("--adopt-inbox"), "\(refused.stderr)")
            #expect(simulator.stats.requestsByEndpoint["POST /v1/workflows/run"] == 1)

            let adopted = try await CLI.run(["run", "--db", workspace.dbPath, "--adopt-inbox", "--progress", "never", workspace.specPath],
                                            environment: workspace.environment)
            #expect(adopted.status == 0, "\(adopted.stderr)")
            #expect(workspace.outputs() == ["a.txt.json", "b.txt.json"])
            #expect(simulator.stats.requestsByEndpoint["POST /v1/workflows/run"] == 2)
        }
    }
}
