import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Issue 16: every wait ends soon after SIGTERM/SIGINT, and a second signal cancels the drain. Real binary; the
/// bounds are generous (the waits they cut short are an hour or a minute long).
@Suite(.serialized) struct SignalEndToEndTests {
    @Test func run_onSIGTERMDuringALongBackoff_exitsPromptly_andKeepsTheDocumentFailed() async throws {
        var faults = FaultPlan()
        faults.serverErrorRate = 1
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 1, retry: "{max_attempts: 5, base_delay: 1h, max_delay: 1h}")
            try workspace.drop("a.txt", "some text")
            let child = try Child(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                  environment: workspace.environment, stderrPath: workspace.scratch.file("run.log"))
            #expect(try await waitUntil { child.stderr.contains("retrying in") }, "\(child.stderr)")
            child.signal(SIGTERM)
            let status = try await child.exitStatus(timeout: .seconds(30))
            #expect(status == 0, "\(child.stderr)")
            let document = try #require(try await SQLiteLedger(path: workspace.dbPath).documents(matching: DocumentFilter()).first)
            #expect(document.state == .failed, "kept for the next run with its retry time")
            #expect(document.nextAttemptAt != nil)
        }
    }

    @Test func run_onSIGTERMWhileWaitingForItsRateLimitSlot_exitsPromptly_andSendsNothing() async throws {
        try await withDifySimulator { simulator, baseURL in
            // One request a minute: the upload goes at once, the run request waits a minute in its worker.
            let workspace = try Workspace(baseURL: baseURL, extra: "rate_limit: 1", concurrency: 1)
            try workspace.drop("a.txt", "some text")
            let child = try Child(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                  environment: workspace.environment, stderrPath: workspace.scratch.file("run.log"))
            #expect(try await waitUntil { simulator.stats.uploads == 1 })
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            #expect(try await waitUntilAsync { (try? await ledger.documents(matching: DocumentFilter(states: [.uploaded])).count) == 1 })
            child.signal(SIGTERM)
            let status = try await child.exitStatus(timeout: .seconds(30))
            #expect(status == 0, "\(child.stderr)")
            #expect(simulator.stats.runRequestsReceived == 0)
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state == .pending && document.attempts == 0, "\(document.state) \(document.attempts)")
        }
    }

    @Test func run_secondSIGTERMDuringTheDrain_exitsPromptly_andTheNextRunRecoversTheRunWithoutSendingItAgain() async throws {
        var faults = FaultPlan()
        faults.latency = .seconds(4)
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 1)
            try workspace.drop("slow.txt", "a slow document")
            let child = try Child(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                  environment: workspace.environment, stderrPath: workspace.scratch.file("run.log"))
            #expect(try await waitUntil { simulator.stats.activeRuns > 0 })
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            #expect(try await waitUntilAsync {
                (try? await ledger.documents(matching: DocumentFilter(states: [.running])).first?.workflowRunID) != nil
            })
            child.signal(SIGTERM)
            #expect(try await waitUntil { child.stderr.contains("shutting down") }, "\(child.stderr)")
            child.signal(SIGTERM)
            let status = try await child.exitStatus(timeout: .seconds(30))
            #expect(status == 0, "\(child.stderr)")
            #expect(child.stderr.contains("the drain is cancelled"), "\(child.stderr)")
            let left = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(left.state == .running || left.state == .recovering, "\(left.state)")

            let next = try await CLI.run(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment)
            #expect(next.status == 0, "\(next.stderr)")
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state == .succeeded)
            #expect(simulator.stats.runRequestsReceived == 1, "recovered, not sent again")
            #expect(workspace.outputs().count == 1)
        }
    }
}

