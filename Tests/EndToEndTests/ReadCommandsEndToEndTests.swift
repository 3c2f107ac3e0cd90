import DifyBatch
import Foundation
import Testing

@Suite struct ReadCommandsEndToEndTests {
    @Test func status_onMissingLedger_explainsOnStderrAndExitsZero() async throws {
        let scratch = try Scratch()
        let db = scratch.file("none/ledger.sqlite")
        let result = try await CLI.run(["status", "--db", db])
        #expect(result.status == 0)
        #expect(result.stdout.isEmpty, "stdout is for data only")
        #expect(result.stderr.contains("no ledger at \(db)"))
        #expect(!FileManager.default.fileExists(atPath: db), "reading commands never create a ledger")
        let json = try await CLI.run(["status", "--db", db, "--json"])
        let object = try #require(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect((object["jobs"] as? [Any])?.isEmpty == true)
    }

    @Test func defaultLedgerPath_followsDIFY_BATCH_DBThenXDG_STATE_HOME() async throws {
        let scratch = try Scratch()
        let explicit = try await CLI.run(["status"], environment: ["DIFY_BATCH_DB": scratch.file("x.sqlite")])
        #expect(explicit.stderr.contains(scratch.file("x.sqlite")))
        let xdg = try await CLI.run(["status"], environment: ["XDG_STATE_HOME": scratch.path])
        #expect(xdg.stderr.contains(scratch.file("dify-batch/dify-batch.sqlite")))
    }

    @Test func list_show_usage_readALedgerWrittenByAnotherProcess() async throws {
        let scratch = try Scratch()
        let db = scratch.file("ledger.sqlite")
        let ledger = try SQLiteLedger(path: db)
        let job = try await ledger.register(JobRegistration(name: "letters", specPath: "/s.yaml", specHash: "h", baseURL: "http://127.0.0.1:9/v1",
                                                            difyUser: "u", inbox: "/in", outbox: "/out"))
        let doc = try await ledger.insert(NewDocument(jobID: job.id, path: "ä/brief 1.txt", sha256: "ab", size: 3, mtimeNanoseconds: 1))
        try await ledger.transition(doc.id, from: .pending, to: .uploading, [])
        try await ledger.transition(doc.id, from: .uploading, to: .uploaded, [.uploadFileID("up")])
        try await ledger.transition(doc.id, from: .uploaded, to: .running, [.workflowRunID("wr")])
        try await ledger.recordUsage(documentID: doc.id, jobID: job.id, runID: nil, difyRunID: nil,
                                     UsageAmounts(promptTokens: 2, completionTokens: 1, totalTokens: 3, totalPrice: Decimal(string: "0.25"), currency: "EUR"))
        try await ledger.transition(doc.id, from: .running, to: .succeeded, [])

        let list = try await CLI.run(["list", "--db", db, "--state", "succeeded", "--json"])
        #expect(list.status == 0)
        let rows = try #require(JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(rows.map { $0["path"] as? String } == ["ä/brief 1.txt"])

        let badState = try await CLI.run(["list", "--db", db, "--state", "done"])
        #expect(badState.status == 2)
        #expect(badState.stderr.contains("unknown state 'done'"))

        let show = try await CLI.run(["show", "--db", db, "ä/brief 1.txt"])
        #expect(show.status == 0 && show.stdout.contains("workflow_run_id  wr"))
        let missing = try await CLI.run(["show", "--db", db, "nope.txt"])
        #expect(missing.status == 1 && missing.stderr.contains("no document"))

        let usage = try await CLI.run(["usage", "--db", db, "--by", "job", "--json"])
        let report = try #require(JSONSerialization.jsonObject(with: Data(usage.stdout.utf8)) as? [String: Any])
        let total = try #require(report["total"] as? [String: Any])
        #expect(total["total_price"] as? String == "0.25" && total["currency"] as? String == "EUR" && total["total_tokens"] as? Int == 3)

        let status = try await CLI.run(["status", "--db", db])
        #expect(status.stdout.contains("letters") && status.stdout.contains("0.25 EUR"))
    }

    @Test func statusWatch_printsOneJSONDocumentPerInterval_withoutEscapeCodesIntoAPipe() async throws {
        let scratch = try Scratch()
        let db = scratch.file("ledger.sqlite")
        let ledger = try SQLiteLedger(path: db)
        _ = try await ledger.register(JobRegistration(name: "live", specPath: "/s.yaml", specHash: "h", baseURL: "http://127.0.0.1:9/v1",
                                                      difyUser: "u", inbox: "/in", outbox: "/out"))
        // 10 s of a 100 ms interval: a starved start still leaves time for three documents (there would be ~100).
        let result = try await CLI.runProgram("/usr/bin/timeout", ["10", CLI.binary, "status", "--db", db, "--watch", "--json", "--interval", "100ms"])
        #expect(result.status == 124, "stopped by timeout, not by an error: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count >= 3)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect((object?["jobs"] as? [[String: Any]])?.first?["name"] as? String == "live")
        }
        #expect(!result.stdout.contains("\u{1B}"))
    }
}
