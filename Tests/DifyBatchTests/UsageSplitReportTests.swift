import Foundation
import Testing

@testable import DifyBatch

/// `usage --by …` keeps unknown (null) apart from zero when some runs have tokens only.
@Suite struct UsageSplitReportTests {
    @Test func usageReport_blockingRunsHaveNoSplit_nullNotZero_andAreCounted() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await makeJob(ledger)
        let a = try await ledger.insert(NewDocument(jobID: job.id, path: "a.txt", sha256: "aa", size: 1, mtimeNanoseconds: 1))
        let b = try await ledger.insert(NewDocument(jobID: job.id, path: "b.txt", sha256: "bb", size: 1, mtimeNanoseconds: 1))
        try await ledger.recordUsage(documentID: a.id, jobID: job.id, runID: nil, difyRunID: "r1",
                                     UsageAmounts(totalTokens: 78, source: "blocking"))
        var report = try await UsageReport.build(from: ledger, filter: UsageFilter(), by: .job)
        var json = try #require(JSONSerialization.jsonObject(with: Data(try ReportFormatting.json(report).utf8)) as? [String: Any])
        var total = try #require(json["total"] as? [String: Any])
        #expect(total["prompt_tokens"] is NSNull && total["completion_tokens"] is NSNull && total["total_price"] is NSNull)
        #expect(total["total_tokens"] as? Int == 78 && total["runs_without_split"] as? Int == 1 && total["runs_without_price"] as? Int == 1)
        #expect(report.renderCSV().contains("TOTAL,1,1,,,78,,,1,1"))
        #expect(report.renderText().contains("split and price are unknown"))

        try await ledger.recordUsage(documentID: b.id, jobID: job.id, runID: nil, difyRunID: "r2",
                                     UsageAmounts(promptTokens: 28, completionTokens: 50, totalTokens: 78,
                                                  totalPrice: Decimal(string: "0.0001280"), currency: "USD", source: "stream"))
        report = try await UsageReport.build(from: ledger, filter: UsageFilter(), by: .job)
        json = try #require(JSONSerialization.jsonObject(with: Data(try ReportFormatting.json(report).utf8)) as? [String: Any])
        total = try #require(json["total"] as? [String: Any])
        #expect(total["prompt_tokens"] as? Int == 28 && total["completion_tokens"] as? Int == 50 && total["total_tokens"] as? Int == 156)
        #expect(total["total_price"] as? String == "0.000128" && total["runs_without_split"] as? Int == 1)
        #expect(try await ledger.usage(documentID: b.id)?.source == "stream")
    }
}
