import DifyKit
import Foundation

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

/// A workflow run that ended with status `failed` (HTTP 200): the node Dify named and the run's error text.
public struct RunFailure: Sendable, Equatable {
    /// The failing node's title (or id); nil when Dify did not name it (blocking responses, run detail lookups).
    public var node: String?
    /// `data.error` of the run ("" when Dify gave none).
    public var error: String

    public init(node: String?, error: String) {
        self.node = node
        self.error = error
    }

    /// Same node (both unnamed counts as the same) and the same error text, ignoring surrounding whitespace.
    func isSame(as other: RunFailure) -> Bool {
        node == other.node && error.trimmingCharacters(in: .whitespacesAndNewlines) == other.error.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

extension FailurePolicy {
    /// What a run that ended `failed` means, given the previous run of the same content that ended `failed` (from the
    /// ledger's attempts; nil when there is none). Issue 16: the input cannot change, so a run that fails with the
    /// same node and error text as the one before is not paid for again.
    ///
    /// | the failure                                                    | decision |
    /// |----------------------------------------------------------------|----------|
    /// | names a transient cause (rate limit, timeout, a 5xx, overload)  | `.retry` |
    /// | first failure of this content                                   | `.retry` |
    /// | same node and error text as the previous failure                | `.dead`  |
    /// | another node or another error text                              | `.retry` |
    public static func decideEndedRun(_ failure: RunFailure, previous: RunFailure?) -> FailureDecision {
        if namesTransientCause(failure.error) { return .retry }
        guard let previous else { return .retry }
        return failure.isSame(as: previous) ? .dead : .retry
    }

    /// The reason recorded when ``decideEndedRun(_:previous:)`` says `.dead`.
    public static let sameFailureTwiceReason = "failed the same way twice"

    /// Whether a node's error text names a cause that may pass by itself: a provider's rate limit or quota window
    /// (429), a timeout, an HTTP 5xx or an overloaded / unavailable service, a dropped connection.
    public static func namesTransientCause(_ text: String) -> Bool {
        let lower = text.lowercased()
        let phrases = ["rate limit", "ratelimit", "rate_limit", "too many requests", "timeout", "timed out", "time out",
                       "temporarily", "unavailable", "overloaded", "try again", "internal server error", "bad gateway",
                       "connection reset", "connection refused", "connection error", "connection aborted", "server error"]
        if phrases.contains(where: lower.contains) { return true }
        // An HTTP status written as a number on its own ("429", "status 503", "HTTP 502:"; 529 = provider overloaded).
        let statuses: Set<String> = ["429", "500", "502", "503", "504", "529"]
        var digits = ""
        for character in lower + " " {
            if character.isASCII && character.isNumber {
                digits.append(character)
            } else {
                if statuses.contains(digits) { return true }
                digits = ""
            }
        }
        return false
    }
}
