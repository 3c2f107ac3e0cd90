import DifyBatch
import DifySimulator
import Foundation
import Testing

@Suite(.serialized) struct PipelineEndToEndTests {
    static let extensions = ["txt", "md", "csv", "pdf", "docx"]

    /// Names with nested folders, spaces and non-ASCII characters.
    static func name(_ index: Int) -> String {
        let folders = ["", "a/", "a/b c/", "Übersicht/", "日本/深い/"]
        return "\(folders[index % folders.count])doc \(index) é.\(extensions[index % extensions.count])"
    }

    @Test func run_200MixedFiles_allSucceedWithTheSimulatorsExactOutputs() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 8)
            var paths: [String: String] = [:]
            for index in 0..<200 { paths[Self.name(index)] = try workspace.drop(Self.name(index), documentText(index)) }
            let expected = try paths.mapValues { try SimulatedOutput.workflowOutputs(filePath: $0, inputs: ["language": "de"]) }

            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .success)
            #expect(result.summaries.first?.counts[.succeeded] == 200)
            let outputs = workspace.outputs()
            #expect(outputs.count == 200)
            for (name, outputs) in expected {
                let file = try workspace.json(name + ".json")
                #expect(file["status"] as? String == "succeeded")
                let written = try #require(file["outputs"] as? [String: Any])
                #expect(written["sha256"] as? String == outputs["sha256"]?.stringValue, "\(name)")
                #expect(written["text"] as? String == outputs["text"]?.stringValue, "\(name)")
                #expect(written["words"] as? Int == outputs["words"]?.intValue && written["language"] as? String == "de")
                let source = try #require(file["source"] as? [String: Any])
                #expect(source["path"] as? String == name)
            }
            // Every source moved to the archive, keeping its relative path; nothing left in the inbox.
            #expect(workspace.files(in: workspace.inbox).isEmpty)
            #expect(workspace.files(in: workspace.archive).count == 200)
            // Money: the ledger's totals equal what the simulator served, and nothing ran twice.
            let stats = simulator.stats
            let total = try await ledger.usageTotals(matching: UsageFilter(), by: .none)
            #expect(total.first?.totalTokens == stats.tokensServed)
            #expect(total.first?.totalPrice == stats.priceServed)
            #expect(stats.runsBySHA256.values.allSatisfy { $0 == 1 })
            #expect(stats.uploads == 200)
        }
    }

    @Test func run_withEveryFault_endsEachFileSucceededDeadOrUnresolved_withNothingLostOrDuplicated() async throws {
        var faults = FaultPlan()
        faults.seed = 7
        faults.serverErrorRate = 0.1
        faults.tooManyRequestsRate = 0.1
        faults.maxActive = 3
        faults.badGatewayRate = 0.05
        faults.dropAfterStartRate = 0.15
        faults.inStreamErrorRate = 0.05
        faults.failedWorkflowRate = 0.05
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 6, retry: "{max_attempts: 8, base_delay: 5ms, max_delay: 50ms}",
                                          recoverDeadline: "1s")
            for index in 0..<60 { try workspace.drop(Self.name(index), documentText(index)) }
            let (result, ledger) = try await workspace.run()
            #expect([ExitStatus.success, .documentsFailed].contains(result.exitStatus))
            let documents = try await ledger.documents(matching: DocumentFilter())
            #expect(documents.count == 60)
            // A 5xx answering a run POST may have started a run: it is looked up, and parked `unresolved` (never
            // re-sent) when it cannot be found within recover_deadline.
            #expect(documents.allSatisfy { [.succeeded, .dead, .unresolved].contains($0.state) }, "\(documents.map { ($0.path, $0.state) })")
            for document in documents {
                #expect((simulator.stats.runsBySHA256[document.sha256 ?? ""] ?? 0) <= document.runPosts, "\(document.path)")
                #expect(document.runPosts <= 8)
            }
            // Exactly one visible outcome per file.
            let outputs = Set(workspace.outputs().map { String($0.dropLast(".json".count)) })
            let errors = Set(workspace.errorOutputs().map { String($0.dropLast(".error.json".count)) })
            #expect(outputs.count + errors.count == 60)
            #expect(outputs.isDisjoint(with: errors))
            // Runs whose stream was dropped after workflow_started were recovered, not run again.
            var recovered = 0
            for document in documents where document.state == .succeeded {
                let attempts = try await ledger.attempts(documentID: document.id)
                let runAttempts = attempts.filter { $0.phase == .run }.count
                // Dify never ran a document more often than we sent it.
                #expect((simulator.stats.runsBySHA256[document.sha256 ?? ""] ?? 0) <= runAttempts, "\(document.path)")
                if let recoveredAt = attempts.lastIndex(where: { $0.phase == .recover && $0.outcome == "ok" }) {
                    recovered += 1
                    // The recovered run ended the document: no run was sent after it.
                    #expect(attempts.lastIndex(where: { $0.phase == .run })! < recoveredAt, "\(document.path)")
                }
                #expect(document.duplicateRuns == 0)
            }
            #expect(recovered > 0, "the fault plan drops some streams after start")
            #expect(simulator.stats.peakConcurrentRuns <= 3)
            let total = try await ledger.usageTotals(matching: UsageFilter(), by: .none)
            #expect(total.first?.totalTokens == simulator.stats.tokensServed)
        }
    }

    @Test func badFiles_areRejectedWithTheirReason_andNeverUploaded() async throws {
        try await withDifySimulator(SimulatorConfiguration(limits: UploadLimits(fileMB: 1))) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("good.txt", "fine")
            try workspace.drop("empty.txt", "")
            try workspace.drop("photo.png", "not really a png")
            try workspace.drop("big.txt", String(repeating: "x", count: 1_100_000))
            try workspace.drop(".hidden.txt", "ignored")
            try workspace.drop("partial.pdf.part", "ignored")
            try FileManager.default.createSymbolicLink(atPath: workspace.inbox + "/link.txt", withDestinationPath: workspace.inbox + "/good.txt")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed)
            #expect(simulator.stats.uploads == 1)
            let rejected = try await ledger.documents(matching: DocumentFilter(states: [.rejected]))
            #expect(Set(rejected.map(\.path)) == ["empty.txt", "photo.png", "big.txt", "link.txt"])
            let codes = Dictionary(uniqueKeysWithValues: rejected.map { ($0.path, $0.lastError?.code ?? "") })
            #expect(codes == ["empty.txt": "empty_file", "photo.png": "file_type_not_allowed", "big.txt": "file_too_large", "link.txt": "symlink"])
            let error = try workspace.json("big.txt.error.json")
            #expect(error["status"] as? String == "rejected")
            #expect((error["error"] as? [String: Any])?["code"] as? String == "file_too_large")
            // A failure never deletes input; ignored files are not touched.
            for name in ["empty.txt", "photo.png", "big.txt", ".hidden.txt", "partial.pdf.part"] {
                #expect(FileManager.default.fileExists(atPath: workspace.inbox + "/" + name), "\(name)")
            }
            #expect(try await ledger.documents(matching: DocumentFilter()).count == 5)
        }
    }

    @Test func wrongAPIKey_stopsTheJobWithExit3_beforeTouchingAnyFile() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, key: "app-wrong")
            try workspace.drop("a.txt", "hello")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .configuration)
            #expect(result.summaries.first?.stop?.message.contains("app-wrong") == false, "the key never appears in messages")
            #expect(simulator.stats.uploads == 0)
            #expect(try await ledger.documents(matching: DocumentFilter(states: [.succeeded, .dead, .rejected])).isEmpty)
            #expect(FileManager.default.fileExists(atPath: workspace.inbox + "/a.txt"))
        }
    }

    @Test func sameContentUnderAnotherPath_isSkipped_withOutputFromTheStoredResult() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, extra: "after_success: keep")
            try workspace.drop("first.txt", "same bytes")
            _ = try await workspace.run()
            try workspace.drop("copy/second.txt", "same bytes")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .success)
            #expect(simulator.stats.runsBySHA256.values.reduce(0, +) == 1)
            let second = try workspace.json("copy/second.txt.json")
            #expect(second["duplicate_of"] as? String == "first.txt")
            #expect((second["outputs"] as? [String: Any])?["sha256"] as? String != nil)
            #expect(try await ledger.documents(matching: DocumentFilter(states: [.skipped])).map(\.path) == ["copy/second.txt"])
        }
    }

    @Test func completionApp_writesTheAnswerAndItsParsedJSON() async throws {
        let config = SimulatorConfiguration(apps: [.completion(apiKey: "app-completion")])
        try await withDifySimulator(config) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, key: "app-completion")
            try workspace.drop("note.md", "# Title\nbody text\n")
            let (result, _) = try await workspace.run()
            #expect(result.exitStatus == .success)
            let file = try workspace.json("note.md.json")
            #expect((file["app"] as? [String: Any])?["mode"] as? String == "completion")
            let outputs = try #require(file["outputs"] as? [String: Any])
            #expect(outputs["answer"] is String)
            #expect((outputs["answer_json"] as? [String: Any])?["filename"] as? String == "note.md")
            let usage = try #require(file["usage"] as? [String: Any])
            #expect(usage["total_price"] is String && usage["currency"] as? String == "USD")
            #expect((file["dify"] as? [String: Any])?["message_id"] is String)
        }
    }

    @Test func difyUnreachable_exits4_andKeepsTheWorkForTheNextRun() async throws {
        let workspace = try Workspace(baseURL: "http://127.0.0.1:1/v1")
        try workspace.drop("a.txt", "hello")
        let (result, ledger) = try await workspace.run()
        #expect(result.exitStatus == .unavailable)
        #expect(result.summaries.first?.stop?.message.contains("unreachable") == true)
        #expect(try await ledger.documents(matching: DocumentFilter(states: [.dead, .rejected])).isEmpty)
        #expect(FileManager.default.fileExists(atPath: workspace.inbox + "/a.txt"))
    }

    @Test func maxDuration_stopsTakingNewWork_andLeavesTheRestPending() async throws {
        var faults = FaultPlan()
        faults.latency = .milliseconds(200)
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 1)
            for index in 0..<10 { try workspace.drop("m\(index).txt", documentText(index)) }
            let (result, ledger) = try await workspace.run { $0.maxDuration = .milliseconds(300) }
            #expect(result.exitStatus == .success)
            let pending = try await ledger.documents(matching: DocumentFilter(states: [.pending]))
            let succeeded = try await ledger.documents(matching: DocumentFilter(states: [.succeeded]))
            #expect(succeeded.count >= 1 && succeeded.count < 10)
            #expect(pending.count + succeeded.count == 10)
        }
    }

    @Test func requeuedRejectedDocument_isCheckedAgain_andNeverUploaded() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("photo.png", "not a document")
            let (first, ledger) = try await workspace.run()
            #expect(first.exitStatus == .documentsFailed)
            let rejected = try await ledger.documents(matching: DocumentFilter(states: [.rejected]))
            #expect(try await ledger.requeue(ids: rejected.map(\.id), from: [.rejected]) == 1)
            let (second, _) = try await workspace.run()
            #expect(second.exitStatus == .documentsFailed)
            #expect(simulator.stats.uploads == 0)
            let again = try await ledger.document(id: rejected[0].id)
            #expect(again?.state == .rejected && again?.lastError?.code == "file_type_not_allowed")
        }
    }
}
