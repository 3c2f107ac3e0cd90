import DifyKit
import DifySimulator
import Foundation
import Testing
@testable import DifyBatch

/// The logs search of a run whose id never arrived (issue 10 rule 2) against the simulator.
@Suite struct RunLocatorTests {
    /// Found by the attack helper (Scripts/attack/kill-run.sh with --run-detail-not-found-first): one listed run whose detail
    /// could not be read ended every search, so a document whose own run was listed and readable stayed unfound until
    /// `recover_deadline` and was parked `unresolved` although its run (and usage) could be established.
    @Test func search_whenAnotherListedRunsDetailCannotBeRead_stillFindsOurRun_andOtherwiseCouldNotCheck() async throws {
        var faults = FaultPlan()
        faults.runDetailNotFoundFirst = 2   // per run id: its first two details answer 404
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { _, baseURL in
            let http = DifyClient.makeHTTPClient()
            let client = DifyClient(configuration: .init(baseURL: baseURL, apiKey: SimulatedApp.defaultAPIKey), httpClient: http)
            do {
                let dir = try TemporaryDirectory()
                func runOnce(_ name: String, _ text: String) async throws -> (upload: String, run: String) {
                    let uploaded = try await client.upload(fileAt: try dir.write(name, text), user: "locator")
                    let result = try await client.run(RunRequest(mode: .workflow, inputs: ["document": FileReference.localFile(uploadFileID: uploaded.id, kind: .document)],
                                                                 user: "locator", responseMode: .blocking))
                    return (uploaded.id, try #require(result.workflowRunID))
                }
                let ours = try await runOnce("ours.txt", "our document")
                let theirs = try await runOnce("theirs.txt", "another document")   // newer: listed first
                for _ in 0..<2 { _ = try? await client.workflowRunDetail(id: ours.run) }   // our run's detail now answers
                let locator = RunLocator(client: client, user: "locator", fileVariable: "document")
                #expect(try await locator.search(uploadFileID: ours.upload, sentAt: Date(), offsetMilliseconds: nil) == .found(ours.run))
                // Not ours and one listed run unreadable: "could not check", never "not listed".
                let other = RunLocator(client: client, user: "locator", fileVariable: "document")
                let fresh = try await runOnce("third.txt", "a third document")   // its first two details answer 404
                let verdict = try await other.search(uploadFileID: "no-such-upload", sentAt: Date(), offsetMilliseconds: nil)
                #expect(verdict == .couldNotCheck("cannot read run \(fresh.run) listed in the logs: Workflow run not found."), "\(verdict) \(theirs)")
            } catch {
                try await http.shutdown()
                throw error
            }
            try await http.shutdown()
        }
    }
}
