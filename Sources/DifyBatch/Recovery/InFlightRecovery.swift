import DifyKit
import Foundation

/// Resolves a sent run whose outcome is not known (a lost response, or what a dead process left `running` /
/// `recovering`), and polls `paused` runs. It never sends a run: it looks the run up (``RunLocator``) and lets
/// ``RecoveryPolicy`` decide, until the run is found ended, found paused, or this process has looked for a full
/// `recover_deadline` on its own monotonic clock — then the document is parked `unresolved`.
struct InFlightRecovery {
    let processor: DocumentProcessor

    var context: JobContext { processor.context }
    var spec: JobSpec { context.spec }

    /// `document` is `recovering`.
    func recover(_ document: DocumentRecord) async throws -> DocumentOutcome {
        let ledger = context.ledger
        let attempt = try await processor.beginAttempt(document.id, .recover)
        let policy = RecoveryPolicy(deadline: spec.recoverDeadline, firstInterval: context.recoveryPollInterval)
        let started = context.clock.instant()
        guard context.preflight.mode == .workflow else {
            // Completion and chat apps have no run-lookup API: the outcome can never be established; usage unknown.
            try await processor.finishAttempt(attempt, AttemptResult(outcome: "unresolved",
                                                                     message: "a \(context.preflight.mode.rawValue) run cannot be looked up"))
            return try await processor.unresolved(document, from: .recovering,
                                                  reason: "a \(context.preflight.mode.rawValue) app's runs cannot be looked up through the API (its usage is unknown)")
        }
        let locator = RunLocator(client: context.client, user: spec.dify.user, fileVariable: context.preflight.fileVariable?.variable ?? "")
        var current = document
        var lookups = 0
        var lastProblem = "no run of this document was found yet"
        while true {
            try Task.checkCancellation()
            if context.lookupStop.isStopped {
                try await processor.finishAttempt(attempt, AttemptResult(outcome: "interrupted",
                                                                         message: "the process stopped while looking; the next run resumes the lookup"))
                processor.logger(current).info("stopping while the lost run is looked up; it stays recovering for the next invocation")
                return .interrupted
            }
            lookups += 1
            let evidence: LookupEvidence
            var found: WorkflowRunDetail?
            if let runID = current.workflowRunID {
                switch try await locator.detail(id: runID) {
                case .detail(let detail):
                    found = detail
                    evidence = .run(detail.status)
                    lastProblem = "run \(runID) is still \(detail.status.rawValue)"
                case .failed(let error):
                    if error.classification == .configuration {
                        try await processor.finish(attempt, error)
                        return .stopJob(JobStop(.configuration, job: spec.name, error.message))
                    }
                    evidence = .couldNotCheck
                    lastProblem = "run \(runID) could not be checked (\(error.message))"
                    processor.logger(current).info("run detail unavailable (\(error.message)); looking again")
                }
            } else if let sentAt = current.runSentAt, let search = searchLogs(current, locator: locator, sentAt: sentAt) {
                switch try await search() {
                case .found(let runID):
                    current = try await ledger.update(current.id, in: .recovering, [.workflowRunID(runID)])
                    processor.logger(current).info("found the lost run \(runID) in Dify's logs")
                    continue
                case .notListed:
                    evidence = .notListed
                    lastProblem = "no run of this document is listed in Dify's logs (±15 min around the send, user \(spec.dify.user))"
                case .couldNotCheck(let problem):
                    evidence = .couldNotCheck
                    lastProblem = problem
                }
            } else {
                evidence = .cannotLookUp
                lastProblem = "neither a run id nor the upload and send time are known"
            }
            let lookingFor = context.clock.instant() - started
            switch policy.verdict(evidence, lookingFor: lookingFor) {
            case .finished:
                guard let detail = found, let runID = current.workflowRunID else { continue }
                // A failed run keeps its error text (compared with the next failure: FailurePolicy.decideEndedRun).
                let failedText = detail.status == .failed ? (detail.error ?? "") : nil
                try await processor.finishAttempt(attempt, AttemptResult(outcome: detail.status.isSuccess ? "ok" : "failed", httpStatus: 200,
                                                                         message: failedText ?? "recovered run \(runID): \(detail.status.rawValue)"))
                processor.logger(current).info("recovered the lost run \(runID) (\(detail.status.rawValue)) without running it again")
                return try await processor.finishRun(current, result: Self.result(detail, taskID: current.taskID),
                                                     latencyMilliseconds: detail.elapsedTime.map { Int($0 * 1000) })
            case .paused:
                try await processor.finishAttempt(attempt, AttemptResult(outcome: "paused", httpStatus: 200, message: "run is paused"))
                return try await processor.pause(current, from: .recovering, runID: current.workflowRunID ?? "")
            case .neverStarted, .unresolved:
                try await processor.finishAttempt(attempt, AttemptResult(outcome: "unresolved", message: lastProblem))
                return try await processor.unresolved(current, from: .recovering,
                                                      reason: "\(lastProblem) after looking for \(HumanDuration.format(lookingFor)) (recover_deadline \(HumanDuration.format(spec.recoverDeadline)))")
            case .keepLooking:
                try await sleep(policy.interval(afterLookup: lookups))
            }
        }
    }

    /// One poll of a `paused` run; reschedules the next poll (backoff up to 5 minutes, no deadline).
    func pollPaused(_ document: DocumentRecord) async throws -> DocumentOutcome {
        guard let runID = document.workflowRunID else {
            return try await processor.unresolved(document, from: .paused, reason: "a paused run without a run id")
        }
        let locator = RunLocator(client: context.client, user: spec.dify.user, fileVariable: context.preflight.fileVariable?.variable ?? "")
        if case .detail(let detail) = try await locator.detail(id: runID), detail.status.isTerminal {
            processor.logger(document).info("the paused run \(runID) ended \(detail.status.rawValue)")
            return try await processor.finishRun(document, result: Self.result(detail, taskID: document.taskID),
                                                 latencyMilliseconds: detail.elapsedTime.map { Int($0 * 1000) })
        }
        let now = context.clock.now()
        let pausedFor = Duration.seconds(now.timeIntervalSince(document.pausedAt ?? now))
        let next = RecoveryPolicy.pausedPollInterval(pausedFor: pausedFor, first: context.recoveryPollInterval)
        let moved = try await context.ledger.update(document.id, in: .paused, [.nextAttemptAt(now.addingTimeInterval(next.seconds))])
        return .settled(moved.state)
    }

    /// Sleeps in short steps so a stop request ends the wait promptly.
    private func sleep(_ duration: Duration) async throws {
        var left = duration
        while left > .zero && !context.lookupStop.isStopped {
            let step = min(left, .milliseconds(200))
            try await context.clock.sleep(for: step)
            left -= step
        }
    }

    static func result(_ detail: WorkflowRunDetail, taskID: String?) -> RunResult {
        RunResult(mode: .workflow, status: detail.status, outputs: detail.outputs, error: detail.error,
                  workflowRunID: detail.id, taskID: taskID, usage: Usage(totalTokens: detail.totalTokens, source: .runDetail),
                  elapsedTime: detail.elapsedTime)
    }
}
