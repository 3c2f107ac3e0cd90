import DifyBatch
import Foundation
import Testing

/// One suite, run against SQLite and PostgreSQL: the behaviour every `Ledger` promises.
@Suite struct LedgerContractTests {
    @Test(arguments: StoreKind.allCases)
    func claim_takesPendingAndDueFailedDocuments_oldestFirst_andNeverTwice(kind: StoreKind) async throws {
        let clock = ContractClock()
        try await withStore(kind, now: clock.closure) { ledger in
            let job = try await makeJob(ledger)
            var ids: [Int64] = []
            for index in 0..<20 {
                ids.append(try await ledger.insert(NewDocument(jobID: job.id, path: "f\(index).txt", sha256: "\(index)", size: 1, mtimeNanoseconds: 1)).id)
            }
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
            #expect((first + second).first { $0.id == ids[1] }?.state == .uploaded, "a document whose file Dify holds resumes at uploaded")
            #expect((first + second).filter { $0.id != ids[1] }.allSatisfy { $0.state == .uploading })
            #expect(try await ledger.claim(jobID: job.id, limit: 10, now: clock.now).isEmpty)
            clock.advance(120)
            #expect(try await ledger.claim(jobID: job.id, limit: 10, now: clock.now).map(\.id) == [ids[0]])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func transition_checksTheStateMachineAndTheExpectedState(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            let doc = try await ledger.insert(NewDocument(jobID: job.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
            await #expect(throws: LedgerError.self) { try await ledger.transition(doc.id, from: .pending, to: .succeeded, []) }
            let moved = try await ledger.transition(doc.id, from: .pending, to: .uploading, [.incrementAttempts])
            #expect(moved.state == .uploading && moved.attempts == 1 && moved.jobName == "invoices")
            do {
                try await ledger.transition(doc.id, from: .pending, to: .uploading, [])
                Issue.record("a stale expected state was accepted")
            } catch let error as LedgerError {
                #expect(error.code == .stateChanged)
            }
            let all = try await ledger.update(doc.id, in: .uploading, [
                .uploadFileID("f"), .workflowRunID("w"), .messageID("m"), .taskID("t"), .runSentAt(Date(timeIntervalSince1970: 1_700_000_000)),
                .incrementDuplicateRuns, .outputPath("/out/a.json"), .sha256("2"), .size(7), .mtimeNanoseconds(9),
                .lastError(RecordedError(errorClass: "retryable", code: "c", message: "m", httpStatus: 502)),
            ])
            #expect(all.uploadFileID == "f" && all.workflowRunID == "w" && all.messageID == "m" && all.taskID == "t")
            #expect(all.runSentAt == Date(timeIntervalSince1970: 1_700_000_000) && all.duplicateRuns == 1 && all.outputPath == "/out/a.json")
            #expect(all.sha256 == "2" && all.size == 7 && all.mtimeNanoseconds == 9)
            #expect(all.lastError == RecordedError(errorClass: "retryable", code: "c", message: "m", httpStatus: 502))
            let done = try await ledger.transition(doc.id, from: .uploading, to: .dead, [])
            #expect(done.finishedAt != nil)
            #expect(try await ledger.inFlight(jobID: job.id).isEmpty)
            #expect(try await ledger.stateCounts()[job.id] == [.dead: 1])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func usage_isSummedExactly_perJobDayAndRun_andCountedOncePerDifyRun(kind: StoreKind) async throws {
        let clock = ContractClock()
        try await withStore(kind, now: clock.closure) { ledger in
            let invoices = try await makeJob(ledger, name: "invoices")
            let letters = try await makeJob(ledger, name: "letters")
            let run = try await ledger.beginRun(command: "run", pid: 42, host: "h", jobIDs: [invoices.id, letters.id])
            let doc1 = try await ledger.insert(NewDocument(jobID: invoices.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
            let doc2 = try await ledger.insert(NewDocument(jobID: letters.id, path: "b", sha256: "2", size: 1, mtimeNanoseconds: 1))
            try await ledger.recordUsage(documentID: doc1.id, jobID: invoices.id, runID: run, difyRunID: "r1",
                                         UsageAmounts(promptTokens: 100, completionTokens: 20, totalTokens: 120, totalPrice: Decimal(string: "0.1"), currency: "USD"))
            try await ledger.recordUsage(documentID: doc1.id, jobID: invoices.id, runID: run, difyRunID: "r1",
                                         UsageAmounts(promptTokens: 100, completionTokens: 20, totalTokens: 120, totalPrice: Decimal(string: "0.1"), currency: "USD"))
            clock.advance(86_400)
            try await ledger.recordUsage(documentID: doc1.id, jobID: invoices.id, runID: run, difyRunID: nil,
                                         UsageAmounts(promptTokens: 10, completionTokens: 5, totalTokens: 15, totalPrice: Decimal(string: "0.2"), currency: "USD"))
            try await ledger.recordUsage(documentID: doc2.id, jobID: letters.id, runID: nil, difyRunID: nil,
                                         UsageAmounts(promptTokens: 1, completionTokens: 2, totalTokens: 3, totalPrice: Decimal(string: "0.0012890"), currency: "USD"))
            let byJob = try await ledger.usageTotals(matching: UsageFilter(), by: .job)
            #expect(byJob.map(\.group) == ["invoices", "letters"])
            #expect(byJob.first?.totalPrice == Decimal(string: "0.3") && byJob.first?.totalTokens == 135)
            #expect(byJob.first?.runs == 2 && byJob.first?.documents == 1)
            #expect(byJob.last?.totalPrice == Decimal(string: "0.001289"))
            #expect(try await ledger.usageTotals(matching: UsageFilter(), by: .day).map(\.group) == ["2026-11-18", "2026-11-19"])
            #expect(try await ledger.usageTotals(matching: UsageFilter(), by: .run).map(\.group) == ["-", "\(run)"])
            let total = try await ledger.usageTotals(matching: UsageFilter(), by: .none)
            #expect(total.count == 1 && total.first?.totalPrice == Decimal(string: "0.301289") && total.first?.totalTokens == 138)
            #expect(try await ledger.usageTotals(matching: UsageFilter(since: clock.now.addingTimeInterval(-10)), by: .none).first?.totalTokens == 18)
            let perDocument = try await ledger.usage(documentID: doc1.id)
            #expect(perDocument?.totalTokens == 135 && perDocument?.totalPrice == Decimal(string: "0.3") && perDocument?.currency == "USD")
            #expect(try await ledger.usage(documentID: Int64(999_999)) == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func requeue_resetsAttemptsButKeepsHistory(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
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
            let attempts = try await ledger.attempts(documentID: doc.id)
            #expect(attempts.count == 1 && attempts.first?.httpStatus == 413 && attempts.first?.outcome == "permanent" && attempts.first?.endedAt != nil)
            #expect(try await ledger.requeue(ids: [doc.id], from: [.dead]) == 0, "only documents in the allowed states move")
            #expect(try await ledger.waitingCount(jobID: job.id) == 1)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func latestVersions_knownFilesAndPathHistory_returnTheNewestRowPerPath(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            _ = try await ledger.insert(NewDocument(jobID: job.id, path: "a.txt", sha256: "old", size: 1, mtimeNanoseconds: 1))
            let newer = try await ledger.insert(NewDocument(jobID: job.id, path: "a.txt", sha256: "new", size: 2, mtimeNanoseconds: 2))
            _ = try await ledger.insert(NewDocument(jobID: job.id, path: "b.txt", sha256: "b", size: 1, mtimeNanoseconds: 1))
            let latest = try await ledger.latestVersions(jobID: job.id)
            #expect(latest.count == 2 && latest["a.txt"]?.id == newer.id)
            let known = try await ledger.knownFiles(jobID: job.id)
            #expect(known["a.txt"] == KnownFile(newer) && known.count == 2)
            #expect(try await ledger.documents(path: "a.txt").map(\.sha256) == ["new", "old"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func documentsMatching_filtersByJobStateGlobAndTime(kind: StoreKind) async throws {
        let clock = ContractClock()
        try await withStore(kind, now: clock.closure) { ledger in
            let job = try await makeJob(ledger)
            let other = try await makeJob(ledger, name: "letters")
            for path in ["invoices/a.pdf", "invoices/b.txt", "x.pdf", "in[1].pdf"] {
                _ = try await ledger.insert(NewDocument(jobID: job.id, path: path, sha256: path, size: 1, mtimeNanoseconds: 1))
                clock.advance(1)
            }
            _ = try await ledger.insert(NewDocument(jobID: other.id, path: "invoices/c.pdf", sha256: "c", size: 1, mtimeNanoseconds: 1))
            func paths(_ filter: DocumentFilter) async throws -> [String] { try await ledger.documents(matching: filter).map(\.path) }
            #expect(try await paths(DocumentFilter(jobName: "invoices", pathPattern: "invoices/*.pdf")) == ["invoices/a.pdf"])
            #expect(try await paths(DocumentFilter(pathPattern: "*.pdf")) == ["invoices/c.pdf", "in[1].pdf", "x.pdf", "invoices/a.pdf"])
            #expect(try await paths(DocumentFilter(pathPattern: "in[[]1].pdf")) == ["in[1].pdf"])
            #expect(try await paths(DocumentFilter(pathPattern: "?.pdf")) == ["x.pdf"])
            #expect(try await paths(DocumentFilter(jobName: "invoices", limit: 2)) == ["in[1].pdf", "x.pdf"])
            #expect(try await paths(DocumentFilter(states: [.dead])) == [])
            let start = Date(timeIntervalSince1970: 1_795_000_000)
            #expect(try await paths(DocumentFilter(updatedSince: start.addingTimeInterval(1), updatedUntil: start.addingTimeInterval(3))) == ["x.pdf", "invoices/b.txt"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func runs_recordPerJobCountsAndTheLastRunPerJob(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            let first = try await ledger.beginRun(command: "run", pid: 1, host: "h", jobIDs: [job.id])
            try await ledger.finishRun(first, exitCode: 0)
            let second = try await ledger.beginRun(command: "watch", pid: 2, host: "h", jobIDs: [job.id])
            try await ledger.countInRun(runID: second, jobID: job.id, state: .succeeded)
            try await ledger.countInRun(runID: second, jobID: job.id, state: .succeeded)
            try await ledger.countInRun(runID: second, jobID: job.id, state: .dead)
            try await ledger.finishRun(second, exitCode: 1)
            let last = try await ledger.lastRuns()[job.id]
            #expect(last?.run.id == second && last?.run.command == "watch" && last?.run.exitCode == 1 && last?.run.pid == 2)
            #expect(last?.counts == RunJobCounts(succeeded: 2, dead: 1))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func succeededDocument_findsEarlierSameContentOnly_andStoredResults(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            let original = try await ledger.insert(NewDocument(jobID: job.id, path: "a.txt", sha256: "same", size: 1, mtimeNanoseconds: 1))
            try await ledger.transition(original.id, from: .pending, to: .uploading, [])
            try await ledger.transition(original.id, from: .uploading, to: .uploaded, [.uploadFileID("f")])
            try await ledger.transition(original.id, from: .uploaded, to: .running, [])
            try await ledger.transition(original.id, from: .running, to: .succeeded, [])
            try await ledger.storeResult(documentID: original.id, status: "succeeded", outputsJSON: #"{"text":"x"}"#)
            try await ledger.storeResult(documentID: original.id, status: "succeeded", outputsJSON: #"{"text":"y"}"#)
            let copy = try await ledger.insert(NewDocument(jobID: job.id, path: "copy/a.txt", sha256: "same", size: 1, mtimeNanoseconds: 1))
            #expect(try await ledger.succeededDocument(jobID: job.id, sha256: "same", excluding: copy.id)?.id == original.id)
            #expect(try await ledger.succeededDocument(jobID: job.id, sha256: "same", excluding: original.id) == nil)
            #expect(try await ledger.succeededDocument(jobID: job.id, sha256: "other", excluding: nil) == nil)
            #expect(try await ledger.result(documentID: original.id)?.outputsJSON == #"{"text":"y"}"#)
            let rejected = try await ledger.insert(NewDocument(jobID: job.id, path: "bad", sha256: nil, size: 0, mtimeNanoseconds: 1, state: .rejected,
                                                               error: RecordedError(errorClass: "rejected", code: "empty", message: "empty file")))
            #expect(rejected.state == .rejected && rejected.finishedAt != nil && rejected.lastError?.code == "empty")
            let jobs = try await ledger.jobs()
            #expect(jobs.map(\.name) == ["invoices"])
            try await ledger.setAppMode(jobID: job.id, mode: "workflow")
            #expect(try await ledger.jobs().first?.appMode == "workflow")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func claim_withMaxActive_neverExceedsTheCapOfDocumentsInFlight(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            for index in 0..<10 {
                _ = try await ledger.insert(NewDocument(jobID: job.id, path: "f\(index)", sha256: "\(index)", size: 1, mtimeNanoseconds: 1))
            }
            let first = try await ledger.claim(jobID: job.id, limit: 10, now: Date(), maxActive: 3)
            #expect(first.count == 3)
            #expect(try await ledger.claim(jobID: job.id, limit: 10, now: Date(), maxActive: 3).isEmpty)
            let done = try #require(first.first)
            try await ledger.transition(done.id, from: .uploading, to: .dead, [])
            #expect(try await ledger.claim(jobID: job.id, limit: 10, now: Date(), maxActive: 3).count == 1)
            #expect(try await ledger.claim(jobID: job.id, limit: 2, now: Date(), maxActive: nil).count == 2, "no cap without max_active")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func sameContentCopies_waitBehindTheFirst_uncountedWhileItIsPaused_andAreHeldForSkippingOnceItSucceeded(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            func insert(_ path: String) async throws -> DocumentRecord {
                var new = NewDocument(jobID: job.id, path: path, sha256: "same", size: 1, mtimeNanoseconds: 0)
                new.sameContent = .waitForProcessingOrSucceeded
                return try await ledger.insert(new)
            }
            let first = try await insert("a.txt")
            let copy = try await insert("b.txt")
            #expect(copy.duplicateOf == first.id)
            #expect(try await ledger.claim(jobID: job.id, limit: 10, now: Date()).map(\.id) == [first.id])
            #expect(try await ledger.claim(jobID: job.id, limit: 10, now: Date()).isEmpty, "the copy waits while the first is on its way")
            try await ledger.transition(first.id, from: .uploading, to: .uploaded, [])
            try await ledger.transition(first.id, from: .uploaded, to: .running, [])
            #expect(try await ledger.waitingCount(jobID: job.id) == 1)
            try await ledger.transition(first.id, from: .running, to: .paused, [.pausedAt(Date())])
            #expect(try await ledger.waitingCount(jobID: job.id) == 0, "a copy behind a paused run waits for a human, as that run does")
            #expect(try await ledger.claim(jobID: job.id, limit: 10, now: Date()).isEmpty)
            try await ledger.transition(first.id, from: .paused, to: .succeeded, [])
            #expect(try await ledger.claim(jobID: job.id, limit: 10, now: Date()).isEmpty, "never sent: it is skipped from the first's result")
            let held = try await ledger.heldDuplicates(jobID: job.id)
            #expect(held.map(\.waiting.id) == [copy.id] && held.map(\.original.id) == [first.id])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func priceWithMoreThanNineDecimals_isRejectedRatherThanRounded(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            let doc = try await ledger.insert(NewDocument(jobID: job.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
            await #expect(throws: LedgerError.self) {
                try await ledger.recordUsage(documentID: doc.id, jobID: job.id, runID: nil, difyRunID: nil,
                                             UsageAmounts(totalPrice: Decimal(string: "0.0000000001")))
            }
            #expect(try await ledger.usage(documentID: doc.id) == nil)
        }
    }
}
