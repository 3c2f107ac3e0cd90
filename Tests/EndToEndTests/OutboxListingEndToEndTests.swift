import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Issue 14: a scan of many new files answers its outbox look-ups from one listing per folder. The real binary
/// against the simulator; runs counted at the server: results already in the outbox are kept and never paid again,
/// an obstacle in the outbox is refused before anything is sent, new content runs once.
@Suite struct OutboxListingEndToEndTests {
    static let runs = "POST /v1/workflows/run"

    @Test func run_ofManyFilesWithAFreshLedger_keepsEveryResultInTheOutbox_refusesWhatIsInTheWay_andRunsOnlyNewContent() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, extra: "after_success: keep")
            for index in 1...8 { try workspace.drop("d/f\(index).txt", documentText(index)) }
            let first = try await CLI.run(["run", "--db", workspace.scratch.file("a/ledger.sqlite"), "--progress", "never", workspace.specPath],
                                          environment: workspace.environment)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == 8)
            // The ledger is lost (no owner markers either): the outbox is the evidence of what was paid.
            for folder in [workspace.inbox, workspace.outbox] {
                try FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent(InboxOwnership.fileName))
            }
            try workspace.drop("d/f8.txt", documentText(88))                                  // new content at a known path
            for index in 9...12 { try workspace.drop("d/f\(index).txt", documentText(index)) }  // new files
            try FileManager.default.createDirectory(atPath: workspace.outbox + "/d/f12.txt.json", withIntermediateDirectories: true)

            let fresh = workspace.scratch.file("b/ledger.sqlite")
            let second = try await CLI.run(["run", "--db", fresh, "--progress", "never", workspace.specPath], environment: workspace.environment)
            #expect(second.status == 1, "the blocked file ends rejected: \(second.stderr)")
            #expect(simulator.stats.requestsByEndpoint[Self.runs] == 12, "8 before + f8's new content + f9, f10, f11")
            let states = try await SQLiteLedger(path: fresh).documents(matching: DocumentFilter())
                .map { "\($0.path):\($0.state.rawValue)" }.sorted()
            let expected = (1...7).map { "d/f\($0).txt:skipped" } + ["d/f8.txt:succeeded", "d/f9.txt:succeeded", "d/f10.txt:succeeded",
                                                                        "d/f11.txt:succeeded", "d/f12.txt:rejected"]
            #expect(states == expected.sorted(), "\(states)")
            #expect(workspace.errorOutputs() == ["d/f12.txt.error.json"])
        }
    }
}
