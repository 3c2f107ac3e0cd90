import Foundation
import Testing
@testable import DifyBatch

@Suite struct LedgerTests {
    @Test func claim_takesPendingAndDueFailedDocuments_oldestFirst_andNeverTwice() async throws {
        let dir = try TemporaryDirectory()
        let clock = TestClock()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"), now: clock.closure)
        let job = try await makeJob(ledger)
        var ids: [Int64] = []
        for index in 0..<20 {
            ids.append(try await ledger.insert(NewDocument(jobID: job.id, path: "f\(index).txt", sha256: "\(index)", size: 1, mtimeNanoseconds: 1)).id)
        }
        // One failed and not yet due, one failed and due.
        try await ledger.transition(ids[0], from: .pending, to: .uploading, [])
        try await ledger.transition(ids[0], from: .uploading, to: .failed, [.nextAttemptAt(clock.now.addingTimeInterval(60))])
        try await ledger.transition(ids[1], from: .pending, to: .uploading, [])
        try await ledger.transition(ids[1], from: .uploading, to: .failed, [.uploadFileID("file-1"), .nextAttemptAt(clock.now.addingTimeInterval(-1))])

        async let a = ledger.claim(jobID: job.id, limit: 10, now: clock.now)
        async let b = ledger.claim(jobID: job.id, limit: 10, now: clock.now)
        let (first, second) = try await (a, b)
        let claimed = first.map(\.id) + second.map(\.id)
        #expect(claimed.count == 19)
        #expect(Set(claimed).count == 19)
        #expect(!claimed.contains(ids[0]))
        let retried = (first + second).first { $0.id == ids[1] }
        #expect(retried?.state == .uploaded, "a document whose file Dify holds resumes at uploaded")
        #expect((first + second).filter { $0.id != ids[1] }.allSatisfy { $0.state == .uploading })
        #expect(try await ledger.claim(jobID: job.id, limit: 10, now: clock.now).isEmpty)
        clock.advance(120)
        #expect(try await ledger.claim(jobID: job.id, limit: 10, now: clock.now).map(\.id) == [ids[0]])
    }

    @Test func usage_isSummedExactly_perJobDayAndRun() async throws {
        let dir = try TemporaryDirectory()
        let clock = TestClock(Date(timeIntervalSince1970: 1_795_000_000)) // 2026-11-18
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"), now: clock.closure)
        let invoices = try await makeJob(ledger, name: "invoices")
        let letters = try await makeJob(ledger, name: "letters")
        let run = try await ledger.beginRun(command: "run", pid: 42, host: "h", jobIDs: [invoices.id, letters.id])
        let doc1 = try await ledger.insert(NewDocument(jobID: invoices.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
        let doc2 = try await ledger.insert(NewDocument(jobID: letters.id, path: "b", sha256: "2", size: 1, mtimeNanoseconds: 1))
        // 0.1 + 0.2 must be exactly 0.3 (floating point would not be).
        try await ledger.recordUsage(documentID: doc1.id, jobID: invoices.id, runID: run, difyRunID: nil,
                                     UsageAmounts(promptTokens: 100, completionTokens: 20, totalTokens: 120, totalPrice: Decimal(string: "0.1"), currency: "USD"))
        clock.advance(86_400)
        try await ledger.recordUsage(documentID: doc1.id, jobID: invoices.id, runID: run, difyRunID: nil,
                                     UsageAmounts(promptTokens: 10, completionTokens: 5, totalTokens: 15, totalPrice: Decimal(string: "0.2"), currency: "USD"))
        try await ledger.recordUsage(documentID: doc2.id, jobID: letters.id, runID: nil, difyRunID: nil,
                                     UsageAmounts(promptTokens: 1, completionTokens: 2, totalTokens: 3, totalPrice: Decimal(string: "0.0012890"), currency: "USD"))

        let byJob = try await ledger.usageTotals(matching: UsageFilter(), by: .job)
        #expect(byJob.map(\.group) == ["invoices", "letters"])
        #expect(byJob[0].totalPrice == Decimal(string: "0.3"))
        #expect(byJob[0].totalTokens == 135)
        #expect(byJob[0].runs == 2 && byJob[0].documents == 1)
        #expect(byJob[1].totalPrice == Decimal(string: "0.001289"))

        let byDay = try await ledger.usageTotals(matching: UsageFilter(), by: .day)
        #expect(byDay.map(\.group) == ["2026-11-18", "2026-11-19"])
        let total = try await ledger.usageTotals(matching: UsageFilter(), by: .none)
        #expect(total.count == 1 && total[0].totalPrice == Decimal(string: "0.301289") && total[0].totalTokens == 138)

        let since = try await ledger.usageTotals(matching: UsageFilter(since: clock.now.addingTimeInterval(-10)), by: .none)
        #expect(since.first?.totalTokens == 18)
        let perDocument = try await ledger.usage(documentID: doc1.id)
        #expect(perDocument?.totalTokens == 135 && perDocument?.totalPrice == Decimal(string: "0.3"))
    }

    @Test func priceWithMoreThanNineDecimals_isRejectedRatherThanRounded() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await makeJob(ledger)
        let doc = try await ledger.insert(NewDocument(jobID: job.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
        await #expect(throws: LedgerError.self) {
            try await ledger.recordUsage(documentID: doc.id, jobID: job.id, runID: nil, difyRunID: nil,
                                         UsageAmounts(totalPrice: Decimal(string: "0.0000000001")))
        }
    }

    @Test func requeue_resetsAttemptsButKeepsHistory() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await makeJob(ledger)
        let doc = try await ledger.insert(NewDocument(jobID: job.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
        try await ledger.transition(doc.id, from: .pending, to: .uploading, [.incrementAttempts])
        let attempt = try await ledger.beginAttempt(documentID: doc.id, runID: nil, phase: .upload)
        try await ledger.finishAttempt(attempt, AttemptResult(outcome: "permanent", httpStatus: 413, difyCode: "file_too_large", message: "too big"))
        let dead = try await ledger.transition(doc.id, from: .uploading, to: .dead,
                                               [.lastError(RecordedError(errorClass: "permanent", code: "file_too_large", message: "too big", httpStatus: 413))])
        #expect(dead.finishedAt != nil && dead.lastError?.httpStatus == 413)
        #expect(try await ledger.requeue(ids: [doc.id], from: [.dead]) == 1)
        let again = try await ledger.document(id: doc.id)
        #expect(again?.state == .pending && again?.attempts == 0 && again?.finishedAt == nil)
        #expect(try await ledger.attempts(documentID: doc.id).count == 1)
        #expect(try await ledger.requeue(ids: [doc.id], from: [.dead]) == 0, "only documents in the allowed states move")
    }

    @Test func latestVersions_returnsTheNewestRowPerPath() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await makeJob(ledger)
        _ = try await ledger.insert(NewDocument(jobID: job.id, path: "a.txt", sha256: "old", size: 1, mtimeNanoseconds: 1))
        let newer = try await ledger.insert(NewDocument(jobID: job.id, path: "a.txt", sha256: "new", size: 2, mtimeNanoseconds: 2))
        _ = try await ledger.insert(NewDocument(jobID: job.id, path: "b.txt", sha256: "b", size: 1, mtimeNanoseconds: 1))
        let latest = try await ledger.latestVersions(jobID: job.id)
        #expect(latest.count == 2)
        #expect(latest["a.txt"]?.id == newer.id)
        let known = try await ledger.knownFiles(jobID: job.id)
        #expect(known["a.txt"] == KnownFile(newer))
        #expect(known.count == 2)
        #expect(try await ledger.documents(path: "a.txt").map(\.sha256) == ["new", "old"])
    }

    @Test func runs_recordPerJobCountsAndTheLastRunPerJob() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await makeJob(ledger)
        let first = try await ledger.beginRun(command: "run", pid: 1, host: "h", jobIDs: [job.id])
        try await ledger.finishRun(first, exitCode: 0)
        let second = try await ledger.beginRun(command: "watch", pid: 2, host: "h", jobIDs: [job.id])
        try await ledger.countInRun(runID: second, jobID: job.id, state: .succeeded)
        try await ledger.countInRun(runID: second, jobID: job.id, state: .succeeded)
        try await ledger.countInRun(runID: second, jobID: job.id, state: .dead)
        try await ledger.finishRun(second, exitCode: 1)
        let last = try await ledger.lastRuns()[job.id]
        #expect(last?.run.id == second && last?.run.command == "watch" && last?.run.exitCode == 1)
        #expect(last?.counts == RunJobCounts(succeeded: 2, dead: 1))
    }

    @Test func succeededDocument_findsEarlierSameContentOnly() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await makeJob(ledger)
        let original = try await ledger.insert(NewDocument(jobID: job.id, path: "a.txt", sha256: "same", size: 1, mtimeNanoseconds: 1))
        try await ledger.transition(original.id, from: .pending, to: .uploading, [])
        try await ledger.transition(original.id, from: .uploading, to: .uploaded, [.uploadFileID("f")])
        try await ledger.transition(original.id, from: .uploaded, to: .running, [])
        try await ledger.transition(original.id, from: .running, to: .succeeded, [])
        try await ledger.storeResult(documentID: original.id, status: "succeeded", outputsJSON: #"{"text":"x"}"#)
        let copy = try await ledger.insert(NewDocument(jobID: job.id, path: "copy/a.txt", sha256: "same", size: 1, mtimeNanoseconds: 1))
        #expect(try await ledger.succeededDocument(jobID: job.id, sha256: "same", excluding: copy.id)?.id == original.id)
        #expect(try await ledger.succeededDocument(jobID: job.id, sha256: "other", excluding: nil) == nil)
        #expect(try await ledger.result(documentID: original.id)?.outputsJSON == #"{"text":"x"}"#)
    }
}
