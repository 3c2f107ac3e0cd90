import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Issue 16: a workflow that fails the same way on every run is paid for twice, not `max_attempts` times.
@Suite struct SameFailureEndToEndTests {
    /// One document against a simulator whose every workflow run ends `failed` with `message` in its LLM node.
    static func runFailingEveryTime(message: String, maxAttempts: Int,
                                    _ body: @Sendable (DifySimulator, Workspace, DocumentRecord, SQLiteLedger) async throws -> Void) async throws {
        var faults = FaultPlan()
        faults.failedWorkflowRate = 1
        faults.failedWorkflowMessage = message
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, retry: "{max_attempts: \(maxAttempts), base_delay: 10ms, max_delay: 10ms}")
            try workspace.drop("broken.txt", "cannot be read")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed)
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state == .dead)
            try await body(simulator, workspace, document, ledger)
        }
    }

    @Test func run_whenTheWorkflowFailsTheSameWayEachTime_sendsTwoRunsAndEndsDead() async throws {
        try await Self.runFailingEveryTime(message: "Failed to extract text from DOCX: file is not a zip file", maxAttempts: 5) { simulator, workspace, document, ledger in
            #expect(simulator.stats.runRequestsReceived == 2, "the same failure is not paid for a third time")
            #expect(document.lastError?.code == "failed_same_way_twice")
            #expect(document.lastError?.message.hasPrefix("failed the same way twice (node \"LLM\": Failed to extract text from DOCX") == true,
                    "\(document.lastError?.message ?? "")")
            let attempts = try await ledger.attempts(documentID: document.id).filter { $0.phase == .run }
            #expect(attempts.map(\.failedNode) == ["LLM", "LLM"])
            #expect(workspace.errorOutputs().count == 1)
        }
    }

    @Test func run_whenTheNodeErrorNamesARateLimit_retriesUpToMaxAttempts() async throws {
        try await Self.runFailingEveryTime(message: "[openai] Error code: 429 - rate limit reached for gpt-4o", maxAttempts: 4) { simulator, _, document, _ in
            #expect(simulator.stats.runRequestsReceived == 4)
            #expect(document.lastError?.code == "run_failed")
        }
    }
}
