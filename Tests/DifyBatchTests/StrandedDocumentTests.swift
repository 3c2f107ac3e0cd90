import DifyKit
import DifySimulator
import Foundation
import Logging
import Testing
@testable import DifyBatch

/// A worker that stops on a ledger error it cannot record leaves its document in flight with nobody working on it.
/// The job loop sorts such a document again like a crash's leftover, in the same process: requeued when nothing was
/// sent, looked up (never re-sent) when a run was. Before, `watch` left it in flight until its restart (measured
/// with Scripts/attack/held-lock.sh CMD=watch HOLD=15: 2 of 40 documents stayed `uploading` for good).
@Suite struct StrandedDocumentTests {
    @Test func run_whenTheLedgerIsLockedAtTheSendRecord_requeuesTheUnsentDocumentInTheSameRun_andRunsItOnce() async throws {
        try await runOneFileWithTheLedgerLocked(at: .sendRecorded) { result, ledger, stats, dir in
            #expect(result.exitStatus == .success)
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state == .succeeded, "not left `\(document.state.rawValue)` with nobody working on it")
            #expect(document.attempts == 1, "the attempt of the unsent try was given back")
            #expect(stats.requestsByEndpoint["POST /v1/workflows/run"] == 1, "the run was sent once: the locked send record sent nothing")
            #expect(FileManager.default.fileExists(atPath: dir.file("out/a.txt.json")))
        }
    }

    @Test func run_whenTheLedgerIsLockedWhileRecordingAStartedRunsIDs_looksTheRunUpInTheSameRun_withoutASecondRun() async throws {
        try await runOneFileWithTheLedgerLocked(at: .runIDsRecorded) { result, ledger, stats, dir in
            #expect(result.exitStatus == .success)
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state == .succeeded, "not left `\(document.state.rawValue)` with nobody working on it")
            #expect(stats.requestsByEndpoint["POST /v1/workflows/run"] == 1, "the sent run was looked up, not sent again")
            #expect(document.workflowRunID != nil, "the run found by the lookup is recorded")
            #expect(FileManager.default.fileExists(atPath: dir.file("out/a.txt.json")))
        }
    }

    @Test func run_whenEverySendRecordMeetsTheLock_givesTheDocumentUpAfter3Tries_exit4_sendsNothing_andTheNextRunFinishesIt() async throws {
        try await runOneFileWithTheLedgerLocked(at: .sendRecorded, times: 1000) { result, ledger, stats, _ in
            #expect(result.exitStatus == .unavailable, "not exit 0 with a document left in flight")
            #expect(result.summaries.first?.stop?.message.contains("1 document(s) stayed in flight after ledger or file-system errors") == true,
                    "\(String(describing: result.summaries.first?.stop))")
            #expect(ledger.lockedWrites.withLock { $0 } == 3, "tried 3 times (localRetriesPerRun), then left for the next run")
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state.isInFlight)
            #expect(stats.requestsByEndpoint["POST /v1/workflows/run"] == nil, "nothing was sent")
        }
    }

    /// Not a stranded document: a scan's batch insert that fails leaves its files unrecorded, all of them named in
    /// `run`'s exit-4 message (the file that completed the batch was left out: 255 of 256).
    @Test func run_whenAScanBatchInsertMeetsTheLock_reportsEveryFileOfTheBatchUnrecorded_exit4() async throws {
        try await runOneFileWithTheLedgerLocked(at: .scanBatch, times: 1, otherFiles: 299) { result, ledger, stats, _ in
            #expect(result.exitStatus == .unavailable)
            let message = result.summaries.first?.stop?.message ?? ""
            #expect(message.contains("256 inbox file(s) could not be recorded"), "\(message)")
            let recorded = try await ledger.documents(matching: DocumentFilter(limit: 1000)).count
            #expect(recorded == 300 - 256, "the rest was recorded")
            #expect((stats.requestsByEndpoint["POST /v1/workflows/run"] ?? 0) == 300 - 256, "only recorded files ran")
        }
    }

    @Test func strandedDocuments_backOffPerFailure_andRunGivesUpAfterTheLimit() {
        var stranded = StrandedDocuments()
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        #expect(stranded.add(7, now: t0) == .seconds(1))
        #expect(stranded.due(at: t0.addingTimeInterval(0.5), limit: nil).isEmpty)
        #expect(stranded.due(at: t0.addingTimeInterval(1), limit: nil) == [7])
        #expect(stranded.add(7, now: t0) == .seconds(2), "a failed sort doubles the wait")
        stranded.resolved(7)
        #expect(stranded.isEmpty && !stranded.hasRetriesLeft(limit: 3))
        #expect(stranded.add(7, now: t0) == .seconds(4), "stranded again in the same invocation: the count goes on")
        #expect(!stranded.hasRetriesLeft(limit: 3), "run stops waiting for it after 3 failures")
        #expect(stranded.due(at: t0.addingTimeInterval(10), limit: 3).isEmpty, "run gives it up: the next start sorts it")
        #expect(stranded.due(at: t0.addingTimeInterval(10), limit: nil) == [7], "watch never gives up")
        stranded.add(3, now: t0)
        #expect(stranded.hasRetriesLeft(limit: 3))
        #expect(stranded.due(at: t0.addingTimeInterval(10), limit: nil) == [3, 7])
        #expect((1...9).map { StrandedDocuments.delay(afterFailures: $0) }
                == [1, 2, 4, 8, 16, 32, 60, 60, 60].map { Duration.seconds($0) })
    }
}
