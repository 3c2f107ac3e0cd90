import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Issue 14: the pipeline writes nothing of its own between the claim and the upload's end (the claim counts the
/// attempt; the upload's attempt row is written with its end). A process killed during an upload leaves the
/// document `uploading` with its attempt counted and no attempt row; the next process requeues it (the attempt
/// given back), uploads it again and sends its run exactly once.
@Suite(.serialized) struct UploadKillEndToEndTests {
    @Test func runKilledDuringAnUpload_leavesItUploadingWithItsAttemptCounted_andTheRestartSendsEachRunOnce() async throws {
        var hangingUploads = FaultPlan()
        hangingUploads.slowHeaders = .seconds(20)
        try await withDifySimulator(SimulatorConfiguration(faults: hangingUploads)) { hanging, hangingURL in
            let workspace = try Workspace(baseURL: hangingURL, concurrency: 2)
            for index in 0..<3 { try workspace.drop("file \(index).txt", documentText(index)) }
            let first = try Child(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment,
                                  stderrPath: workspace.scratch.file("first.log"))
            #expect(try await waitUntil { (hanging.stats.requestsByEndpoint["POST /v1/files/upload"] ?? 0) >= 1 })
            first.signal(SIGKILL)
            #expect(try await first.exitStatus() != 0)
            #expect(hanging.stats.requestsByEndpoint["POST /v1/workflows/run"] == nil, "no run was sent")

            let ledger = try SQLiteLedger(path: workspace.dbPath)
            let cutOff = try await ledger.documents(matching: DocumentFilter(states: [.uploading]))
            let all = try await ledger.documents(matching: DocumentFilter())
            #expect(!cutOff.isEmpty, "\(all.map { ($0.path, $0.state) })")
            for document in cutOff {
                #expect(document.attempts == 1, "the claim counted the attempt")
                #expect(try await ledger.attempts(documentID: document.id).isEmpty, "no transaction of its own before the upload")
            }

            try await withDifySimulator(SimulatorConfiguration()) { simulator, baseURL in
                let spec = try String(contentsOfFile: workspace.specPath, encoding: .utf8)
                try spec.replacingOccurrences(of: hangingURL, with: baseURL).write(toFile: workspace.specPath, atomically: true, encoding: .utf8)
                let second = try Child(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment,
                                       stderrPath: workspace.scratch.file("second.log"))
                #expect(try await second.exitStatus() == 0, "\(second.stderr)")
                let documents = try await ledger.documents(matching: DocumentFilter())
                #expect(documents.count == 3 && documents.allSatisfy { $0.state == .succeeded })
                #expect(documents.allSatisfy { $0.attempts == 1 && $0.runPosts == 1 }, "\(documents.map { ($0.attempts, $0.runPosts) })")
                #expect(simulator.stats.requestsByEndpoint["POST /v1/workflows/run"] == 3)
                #expect(simulator.stats.runsBySHA256.count == 3 && simulator.stats.runsBySHA256.values.allSatisfy { $0 == 1 })
                #expect(workspace.outputs().count == 3)
                for document in documents {
                    let attempts = try await ledger.attempts(documentID: document.id)
                    #expect(attempts.map(\.phase) == [.upload, .run] && attempts.allSatisfy { $0.outcome == "ok" && $0.endedAt != nil })
                }
            }
        }
    }
}
