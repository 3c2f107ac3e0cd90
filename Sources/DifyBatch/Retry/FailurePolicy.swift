import DifyKit

/// Where in a document's turn a request failed.
public enum FailurePhase: String, Sendable, Equatable, CaseIterable {
    /// `POST /files/upload`.
    case upload
    /// The run POST (workflow, completion or chat).
    case run
}

/// What a failure means for the document, decided in one table (issue 10, architecture "One table decides what a
/// failure means"). DifyKit classifies facts; this maps them to an action.
public enum FailureDecision: Sendable, Equatable {
    /// A counted failure: `failed` with exponential backoff, `dead` when out of attempts.
    case retry
    /// 429 / Dify's concurrency cap: wait on the job's shared backpressure state; uses no attempt and no send.
    case backOff
    /// Retrying cannot help: `dead` with an `.error.json`.
    case dead
    /// Stop the job (exit 3 for configuration, 4 for unreachable/quota); the document is put back.
    case stopJob(JobStop.Reason, unreachable: Bool)
    /// The run request may have started a run and its outcome is unknown: look it up, never re-send blindly.
    case recover
    /// Dify does not know our upload ("Invalid upload file"): upload again, then run.
    case uploadAgain
}

/// The one table from (error facts, phase) to a ``FailureDecision``, plus the fact the send budget needs:
/// whether the failed request may have started a run.
public enum FailurePolicy {
    /// The decision for `error` in `phase`.
    public static func decide(_ error: DifyError, phase: FailurePhase) -> FailureDecision {
        if error.code == .transport && !error.requestSent {
            return .stopJob(.unavailable, unreachable: true)
        }
        switch error.classification {
        case .backpressure: return .backOff
        case .configuration: return .stopJob(.configuration, unreachable: false)
        case .quota: return .stopJob(.unavailable, unreachable: false)
        case .permanent: return .dead
        case .invalidUploadFile: return phase == .run ? .uploadAgain : .retry
        case .ambiguous: return phase == .run ? .recover : .retry
        case .retryable: return .retry
        }
    }

    /// Whether a failed run POST may have started a run (and so counts against `max_attempts` for good): DifyKit's
    /// fact ``DifyError/runMayHaveStarted``. Proof that no run started is only a request that never left or an HTTP
    /// 4xx before any stream event (every 429 included); a 5xx, a timeout, a broken or stalled stream, an in-stream
    /// `error` event or an undecodable 200 may have run and been billed.
    public static func runMayHaveStarted(_ error: DifyError) -> Bool { error.runMayHaveStarted }
}
