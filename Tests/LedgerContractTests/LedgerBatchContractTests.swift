import DifyBatch
import Foundation
import Testing

/// Issue 14: `Ledger.write(_:)` makes a document's adjacent durable steps in one transaction, all or none, on
/// SQLite and PostgreSQL alike.
@Suite struct LedgerBatchContractTests {
    @Test(arguments: StoreKind.allCases)
    func write_sendBatch_recordsTheUploadTheSendAndTheRunAttemptTogether(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            let run = try await ledger.beginRun(command: "run", pid: 1, host: "h", jobIDs: [job.id])
            _ = try await ledger.insert(NewDocument(jobID: job.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
            let claimed = try #require(try await ledger.claim(jobID: job.id, limit: 1, now: Date()).first)
            let begun = try await ledger.write([
                .update(claimed.id, in: .uploading, [.incrementAttempts]),
                .beginAttempt(documentID: claimed.id, runID: run, phase: .upload),
            ])
            #expect(begun.documents.count == 1 && begun.document?.attempts == 1 && begun.attemptIDs.count == 1)
            let sentAt = Date(timeIntervalSince1970: 1_790_000_000)
            let sent = try await ledger.write([
                .finishAttempt(begun.attemptIDs[0], .ok),
                .transition(claimed.id, from: .uploading, to: .uploaded, [.uploadFileID("file-1")]),
                .transition(claimed.id, from: .uploaded, to: .running, [.runSentAt(sentAt), .incrementRunPosts]),
                .beginAttempt(documentID: claimed.id, runID: run, phase: .run),
            ])
            #expect(sent.documents.map(\.state) == [.uploaded, .running])
            let document = try #require(sent.document)
            #expect(document.uploadFileID == "file-1" && document.runSentAt == sentAt && document.runPosts == 1 && document.attempts == 1)
            #expect(document.finishedAt == nil && document.jobName == "invoices")
            let attempts = try await ledger.attempts(documentID: claimed.id)
            #expect(attempts.map(\.phase) == [.upload, .run])
            #expect(attempts[0].outcome == "ok" && attempts[0].endedAt != nil)
            #expect(attempts[1].id == sent.attemptIDs[0] && attempts[1].endedAt == nil && attempts[1].runID == run)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func write_settleBatches_storeTheResultUsageAndFinalStateAndCountItInTheRun(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            let run = try await ledger.beginRun(command: "run", pid: 1, host: "h", jobIDs: [job.id])
            let id = try await runningDocument(ledger, job: job)
            let attempt = try await ledger.beginAttempt(documentID: id, runID: run, phase: .run)
            let usage = UsageAmounts(promptTokens: 10, completionTokens: 5, totalTokens: 15, totalPrice: Decimal(string: "0.002"), currency: "USD")
            let stored = try await ledger.write([
                .finishAttempt(attempt, .ok),
                .update(id, in: .running, [.workflowRunID("w-1")]),
                .recordUsage(documentID: id, jobID: job.id, runID: run, difyRunID: "w-1", usage),
                .storeResult(documentID: id, status: "succeeded", outputsJSON: #"{"text":"ok"}"#),
            ])
            #expect(stored.document?.workflowRunID == "w-1")
            #expect(try await ledger.document(id: id)?.resultStored == true)
            #expect(try await ledger.result(documentID: id)?.outputsJSON == #"{"text":"ok"}"#)
            #expect(try await ledger.usage(documentID: id)?.totalTokens == 15)
            let done = try await ledger.write([
                .transition(id, from: .running, to: .succeeded, [.outputPath("/out/a.json")]),
                .countInRun(runID: run, jobID: job.id, state: .succeeded),
            ])
            #expect(done.document?.state == .succeeded && done.document?.outputPath == "/out/a.json" && done.document?.finishedAt != nil)
            #expect(try await ledger.lastRuns()[job.id]?.counts.succeeded == 1)
            #expect(try await ledger.stateCounts()[job.id] == [.succeeded: 1])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func write_whenALaterWriteFindsTheDocumentMoved_writesNothingOfTheBatch(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            let run = try await ledger.beginRun(command: "run", pid: 1, host: "h", jobIDs: [job.id])
            let id = try await runningDocument(ledger, job: job)
            do {
                try await ledger.write([
                    .recordUsage(documentID: id, jobID: job.id, runID: run, difyRunID: "w-1", UsageAmounts(totalTokens: 7)),
                    .storeResult(documentID: id, status: "succeeded", outputsJSON: "{}"),
                    .countInRun(runID: run, jobID: job.id, state: .succeeded),
                    .transition(id, from: .uploaded, to: .running, []),
                ])
                Issue.record("a batch whose last write expected a stale state was accepted")
            } catch let error as LedgerError {
                #expect(error.code == .stateChanged)
            }
            let document = try #require(try await ledger.document(id: id))
            #expect(document.state == .running && !document.resultStored, "the result was not stored")
            #expect(try await ledger.result(documentID: id) == nil)
            #expect(try await ledger.usage(documentID: id) == nil, "the usage was rolled back")
            #expect(try await ledger.lastRuns()[job.id]?.counts.succeeded == 0, "the run count was rolled back")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func write_withAnIllegalTransition_throwsBeforeWritingAnything(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            let doc = try await ledger.insert(NewDocument(jobID: job.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
            do {
                try await ledger.write([
                    .update(doc.id, in: .pending, [.incrementAttempts]),
                    .transition(doc.id, from: .pending, to: .succeeded, []),
                ])
                Issue.record("an illegal transition was accepted")
            } catch let error as LedgerError {
                #expect(error.code == .illegalTransition)
            }
            #expect(try await ledger.document(id: doc.id)?.attempts == 0)
        }
    }

    /// A document claimed, uploaded and sent the one-call-per-step way: `running`.
    private func runningDocument(_ ledger: any Ledger, job: JobRecord) async throws -> Int64 {
        _ = try await ledger.insert(NewDocument(jobID: job.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
        let claimed = try #require(try await ledger.claim(jobID: job.id, limit: 1, now: Date()).first)
        try await ledger.transition(claimed.id, from: .uploading, to: .uploaded, [.uploadFileID("f")])
        try await ledger.transition(claimed.id, from: .uploaded, to: .running, [.runSentAt(Date()), .incrementRunPosts])
        return claimed.id
    }
}
