import DifyKit
import Foundation
import GRDB
import Testing
@testable import DifyBatch

/// Issue 10's decision tables, in zero wall time.
@Suite struct FailurePolicyTests {
    static func error(_ code: DifyError.Code, status: Int? = nil, difyCode: String? = nil, sent: Bool = true,
                      started: RunStarted? = nil, _ classification: ErrorClass, mayHaveRun: Bool = false) -> DifyError {
        DifyError(code: code, httpStatus: status, difyCode: difyCode, message: "m", endpoint: "POST /workflows/run",
                  runStarted: started, requestSent: sent, classification: classification, runMayHaveStarted: mayHaveRun)
    }

    @Test func everyErrorClass_mapsToOneDecision_perPhase() {
        let table: [(DifyError, FailurePhase, FailureDecision)] = [
            (Self.error(.transport, sent: false, .retryable), .run, .stopJob(.unavailable, unreachable: true)),
            (Self.error(.http, status: 429, difyCode: "too_many_requests", .backpressure), .run, .backOff),
            (Self.error(.http, status: 429, .backpressure), .upload, .backOff),
            (Self.error(.http, status: 401, difyCode: "unauthorized", .configuration), .run, .stopJob(.configuration, unreachable: false)),
            (Self.error(.http, status: 429, difyCode: "rate_limit_error", .quota), .run, .stopJob(.unavailable, unreachable: false)),
            (Self.error(.http, status: 400, difyCode: "invalid_param", .permanent), .run, .dead),
            (Self.error(.http, status: 400, difyCode: "invalid_param", .invalidUploadFile), .run, .uploadAgain),
            (Self.error(.http, status: 400, difyCode: "invalid_param", .invalidUploadFile), .upload, .retry),
            (Self.error(.http, status: 502, .ambiguous), .run, .recover),
            (Self.error(.timeout, .ambiguous), .run, .recover),
            (Self.error(.http, status: 502, .retryable), .upload, .retry),
            (Self.error(.inStreamError, difyCode: "internal_server_error", .retryable), .run, .retry),
        ]
        for (error, phase, expected) in table {
            #expect(FailurePolicy.decide(error, phase: phase) == expected, "\(error) in \(phase)")
        }
    }
}

@Suite struct SendBudgetTests {
    static func record(runPosts: Int, outcomeUnknown: Bool = false, duplicateRuns: Int = 0) -> DocumentRecord {
        var record = document(1, .uploaded)
        record.runPosts = runPosts
        record.outcomeUnknown = outcomeUnknown
        record.duplicateRuns = duplicateRuns
        return record
    }

    @Test func maxAttempts_capsRunPosts_whateverTheirOutcome() {
        let budget = SendBudget(maxSends: 3)
        #expect(budget.allowsSend(Self.record(runPosts: 0)))
        #expect(budget.allowsSend(Self.record(runPosts: 2)))
        #expect(!budget.allowsSend(Self.record(runPosts: 3)))
        #expect(!budget.allowsSend(Self.record(runPosts: 7)))
        #expect(budget.exhaustedMessage(Self.record(runPosts: 3)).contains("retry.max_attempts: 3"))
    }

    @Test func aSendAfterAnUnknownOutcome_isCountedAsADuplicateRun() {
        let budget = SendBudget(maxSends: 5)
        #expect(budget.changesForSend(Self.record(runPosts: 1)) == [.incrementRunPosts])
        #expect(budget.changesForSend(Self.record(runPosts: 1, outcomeUnknown: true))
                == [.incrementRunPosts, .incrementDuplicateRuns, .outcomeUnknown(false)])
    }

    @Test func aSendIsGivenBack_onlyOnProofThatNoRunStarted() {
        let budget = SendBudget(maxSends: 5)
        let before = Self.record(runPosts: 1, outcomeUnknown: true, duplicateRuns: 2)
        let sent = Self.record(runPosts: 2, duplicateRuns: 3)
        let proof = FailurePolicyTests.error(.http, status: 429, difyCode: "too_many_requests", .backpressure)
        #expect(budget.changesAfterFailure(before: before, sent: sent, proof) == [.runPosts(1), .duplicateRuns(2), .outcomeUnknown(true)])
        for mayHaveRun in [FailurePolicyTests.error(.http, status: 502, .ambiguous, mayHaveRun: true),
                           FailurePolicyTests.error(.timeout, .ambiguous, mayHaveRun: true),
                           FailurePolicyTests.error(.streamEndedEarly, .ambiguous, mayHaveRun: true)] {
            #expect(budget.changesAfterFailure(before: before, sent: sent, mayHaveRun).isEmpty)
        }
    }
}

@Suite struct BackpressureTests {
    static let policy = RetryPolicy(maxAttempts: 5, baseDelay: .seconds(1), maxDelay: .seconds(60))

    @Test func waitsGrowExponentially_andStopAtMaxDelay_withoutUsingAttempts() {
        let state = Backpressure(policy: Self.policy, seed: 3)
        var now = ContinuousClock.now
        var ceilings: [Duration] = []
        for _ in 0..<10 {
            let delay = state.record429(retryAfter: nil, now: now)
            ceilings.append(Backoff(policy: Self.policy).ceiling(afterAttempt: state.level))
            #expect(delay <= ceilings.last!)
            now += delay + .milliseconds(1)  // the next 429 arrives after the wait ended
        }
        #expect(state.level == 10)
        #expect(ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60].map { Duration.seconds($0) })
    }

    @Test func workersHittingTheLimitTogether_shareOneWait() {
        let state = Backpressure(policy: Self.policy, seed: 3)
        let now = ContinuousClock.now
        let first = state.record429(retryAfter: .seconds(5), now: now)
        #expect(first >= .seconds(5))
        for worker in 1..<16 {
            let joined = state.record429(retryAfter: nil, now: now + .milliseconds(worker))
            #expect(joined == first - .milliseconds(worker))
        }
        #expect(state.level == 1)
        #expect(state.remainingWait(now: now + first) == .zero)
    }

    @Test func retryAfter_isHonoured_evenBeyondMaxDelay() {
        let state = Backpressure(policy: Self.policy, seed: 9)
        let now = ContinuousClock.now
        #expect(state.record429(retryAfter: .seconds(120), now: now) == .seconds(120))
        #expect(state.remainingWait(now: now + .seconds(119)) == .seconds(1))
    }

    @Test func continuousBackpressure_isMeasured_andEndsWithTheFirstOtherAnswer() {
        let state = Backpressure(policy: Self.policy, seed: 1)
        let start = ContinuousClock.now
        state.record429(retryAfter: nil, now: start)
        state.record429(retryAfter: nil, now: start + .seconds(600))
        #expect(state.continuous(now: start + .seconds(900)) == .seconds(900))
        state.recordAnswer()
        #expect(state.continuous(now: start + .seconds(901)) == .zero)
        #expect(state.level == 0)
        #expect(state.remainingWait(now: start + .seconds(901)) == .zero)
    }
}

@Suite struct RecoveryPolicyTests {
    static let policy = RecoveryPolicy(deadline: .seconds(1800), firstInterval: .milliseconds(500), maxInterval: .seconds(15))

    @Test func missingEvidence_neverMeansNotSent_untilTheFullDeadlineOnThisProcessesClock() {
        let early = Duration.seconds(60)
        let late = Duration.seconds(1800)
        #expect(Self.policy.verdict(.notListed, lookingFor: early) == .keepLooking)
        #expect(Self.policy.verdict(.couldNotCheck, lookingFor: early) == .keepLooking)
        #expect(Self.policy.verdict(.run(.running), lookingFor: early) == .keepLooking)
        #expect(Self.policy.verdict(.run(.scheduled), lookingFor: early) == .keepLooking)
        #expect(Self.policy.verdict(.notListed, lookingFor: late) == .unresolved)
        #expect(Self.policy.verdict(.couldNotCheck, lookingFor: late) == .unresolved)
        #expect(Self.policy.verdict(.run(.running), lookingFor: late) == .unresolved)
    }

    @Test func evidenceDifyGave_endsTheLookupAtOnce() {
        for status in [RunStatus.succeeded, .partialSucceeded, .failed, .stopped] {
            #expect(Self.policy.verdict(.run(status), lookingFor: .zero) == .finished)
        }
        #expect(Self.policy.verdict(.run(.paused), lookingFor: .seconds(99_999)) == .paused)
        #expect(Self.policy.verdict(.provedNotStarted, lookingFor: .zero) == .neverStarted)
        #expect(Self.policy.verdict(.cannotLookUp, lookingFor: .zero) == .unresolved)
    }

    @Test func lookupsBackOff_upToTheirCap_andPausedPollsUpToFiveMinutes() {
        #expect((1...8).map { Self.policy.interval(afterLookup: $0) }
                == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(15), .seconds(15), .seconds(15)])
        #expect(RecoveryPolicy.pausedPollInterval(pausedFor: .zero, first: .seconds(1)) == .seconds(1))
        #expect(RecoveryPolicy.pausedPollInterval(pausedFor: .seconds(60), first: .seconds(1)) == .seconds(30))
        #expect(RecoveryPolicy.pausedPollInterval(pausedFor: .seconds(86_400 * 3), first: .seconds(1)) == .seconds(300))
    }
}

@Suite struct SpendOnceLedgerTests {
    @Test func aVersion1Ledger_migratesToTheFreshSchema_keepsItsRows_andAcceptsTheNewStates() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("v1.sqlite")
        let v1 = try String(contentsOfFile: repositoryRoot + "/Tests/Fixtures/ledger-schema-v1.sql", encoding: .utf8)
        try runSQLite(path, v1 + """
            ;
            PRAGMA user_version = 1;
            INSERT INTO jobs (id, name, spec_path, spec_hash, base_url, dify_user, inbox, outbox, created_at, updated_at)
                VALUES (1, 'docs', '/j.yaml', 'h', 'http://x/v1', 'u', '/in', '/out', 1, 1);
            INSERT INTO documents (id, job_id, path, sha256, size, mtime_ns, state, attempts, run_sent_at, created_at, updated_at)
                VALUES (1, 1, 'a.txt', 'aa', 3, 1, 'recovering', 2, 5, 1, 1), (2, 1, 'b.txt', 'bb', 3, 1, 'succeeded', 1, 5, 1, 1);
            INSERT INTO results (document_id, status, outputs_json, recorded_at) VALUES (2, 'succeeded', '{}', 1);
            INSERT INTO attempts (document_id, phase, started_at) VALUES (1, 'run', 1), (2, 'run', 1);
            INSERT INTO usage (document_id, job_id, dify_run_id, total_tokens, recorded_at) VALUES (2, 1, 'r', 7, 1);
            """)
        let ledger = try SQLiteLedger(path: path)
        let fresh = try SchemaDescription.of(sql: LedgerSchema.sql)
        #expect(try ledger.schemaDescription() == fresh)
        let first = try #require(try await ledger.document(id: 1))
        #expect(first.state == .recovering && first.runPosts == 2 && !first.outcomeUnknown)
        #expect(try await ledger.attempts(documentID: 1).count == 1)
        #expect(try await ledger.usage(documentID: 2)?.totalTokens == 7)
        #expect(try await ledger.result(documentID: 2) != nil)
        // The widened CHECK accepts the new states.
        let parked = try await ledger.transition(1, from: .recovering, to: .unresolved, [.outcomeUnknown(true)])
        #expect(parked.state == .unresolved && parked.outcomeUnknown)
        // Reopening a migrated ledger changes nothing.
        #expect(try SQLiteLedger(path: path).schemaDescription() == fresh)
        let version = try await DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") }
        #expect(version == SQLiteLedger.schemaVersion)
    }

    @Test func sameContentInOneBatch_waitsForTheFirst_andIsNeverClaimedWhileItIsOnItsWay() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await makeJob(ledger)
        func insert(_ path: String) async throws -> DocumentRecord {
            var new = NewDocument(jobID: job.id, path: path, sha256: "same", size: 1, mtimeNanoseconds: 0)
            new.sameContent = .waitForProcessingOrSucceeded
            return try await ledger.insert(new)
        }
        let first = try await insert("a.txt")
        let second = try await insert("b.txt")
        let third = try await insert("c.txt")
        #expect(first.duplicateOf == nil && second.duplicateOf == first.id && third.duplicateOf == first.id)
        let claimed = try await ledger.claim(jobID: job.id, limit: 10, now: Date())
        #expect(claimed.map(\.id) == [first.id])
        // While the first runs (or waits to be retried) the others stay unclaimed.
        #expect(try await ledger.claim(jobID: job.id, limit: 10, now: Date()).isEmpty)
        try await ledger.transition(first.id, from: .uploading, to: .dead, [])
        // The first failed for good: the next one goes on normally (one at a time again).
        let next = try await ledger.claim(jobID: job.id, limit: 10, now: Date())
        #expect(next.map(\.id) == [second.id, third.id])
        #expect(next.allSatisfy { $0.duplicateOf == nil })
    }

    @Test func aWaitingDuplicate_ofASucceededDocument_isHeldForSkipping_evenAfterACrash() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await makeJob(ledger)
        var new = NewDocument(jobID: job.id, path: "a.txt", sha256: "same", size: 1, mtimeNanoseconds: 0)
        new.sameContent = .waitForProcessingOrSucceeded
        let first = try await ledger.insert(new)
        new.path = "b.txt"
        let second = try await ledger.insert(new)
        _ = try await ledger.claim(jobID: job.id, limit: 1, now: Date())
        try await ledger.transition(first.id, from: .uploading, to: .uploaded, [])
        try await ledger.transition(first.id, from: .uploaded, to: .running, [])
        try await ledger.transition(first.id, from: .running, to: .succeeded, [])
        // Reopened (a new process): the waiting document is never claimed, and is reported for skipping.
        let reopened = try SQLiteLedger(path: dir.file("l.sqlite"))
        #expect(try await reopened.claim(jobID: job.id, limit: 10, now: Date()).isEmpty)
        let held = try await reopened.heldDuplicates(jobID: job.id)
        #expect(held.map(\.waiting.id) == [second.id] && held.map(\.original.id) == [first.id])
    }
}
