import DifyBatch
import Foundation
import Testing

/// Issue 14 on both stores: the pipeline's claim counts the attempt each claimed document starts in the claim's own
/// transaction, so no transaction of its own is needed before the upload.
@Suite struct LedgerClaimCountingContractTests {
    @Test(arguments: StoreKind.allCases)
    func claimCountingAttempts_countsUploadsAndSends_notStoredResultsNorTableFiles(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            let fresh = try await ledger.insert(NewDocument(jobID: job.id, path: "fresh", sha256: "1", size: 1, mtimeNanoseconds: 1))
            // Failed twice before, Dify holds its file: claimed `uploaded`, its third attempt counted.
            let held = try await ledger.insert(NewDocument(jobID: job.id, path: "held", sha256: "2", size: 1, mtimeNanoseconds: 1))
            try await ledger.transition(held.id, from: .pending, to: .uploading, [.attempts(2)])
            try await ledger.transition(held.id, from: .uploading, to: .failed, [.uploadFileID("file-2"), .nextAttemptAt(Date(timeIntervalSince1970: 1))])
            // A stored result (only local work left): claimed `recovering`, no attempt.
            let stored = try await ledger.insert(NewDocument(jobID: job.id, path: "stored", sha256: "3", size: 1, mtimeNanoseconds: 1))
            try await ledger.transition(stored.id, from: .pending, to: .uploading, [.attempts(1)])
            try await ledger.storeResult(documentID: stored.id, status: "succeeded", outputsJSON: "{}")
            try await ledger.transition(stored.id, from: .uploading, to: .failed, [.nextAttemptAt(Date(timeIntervalSince1970: 1))])
            let claimed = try await ledger.claimCountingAttempts(jobID: job.id, limit: 10, now: Date(), maxActive: nil, tableFilesUncounted: false)
            let byID = Dictionary(uniqueKeysWithValues: claimed.map { ($0.id, $0) })
            #expect(byID.count == 3)
            #expect(byID[fresh.id]?.state == .uploading && byID[fresh.id]?.attempts == 1)
            #expect(byID[held.id]?.state == .uploaded && byID[held.id]?.attempts == 3)
            #expect(byID[stored.id]?.state == .recovering && byID[stored.id]?.attempts == 1, "a stored result starts no attempt")

            // A rows job: a table file (runs nothing itself) and one of its rows (runs).
            let rowsJob = try await makeJob(ledger, name: "tables")
            let table = try await ledger.insert(NewDocument(jobID: rowsJob.id, path: "t.csv", sha256: "4", size: 1, mtimeNanoseconds: 1))
            var newRow = NewDocument(jobID: rowsJob.id, path: "t.csv#1", sha256: "5", size: 1, mtimeNanoseconds: 1)
            newRow.rowOf = table.id
            newRow.rowIndex = 1
            let row = try #require(try await ledger.insertRows([newRow]).first)
            let rows = try await ledger.claimCountingAttempts(jobID: rowsJob.id, limit: 10, now: Date(), maxActive: nil, tableFilesUncounted: true)
            #expect(rows.first { $0.id == table.id }?.attempts == 0, "a table file runs nothing itself")
            #expect(rows.first { $0.id == row.id }?.attempts == 1)
            // What the claims returned is what they wrote.
            for document in claimed + rows { #expect(try await ledger.document(id: document.id)?.attempts == document.attempts) }
            #expect(try await ledger.attempts(documentID: fresh.id).isEmpty, "no attempt row before the upload")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func claimCountingAttempts_withoutRows_countsTableLessFiles_andKeepsMaxActive(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            for index in 0..<3 {
                _ = try await ledger.insert(NewDocument(jobID: job.id, path: "f\(index)", sha256: "\(index)", size: 1, mtimeNanoseconds: 1))
            }
            let first = try await ledger.claimCountingAttempts(jobID: job.id, limit: 10, now: Date(), maxActive: 2, tableFilesUncounted: false)
            #expect(first.count == 2 && first.allSatisfy { $0.attempts == 1 && $0.state == .uploading })
            #expect(try await ledger.claimCountingAttempts(jobID: job.id, limit: 10, now: Date(), maxActive: 2, tableFilesUncounted: false).isEmpty)
            // The plain claim still counts nothing.
            let plain = try await ledger.claim(jobID: job.id, limit: 10, now: Date())
            #expect(plain.count == 1 && plain[0].attempts == 0)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func attemptWrite_recordsAWholeAttemptThatBeganBeforeTheBatch(kind: StoreKind) async throws {
        let clock = ContractClock()
        try await withStore(kind, now: { clock.now }) { ledger in
            let job = try await makeJob(ledger)
            let doc = try await ledger.insert(NewDocument(jobID: job.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
            let claimed = try #require(try await ledger.claimCountingAttempts(jobID: job.id, limit: 1, now: clock.now, maxActive: nil,
                                                                              tableFilesUncounted: false).first)
            let result = try await ledger.write([
                .attempt(documentID: doc.id, runID: nil, phase: .upload, elapsedMilliseconds: 250, .ok),
                .transition(claimed.id, from: .uploading, to: .uploaded, [.uploadFileID("file-1")]),
            ])
            #expect(result.attemptIDs.isEmpty && result.document?.state == .uploaded && result.document?.attempts == 1)
            let attempts = try await ledger.attempts(documentID: doc.id)
            #expect(attempts.count == 1)
            #expect(attempts.first?.phase == .upload && attempts.first?.outcome == "ok")
            let started = try #require(attempts.first?.startedAt)
            let ended = try #require(attempts.first?.endedAt)
            #expect(abs(ended.timeIntervalSince(started) - 0.25) < 0.002)
        }
    }
}
