@testable import DifyBatch
import Foundation
import Logging
import Testing

/// Issue 14: the claim counts a document's attempt; what a crash before the send leaves is requeued with exactly
/// that attempt given back (never one of the document's earlier, real attempts), and nothing sent is requeued.
@Suite struct LeftoverTriageTests {
    @Test func requeueUnsent_afterACountingClaim_givesBackExactlyTheClaimedAttempt_andKeepsSentRunsForRecovery() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("ledger.sqlite"))
        let job = try await makeJob(ledger)
        // Two earlier failed attempts, then claimed (third attempt counted) and cut off during its upload.
        let retried = try await ledger.insert(NewDocument(jobID: job.id, path: "retried", sha256: "1", size: 1, mtimeNanoseconds: 1))
        try await ledger.transition(retried.id, from: .pending, to: .uploading, [.attempts(2)])
        try await ledger.transition(retried.id, from: .uploading, to: .failed, [.nextAttemptAt(Date(timeIntervalSince1970: 1))])
        // A first attempt cut off after its send was recorded.
        let sent = try await ledger.insert(NewDocument(jobID: job.id, path: "sent", sha256: "2", size: 1, mtimeNanoseconds: 1))
        let claimed = try await ledger.claimCountingAttempts(jobID: job.id, limit: 10, now: Date(), maxActive: nil, tableFilesUncounted: false)
        #expect(claimed.map(\.attempts) == [3, 1])
        try await ledger.write([
            .transition(sent.id, from: .uploading, to: .uploaded, [.uploadFileID("f")]),
            .transition(sent.id, from: .uploaded, to: .running, [.runSentAt(Date()), .incrementRunPosts]),
        ])

        let toRecover = try await LeftoverTriage.requeueUnsent(try await ledger.inFlight(jobID: job.id), ledger: ledger,
                                                              logger: Logger(label: "test"))
        #expect(toRecover.map(\.id) == [sent.id], "a sent run is looked up, never requeued")
        let requeued = try #require(try await ledger.document(id: retried.id))
        #expect(requeued.state == .pending && requeued.attempts == 2, "only the cut-off attempt is given back")
        #expect(try await ledger.document(id: sent.id)?.state == .running)
    }
}
