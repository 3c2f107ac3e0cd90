import DifyBatch
import DifyKit
import DifySimulator
import Foundation
import Testing

/// Issue 10 end to end: each case counts the run POSTs the simulator received and checks the final state.
@Suite(.serialized) struct SpendOnceEndToEndTests {
    static let workflowRun = "POST /v1/workflows/run"

    @Test func run_whenEveryRunResponseIsLost_looksTheRunUp_andParksItUnresolved_withOnePOST() async throws {
        var faults = FaultPlan()
        faults.dropBeforeRunRate = 1.0
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, recoverDeadline: "300ms")
            try workspace.drop("a.txt", "alpha")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed)
            #expect(simulator.stats.runRequestsReceived == 1)
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state == .unresolved && document.runPosts == 1 && document.outcomeUnknown)
            #expect(result.summaries.first?.counts[.unresolved] == 1)
            let error = try workspace.json("a.txt.error.json")
            #expect(error["status"] as? String == "unresolved")
            let message = try #require((error["error"] as? [String: Any])?["message"] as? String)
            #expect(message.contains("may have happened") && message.contains("retry --state unresolved"))
            // The source stays in the inbox until someone decides.
            #expect(workspace.files(in: workspace.inbox) == ["a.txt"])
        }
    }

    @Test func run_withOnUnknownResend_sendsAtMostMaxAttemptsRunPOSTs_countingEachDuplicate() async throws {
        var faults = FaultPlan()
        faults.dropBeforeRunRate = 1.0
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, extra: "recovery: {on_unknown: resend}",
                                          retry: "{max_attempts: 3, base_delay: 5ms, max_delay: 20ms}", recoverDeadline: "100ms")
            try workspace.drop("a.txt", "alpha")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed)
            #expect(simulator.stats.runRequestsReceived == 3)
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            // The budget is spent and the last outcome is unknown too: parked, never a fourth POST.
            #expect(document.state == .unresolved && document.runPosts == 3 && document.duplicateRuns == 2)
        }
    }

    @Test func retryStateUnresolved_sendsItAgain_countedAsADuplicateRun() async throws {
        var faults = FaultPlan()
        faults.dropBeforeRunRate = 1.0
        let workspace = try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, recoverDeadline: "100ms")
            try workspace.drop("a.txt", "alpha")
            _ = try await workspace.run()
            #expect(simulator.stats.runRequestsReceived == 1)
            return workspace
        }
        let ledger = try SQLiteLedger(path: workspace.dbPath)
        let parked = try #require(try await ledger.documents(matching: DocumentFilter(states: [.unresolved])).first)
        #expect(try await ledger.requeue(ids: [parked.id], from: [.unresolved]) == 1)
        let requeued = try #require(try await ledger.document(id: parked.id))
        #expect(requeued.state == .pending && requeued.outcomeUnknown && requeued.runPosts == 0)
        try await withDifySimulator { simulator, baseURL in
            // The same ledger and inbox, now against a healthy server.
            try String(contentsOfFile: workspace.specPath, encoding: .utf8)
                .replacingOccurrences(of: workspace.baseURL, with: baseURL).write(toFile: workspace.specPath, atomically: true, encoding: .utf8)
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .success)
            #expect(simulator.stats.runRequestsReceived == 1)
            let done = try #require(try await ledger.document(id: parked.id))
            #expect(done.state == .succeeded && done.duplicateRuns == 1 && !done.outcomeUnknown)
        }
    }

    @Test func run_whenEveryRunIsAnswered429_backsOffGrowing_andStopsWithExit4AfterMaxBackpressure() async throws {
        var faults = FaultPlan()
        faults.tooManyRequestsRate = 1.0
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 4,
                                          retry: "{max_attempts: 2, base_delay: 20ms, max_delay: 200ms, max_backpressure: 1s}")
            for index in 0..<4 { try workspace.drop("d\(index).txt", "doc \(index)") }
            let started = ContinuousClock.now
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .unavailable)
            #expect(ContinuousClock.now - started >= .seconds(1))
            // Growing, shared waits: far fewer POSTs than a fixed 0.3 s loop would make, and none counted as sends.
            let posts = simulator.stats.runRequestsReceived
            #expect(posts >= 2 && posts <= 100, "\(posts) run POSTs")
            let documents = try await ledger.documents(matching: DocumentFilter())
            #expect(documents.allSatisfy { $0.runPosts == 0 && $0.attempts == 0 && !$0.state.isTerminal }, "\(documents.map { ($0.state, $0.runPosts, $0.attempts) })")
            #expect(simulator.stats.runsBySHA256.isEmpty)
        }
    }

    @Test func threeIdenticalFilesInOneBatch_runOnce_andTheOthersAreSkippedAsDuplicates() async throws {
        var faults = FaultPlan()
        faults.latency = .milliseconds(100)
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 4)
            for name in ["a.txt", "b.txt", "c.txt"] { try workspace.drop(name, "the same content") }
            try workspace.drop("other.txt", "different")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .success)
            #expect(simulator.stats.runRequestsReceived == 2)
            #expect(simulator.stats.runsBySHA256.values.sorted() == [1, 1])
            let documents = try await ledger.documents(matching: DocumentFilter())
            let skipped = documents.filter { $0.state == .skipped }
            #expect(skipped.count == 2)
            let original = try #require(documents.first { $0.state == .succeeded && $0.path != "other.txt" })
            #expect(skipped.allSatisfy { $0.duplicateOf == original.id })
            #expect(workspace.outputs().count == 4)
        }
    }

    @Test func completionRunWhoseStreamDrops_isUnresolvedAtOnce_withUsageUnknown_andOnePOST() async throws {
        var faults = FaultPlan()
        faults.dropAfterStartRate = 1.0
        let config = SimulatorConfiguration(apps: [.completion(apiKey: "app-completion")], faults: faults)
        try await withDifySimulator(config) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, key: "app-completion")
            try workspace.drop("a.txt", "alpha")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed)
            #expect(simulator.stats.runRequestsReceived == 1)
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state == .unresolved && document.runPosts == 1)
            #expect(try await ledger.usage(documentID: document.id) == nil)
        }
    }

    @Test func workflowRunWhoseStreamDrops_isFoundById_andRecordedWithItsUsage_neverSentAgain() async throws {
        var faults = FaultPlan()
        faults.dropAfterStartRate = 1.0
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            for index in 0..<3 { try workspace.drop("d\(index).txt", "doc \(index)") }
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .success)
            #expect(simulator.stats.runRequestsReceived == 3)
            let total = try await ledger.usageTotals(matching: UsageFilter(), by: .none)
            #expect(total.first?.totalTokens == simulator.stats.tokensServed)
            #expect(try await ledger.documents(matching: DocumentFilter()).allSatisfy { $0.state == .succeeded && $0.runPosts == 1 })
        }
    }

    @Test func maxDuration_withALookupOpen_leavesItRecovering_andTheNextRunResumesItWithoutResending() async throws {
        var faults = FaultPlan()
        faults.dropBeforeRunRate = 1.0
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, recoverDeadline: "1h")
            try workspace.drop("a.txt", "alpha")
            let (first, ledger) = try await workspace.run { $0.maxDuration = .milliseconds(300) }
            #expect(first.exitStatus == .success)
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state == .recovering)
            #expect(simulator.stats.runRequestsReceived == 1)
            // The next invocation resumes the lookup (and stops again at its own --max-duration): no second POST.
            let (second, again) = try await workspace.run { $0.maxDuration = .milliseconds(300) }
            #expect(second.exitStatus == .success)
            #expect(try await again.document(id: document.id)?.state == .recovering)
            #expect(simulator.stats.runRequestsReceived == 1)
        }
    }

    // MARK: - Lost responses that did run: found in Dify's logs, in Dify's time, never re-sent

    /// A blocking run whose response is lost after the run started, so no run id is known: only the logs can find it.
    func lostBlockingRun(_ configure: (inout FaultPlan) -> Void) async throws {
        var faults = FaultPlan()
        faults.dropBlockingAfterStartRate = 1.0
        configure(&faults)
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, extra: "", recoverDeadline: "20s")
            try String(contentsOfFile: workspace.specPath, encoding: .utf8)
                .replacingOccurrences(of: "  inputs: {language: de}", with: "  inputs: {language: de}\n  response_mode: blocking")
                .write(toFile: workspace.specPath, atomically: true, encoding: .utf8)
            for index in 0..<2 { try workspace.drop("d\(index).txt", "doc \(index)") }
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .success)
            #expect(simulator.stats.runRequestsReceived == 2)
            #expect(simulator.stats.runsStarted == 2)
            let documents = try await ledger.documents(matching: DocumentFilter())
            #expect(documents.allSatisfy { $0.state == .succeeded && $0.runPosts == 1 && $0.duplicateRuns == 0 },
                    "\(documents.map { ($0.state, $0.runPosts, $0.lastError?.message ?? "") })")
            // Every run Dify billed is in the ledger.
            let total = try await ledger.usageTotals(matching: UsageFilter(), by: .none)
            #expect(total.first?.totalTokens == simulator.stats.billed.tokens)
        }
    }

    @Test func lostBlockingRun_withTheClientClock2MinutesAheadOfDify_isFoundInTheLogs_notSentAgain() async throws {
        try await lostBlockingRun { $0.clockOffset = .seconds(-120) }
    }

    @Test func lostBlockingRun_withDifysClock60sAhead_isFoundInTheLogs_notSentAgain() async throws {
        try await lostBlockingRun { $0.clockOffset = .seconds(60) }
    }

    @Test func lostBlockingRun_onADifyThatListsRunsOnlyWhenFinished_isFoundOnceFinished_notSentAgain() async throws {
        try await lostBlockingRun {
            $0.logsOnlyWhenFinished = true
            $0.latency = .milliseconds(400)
        }
    }

    @Test func lostBlockingRun_whenTheLogsAnswer502Once_keepsLooking_notSentAgain() async throws {
        try await lostBlockingRun {
            $0.logsBadGatewayFirst = 1
            $0.logsNotFoundFirst = 1
        }
    }

    @Test func droppedStream_whoseRunDetailAnswers404Then502_keepsLooking_andRecoversTheRun() async throws {
        var faults = FaultPlan()
        faults.dropAfterStartRate = 1.0
        faults.runDetailNotFoundFirst = 1
        faults.runDetailBadGatewayFirst = 1
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", "alpha")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .success)
            #expect(simulator.stats.runRequestsReceived == 1)
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state == .succeeded && document.runPosts == 1)
        }
    }

    @Test func silenceBeforeWorkflowStarted_isLookedUp_notRepeatedInBlockingMode() async throws {
        var faults = FaultPlan()
        faults.silenceBeforeStart = .milliseconds(800)
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", "alpha")
            let (result, ledger) = try await workspace.run(timeouts: DifyClient.Timeouts(connect: .milliseconds(500), streamIdle: .milliseconds(300)))
            #expect(result.exitStatus == .success)
            #expect(simulator.stats.runRequestsReceived == 1)
            #expect(simulator.stats.runsStarted == 1)
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.state == .succeeded && document.runPosts == 1)
        }
    }

    @Test func gatewayHTML429Storm_isBoundedByMaxBackpressure_exit4_noSendCounted() async throws {
        var faults = FaultPlan()
        faults.gatewayRateLimitRate = 1.0
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, retry: "{max_attempts: 2, base_delay: 20ms, max_delay: 100ms, max_backpressure: 500ms}")
            try workspace.drop("a.txt", "alpha")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .unavailable)
            #expect(simulator.stats.runsStarted == 0)
            let document = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(document.runPosts == 0 && document.attempts == 0 && document.state == .failed)
        }
    }

    /// A resumed run goes on in the simulator, which looks for the resume every 20 ms, and ends there a moment later.
    /// `run` does not wait for a paused run, so the next `run` must find it ended: waits (deadline 30 s) until the
    /// simulator has ended `count` runs `succeeded`. Without this the test raced the simulator (it failed whenever the
    /// next `run` started and polled within those milliseconds).
    static func awaitResumedRunsEnded(_ simulator: DifySimulator, _ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while (simulator.stats.runsByStatus["succeeded"] ?? 0) < count {
            guard ContinuousClock.now < deadline else {
                Issue.record("the resumed run did not end in the simulator within 30 s")
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func pausedRun_isAwaitedWithOnePOST_runExits0_andTheNextRunRecordsItOnceResumed() async throws {
        var faults = FaultPlan()
        faults.pausedRunRate = 1.0
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", "alpha")
            let (first, ledger) = try await workspace.run()
            #expect(first.exitStatus == .success)
            let paused = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(paused.state == .paused && paused.pausedAt != nil && paused.runPosts == 1)
            #expect(simulator.stats.runRequestsReceived == 1)
            #expect(try await ledger.stateCounts().values.first?[.paused] == 1)
            // A human approves; the next run polls the paused run and writes its output. Still one POST.
            #expect(simulator.resumePausedRun(id: try #require(paused.workflowRunID)))
            try await Self.awaitResumedRunsEnded(simulator, 1)
            let (second, again) = try await workspace.run()
            #expect(second.exitStatus == .success)
            #expect(try await again.document(id: paused.id)?.state == .succeeded)
            #expect(simulator.stats.runRequestsReceived == 1)
            #expect(workspace.outputs() == ["a.txt.json"])
        }
    }

    @Test func pausedRun_withAnIdenticalCopy_runExits0WithOnePOST_andTheCopyIsSkippedOnceTheRunEnds() async throws {
        var faults = FaultPlan()
        faults.pausedRunRate = 1.0
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", "same bytes")
            try workspace.drop("b.txt", "same bytes")
            // `run` does not wait for a human: neither for the paused run nor for the copy held behind it (it would
            // otherwise run until --max-duration, 120 s here).
            let started = ContinuousClock.now
            let (first, ledger) = try await workspace.run { $0.maxDuration = .seconds(120) }
            #expect(ContinuousClock.now - started < .seconds(60))
            #expect(first.exitStatus == .success)
            let documents = try await ledger.documents(matching: DocumentFilter())
            let paused = try #require(documents.first { $0.state == .paused })
            #expect(documents.count == 2 && documents.filter { $0.state == .pending }.count == 1)
            #expect(simulator.stats.runRequestsReceived == 1)
            #expect(simulator.resumePausedRun(id: try #require(paused.workflowRunID)))
            try await Self.awaitResumedRunsEnded(simulator, 1)
            let (second, again) = try await workspace.run { $0.maxDuration = .seconds(120) }
            #expect(second.exitStatus == .success)
            let final = try await again.documents(matching: DocumentFilter())
            #expect(Set(final.map(\.state)) == [.succeeded, .skipped])
            #expect(simulator.stats.runRequestsReceived == 1, "the copy never ran")
            #expect(workspace.outputs() == ["a.txt.json", "b.txt.json"])
        }
    }
}

/// The SIGKILL loop of issue 10, short form (the long form is `Scripts/sigkill-loop.sh`): the real binary killed
/// at random moments at least 20 times while runs are in flight, streams drop, and Dify lists runs only once they
/// finished. Every file ends in exactly one state, no document ran more than `max_attempts` times at the server,
/// and the ledger's usage equals what the server billed.
@Suite(.serialized) struct SpendOnceSIGKILLTests {
    @Test func run_killedAtRandomMoments20Times_neverPaysMoreThanMaxAttempts_andUsageEqualsBilled() async throws {
        var faults = FaultPlan()
        faults.seed = 11
        faults.latency = .milliseconds(60)
        faults.latencyJitter = .milliseconds(120)
        faults.dropAfterStartRate = 0.2
        faults.logsOnlyWhenFinished = true
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 4,
                                          retry: "{max_attempts: 3, base_delay: 10ms, max_delay: 50ms}", recoverDeadline: "10s")
            let files = 32
            for index in 0..<files { try workspace.drop("k/file \(index).txt", documentText(index)) }
            var random = SeededRandom(seed: 5)
            var kills = 0
            for round in 0..<22 {
                let child = try Child(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment,
                                      stderrPath: workspace.scratch.file("kill-\(round).log"))
                try await Task.sleep(for: .milliseconds(Int64.random(in: 60...350, using: &random)))
                if child.process.isRunning { kills += 1 }
                child.signal(SIGKILL)
                _ = try await child.exitStatus()
            }
            #expect(kills >= 20)
            let last = try Child(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment,
                                 stderrPath: workspace.scratch.file("last.log"))
            let status = try await last.exitStatus(timeout: .seconds(90))
            #expect(status == 0 || status == 1, "\(last.stderr)")

            let ledger = try SQLiteLedger(path: workspace.dbPath)
            let documents = try await ledger.documents(matching: DocumentFilter())
            #expect(documents.count == files)
            #expect(documents.allSatisfy { [.succeeded, .unresolved, .paused, .dead].contains($0.state) },
                    "\(documents.map { ($0.path, $0.state) })")
            // One visible outcome per file.
            #expect(workspace.outputs().count + workspace.errorOutputs().count == files)
            for document in documents {
                let runs = simulator.stats.runsBySHA256[document.sha256 ?? ""] ?? 0
                #expect(runs <= 3 && runs <= document.runPosts, "\(document.path): \(runs) runs, \(document.runPosts) sends")
            }
            // Workflows: every run Dify billed is in the ledger.
            let total = try await ledger.usageTotals(matching: UsageFilter(), by: .none)
            let states = Dictionary(grouping: documents, by: \.state).mapValues(\.count)
            #expect((total.first?.totalTokens ?? 0) == simulator.stats.billed.tokens,
                    "states \(states); runs started at the server \(simulator.stats.runsStarted)")
        }
    }
}

/// Found by the attack helper (Scripts/attack/dup-after-unresolved.sh): a `run` that ended with exit 1 because runs were
/// left `unresolved` printed "succeeded 0, skipped 0, dead 0, rejected 0; 0 waiting" — nothing named what was wrong.
@Suite struct RunSummaryUnresolvedTests {
    @Test func runLeavingUnresolvedDocuments_namesThemInItsSummaryLine() async throws {
        var faults = FaultPlan()
        faults.dropAfterStartRate = 1.0   // billed, and a completion run cannot be looked up: unresolved
        try await withDifySimulator(SimulatorConfiguration(apps: [.completion(apiKey: "app-co")], faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, key: "app-co")
            try workspace.drop("a.txt", "alpha")
            let (result, _) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed)
            #expect(simulator.stats.runsStarted == 1)
            let line = RunReport.summaryLine(try #require(result.summaries.first))
            #expect(line.hasSuffix(": succeeded 0, skipped 0, dead 0, rejected 0, unresolved 1; 0 waiting"), "\(line)")
        }
    }
}

/// Found by the attack helper (Scripts/attack/dup-after-unresolved.sh): copies of one content were each sent once
/// the first ended `unresolved`, so one content was billed three times; README's money table promises one run.
@Suite struct UnresolvedCopiesTests {
    @Test func copiesOfAnUnresolvedDocument_waitWithIt_andAreNeverSent_untilItIsRetried() async throws {
        var faults = FaultPlan()
        faults.dropAfterStartRate = 1.0   // billed, and a completion run cannot be looked up: unresolved
        try await withDifySimulator(SimulatorConfiguration(apps: [.completion(apiKey: "app-co")], faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, key: "app-co", concurrency: 1)
            for name in ["a.txt", "b.txt", "c.txt"] { try workspace.drop(name, "the very same bytes") }
            let (first, ledger) = try await workspace.run()
            #expect(first.exitStatus == .documentsFailed)
            #expect(simulator.stats.runRequestsReceived == 1, "one content, one run request")
            var documents = try await ledger.documents(matching: DocumentFilter())
            let original = try #require(documents.first { $0.state == .unresolved })
            let copies = documents.filter { $0.id != original.id }
            #expect(copies.count == 2 && copies.allSatisfy { $0.state == .pending && $0.duplicateOf == original.id },
                    "\(documents.map { ($0.path, $0.state, $0.duplicateOf) })")
            #expect(first.summaries.first?.remaining == 0, "held copies wait for a human, as the original does")

            // A later run sends nothing either, and a new file of the same content joins the copies.
            try workspace.drop("d.txt", "the very same bytes")
            let (second, _) = try await workspace.run()
            #expect(second.exitStatus != .usage)
            #expect(simulator.stats.runRequestsReceived == 1)
            documents = try await ledger.documents(matching: DocumentFilter())
            #expect(documents.filter { $0.duplicateOf == original.id && $0.state == .pending }.count == 3)

            // Retrying the original (the operator accepts the risk) sends it once more; the copies still wait on it.
            #expect(try await ledger.requeue(ids: [original.id], from: [.unresolved]) == 1)
            _ = try await workspace.run()
            #expect(simulator.stats.runRequestsReceived == 2, "only the retried original was sent again")
            documents = try await ledger.documents(matching: DocumentFilter())
            #expect(documents.filter { $0.state == .pending }.count == 3)
        }
    }
}
