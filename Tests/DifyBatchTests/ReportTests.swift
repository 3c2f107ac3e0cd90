import Foundation
import Testing
@testable import DifyBatch

@Suite struct ReportTests {
    /// A ledger with one job: a succeeded, a dead and a pending document, and a finished run.
    func preparedLedger() async throws -> (TemporaryDirectory, SQLiteLedger) {
        let dir = try TemporaryDirectory()
        let clock = TestClock(Date(timeIntervalSince1970: 1_795_000_000))
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"), now: clock.closure)
        let job = try await makeJob(ledger)
        try await ledger.setAppMode(jobID: job.id, mode: "workflow")
        let run = try await ledger.beginRun(command: "run", pid: 7, host: "box", jobIDs: [job.id])
        let ok = try await ledger.insert(NewDocument(jobID: job.id, path: "a/ok.pdf", sha256: "aa", size: 10, mtimeNanoseconds: 1))
        try await ledger.transition(ok.id, from: .pending, to: .uploading, [.incrementAttempts])
        try await ledger.transition(ok.id, from: .uploading, to: .uploaded, [.uploadFileID("up-1")])
        try await ledger.transition(ok.id, from: .uploaded, to: .running, [.workflowRunID("run-1"), .taskID("task-1")])
        try await ledger.recordUsage(documentID: ok.id, jobID: job.id, runID: run, difyRunID: nil,
                                     UsageAmounts(promptTokens: 7, completionTokens: 3, totalTokens: 10, totalPrice: Decimal(string: "0.0012890"), currency: "USD"))
        try await ledger.transition(ok.id, from: .running, to: .succeeded, [.outputPath("/out/a/ok.pdf.json")])
        try await ledger.countInRun(runID: run, jobID: job.id, state: .succeeded)
        let bad = try await ledger.insert(NewDocument(jobID: job.id, path: "b.pdf", sha256: "bb", size: 20, mtimeNanoseconds: 1))
        try await ledger.transition(bad.id, from: .pending, to: .uploading, [.incrementAttempts])
        let attempt = try await ledger.beginAttempt(documentID: bad.id, runID: run, phase: .upload)
        try await ledger.finishAttempt(attempt, AttemptResult(outcome: "permanent", httpStatus: 413, difyCode: "file_too_large", message: "File size exceeded."))
        try await ledger.transition(bad.id, from: .uploading, to: .dead,
                                    [.lastError(RecordedError(errorClass: "permanent", code: "file_too_large", message: "File size exceeded.", httpStatus: 413))])
        try await ledger.countInRun(runID: run, jobID: job.id, state: .dead)
        try await ledger.finishRun(run, exitCode: 1)
        _ = try await ledger.insert(NewDocument(jobID: job.id, path: "c.txt", sha256: "cc", size: 5, mtimeNanoseconds: 1))
        return (dir, ledger)
    }

    func object(_ text: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func statusJSON_hasCountsForEveryStateUsageWithDifyNamesAndLastRun() async throws {
        let (dir, ledger) = try await preparedLedger()
        defer { withExtendedLifetime(dir) {} }
        let json = try ReportFormatting.json(try await StatusReport.build(from: ledger, database: ledger.path))
        let root = try object(json)
        let jobs = try #require(root["jobs"] as? [[String: Any]])
        let job = try #require(jobs.first)
        #expect(job["name"] as? String == "invoices")
        #expect(job["app_mode"] as? String == "workflow")
        let counts = try #require(job["counts"] as? [String: Int])
        #expect(Set(counts.keys) == Set(DocumentState.allCases.map(\.rawValue)))
        #expect(counts["succeeded"] == 1 && counts["dead"] == 1 && counts["pending"] == 1 && counts["failed"] == 0)
        let usage = try #require(job["usage"] as? [String: Any])
        #expect(usage["prompt_tokens"] as? Int == 7 && usage["completion_tokens"] as? Int == 3 && usage["total_tokens"] as? Int == 10)
        #expect(usage["total_price"] as? String == "0.001289")
        #expect(usage["currency"] as? String == "USD")
        let last = try #require(job["last_run"] as? [String: Any])
        #expect(last["exit_code"] as? Int == 1 && last["succeeded"] as? Int == 1 && last["dead"] as? Int == 1 && last["pid"] as? Int == 7)
        #expect(last["started_at"] as? String == "2026-11-18T11:06:40Z")
    }

    @Test func statusText_showsOneRowPerJob() async throws {
        let (dir, ledger) = try await preparedLedger()
        defer { withExtendedLifetime(dir) {} }
        let text = try await StatusReport.build(from: ledger, database: ledger.path).renderText()
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].hasPrefix("JOB"))
        #expect(lines[1].contains("invoices") && lines[1].contains("0.001289 USD") && lines[1].contains("exit 1"))
    }

    @Test func emptyLedger_saysSoInTextAndJSON() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let report = try await StatusReport.build(from: ledger, database: ledger.path)
        #expect(report.renderText().contains("No jobs"))
        #expect(try object(try ReportFormatting.json(report))["jobs"] as? [Any] != nil)
    }

    @Test func list_filtersByStateJobAndPathPattern() async throws {
        let (dir, ledger) = try await preparedLedger()
        defer { withExtendedLifetime(dir) {} }
        let dead = try await DocumentListReport.build(from: ledger, filter: DocumentFilter(states: [.dead]))
        #expect(dead.documents.map(\.document.path) == ["b.pdf"])
        let pdfs = try await DocumentListReport.build(from: ledger, filter: DocumentFilter(pathPattern: "*.pdf"))
        #expect(Set(pdfs.documents.map(\.document.path)) == ["a/ok.pdf", "b.pdf"])
        let none = try await DocumentListReport.build(from: ledger, filter: DocumentFilter(jobName: "other"))
        #expect(none.documents.isEmpty && none.renderText().contains("No documents"))
        let json = try ReportFormatting.json(dead)
        let array = try #require(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        #expect(array.first?["state"] as? String == "dead")
        let error = try #require(array.first?["error"] as? [String: Any])
        #expect(error["code"] as? String == "file_too_large" && error["http_status"] as? Int == 413)
        #expect(dead.renderText().contains("file_too_large: File size exceeded."))
    }

    @Test func show_printsAttemptsAndDifyIDs_byIdOrPath() async throws {
        let (dir, ledger) = try await preparedLedger()
        defer { withExtendedLifetime(dir) {} }
        let byPath = try await DocumentDetailReport.build(from: ledger, reference: "b.pdf")
        #expect(byPath.count == 1)
        #expect(byPath[0].attempts.map(\.outcome) == ["permanent"])
        let text = byPath[0].renderText()
        #expect(text.contains("upload") && text.contains("413") && text.contains("file_too_large"))
        let byID = try await DocumentDetailReport.build(from: ledger, reference: "1")
        let json = try object(try ReportFormatting.json(byID[0]))
        let document = try #require(json["document"] as? [String: Any])
        let dify = try #require(document["dify"] as? [String: Any])
        #expect(dify["workflow_run_id"] as? String == "run-1" && dify["upload_file_id"] as? String == "up-1")
        let usage = try #require(json["usage"] as? [String: Any])
        #expect(usage["total_price"] as? String == "0.001289")
        #expect(try await DocumentDetailReport.build(from: ledger, reference: "missing.pdf").isEmpty)
    }

    @Test func usageReport_groupsAndTotals_inJSONAndCSV() async throws {
        let (dir, ledger) = try await preparedLedger()
        defer { withExtendedLifetime(dir) {} }
        let report = try await UsageReport.build(from: ledger, filter: UsageFilter(), by: .job)
        let json = try object(try ReportFormatting.json(report))
        let groups = try #require(json["groups"] as? [[String: Any]])
        #expect(groups.first?["group"] as? String == "invoices" && groups.first?["total_tokens"] as? Int == 10)
        let total = try #require(json["total"] as? [String: Any])
        #expect(total["total_price"] as? String == "0.001289" && total["currency"] as? String == "USD")
        let csv = report.renderCSV().split(separator: "\n")
        #expect(csv.first == "group,documents,runs,prompt_tokens,completion_tokens,total_tokens,total_price,currency,runs_without_split,runs_without_price")
        #expect(csv.contains("invoices,1,1,7,3,10,0.001289,USD,0,0"))
        #expect(csv.last == "TOTAL,1,1,7,3,10,0.001289,USD,0,0")
    }

    @Test func usageReport_whenNoRunReportedTokens_saysNullEmptyAndDash_notZero() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await makeJob(ledger)
        let document = try await ledger.insert(NewDocument(jobID: job.id, path: "p.pdf", sha256: "pp", size: 1, mtimeNanoseconds: 1))
        // A run that reported a price only (no token counts).
        try await ledger.recordUsage(documentID: document.id, jobID: job.id, runID: nil, difyRunID: "r1",
                                     UsageAmounts(totalPrice: Decimal(string: "0.5"), currency: "USD"))
        let report = try await UsageReport.build(from: ledger, filter: UsageFilter(), by: .job)
        let total = try #require(try object(try ReportFormatting.json(report))["total"] as? [String: Any])
        #expect(total["total_tokens"] is NSNull && total["prompt_tokens"] is NSNull && total["completion_tokens"] is NSNull, "\(total)")
        #expect(report.renderCSV().split(separator: "\n").last == "TOTAL,1,1,,,,0.5,USD,1,0")
        let table = report.renderText()
        #expect(table.contains("TOTAL") && !table.contains(" 0 "), "\(table)")
    }

    @Test func dateArguments_acceptDaysTimestampsAndAges() {
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        #expect(DateArgument.parse("2026-11-19") == Date(timeIntervalSince1970: 1_795_046_400))
        #expect(DateArgument.parse("2026-11-18T11:06:40Z") == now)
        #expect(DateArgument.parse("24h", now: now) == now.addingTimeInterval(-86_400))
        #expect(DateArgument.parse("yesterday") == nil)
    }
}
