import Foundation
import Testing
@testable import DifyBatch

/// Issue 14: a job whose queue ran dry is not given an empty write transaction on every tick; a read looks first,
/// and whatever becomes due (new, retry time reached) is still claimed.
@Suite struct SQLiteClaimTests {
    @Test func claim_afterOneThatRanDry_looksWithoutWriting_andStillTakesWhatBecomesDue() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await RunningTotalsTests.register(ledger, "docs")
        func insert(_ name: String) async throws -> DocumentRecord {
            try await ledger.insert(NewDocument(jobID: job.id, path: name, sha256: name, size: 1, mtimeNanoseconds: 1))
        }
        let first = try await insert("a")
        let second = try await insert("b")
        #expect(try await ledger.claim(jobID: job.id, limit: 3, now: Date()).map(\.id) == [first.id, second.id])

        // Ran dry: the next claims write nothing while nothing is due.
        var writes = ledger.writeTransactions
        #expect(try await ledger.claim(jobID: job.id, limit: 1, now: Date()).isEmpty)
        #expect(try await ledger.claimCountingAttempts(jobID: job.id, limit: 2, now: Date(), maxActive: nil, tableFilesUncounted: false).isEmpty)
        #expect(ledger.writeTransactions == writes)

        // A new document is claimed by the next claim.
        let third = try await insert("c")
        #expect(try await ledger.claim(jobID: job.id, limit: 1, now: Date()).map(\.id) == [third.id])

        // A failed document is claimed once its retry time has come, not before (and not before is no write).
        let retryAt = Date().addingTimeInterval(3600)
        try await ledger.transition(first.id, from: .uploading, to: .failed, [.nextAttemptAt(retryAt)])
        _ = try await ledger.claim(jobID: job.id, limit: 1, now: Date())  // a full claim before cleared the look-first
        writes = ledger.writeTransactions
        #expect(try await ledger.claim(jobID: job.id, limit: 1, now: Date()).isEmpty)
        #expect(ledger.writeTransactions == writes)
        let retried = try await ledger.claim(jobID: job.id, limit: 1, now: retryAt.addingTimeInterval(1))
        #expect(retried.map(\.id) == [first.id] && retried.first?.state == .uploading)
        #expect(ledger.writeTransactions == writes + 1)
    }
}
