import DifyKit

/// What one lookup of a sent run found (issue 10 rule 1).
public enum LookupEvidence: Sendable, Equatable {
    /// Run detail by id answered with this status.
    case run(RunStatus)
    /// The logs were searched through every page of the window and list no run of this document (yet). Not proof
    /// that it never ran: a Dify may list a run only once it has finished.
    case notListed
    /// The lookup failed (a 502, a timeout, a 404 that may later turn into the run): could not check.
    case couldNotCheck
    /// The app mode has no run-lookup API (completion, chat): the outcome can never be established.
    case cannotLookUp
    /// Dify's answer to the run POST itself proved no run started (nothing for recovery to find).
    case provedNotStarted
}

/// What recovery concludes from one piece of evidence.
public enum RecoveryVerdict: Sendable, Equatable {
    /// The run ended (succeeded, partial-succeeded, failed or stopped): record it, never send again.
    case finished
    /// The run exists and is still executing (or could not be checked / is not listed yet): look again later.
    case keepLooking
    /// The run waits for human input: `paused`, polled without a deadline.
    case paused
    /// Dify proved that no run started: it may be sent again, counted against the send budget as usual.
    case neverStarted
    /// Sent, and its outcome could not be established within the deadline: park as `unresolved`.
    case unresolved
}

/// The pure decision from lookup evidence to a verdict, on monotonic time (issue 10 rule 1).
///
/// Missing evidence never means "not sent": only a terminal status, `paused`, or a proof from the POST's own
/// answer ends a lookup early. Everything else keeps looking until this process has looked for a full
/// `deadline` on its own monotonic clock (a restart or a wall-clock jump can lengthen the search, never shorten it),
/// then parks the document as `unresolved`.
public struct RecoveryPolicy: Sendable, Equatable {
    /// `recover_deadline` (default 30m).
    public var deadline: Duration
    /// The first wait between lookups (doubles per lookup up to `maxInterval`).
    public var firstInterval: Duration
    /// The longest wait between lookups.
    public var maxInterval: Duration

    public init(deadline: Duration, firstInterval: Duration = .milliseconds(500), maxInterval: Duration = .seconds(15)) {
        self.deadline = deadline
        self.firstInterval = firstInterval
        self.maxInterval = max(firstInterval, maxInterval)
    }

    /// The verdict for `evidence` after this process has been looking for `lookingFor`.
    public func verdict(_ evidence: LookupEvidence, lookingFor: Duration) -> RecoveryVerdict {
        switch evidence {
        case .run(let status):
            if status.isTerminal { return .finished }
            if status == .paused { return .paused }
            return lookingFor < deadline ? .keepLooking : .unresolved
        case .notListed, .couldNotCheck:
            return lookingFor < deadline ? .keepLooking : .unresolved
        case .cannotLookUp:
            return .unresolved
        case .provedNotStarted:
            return .neverStarted
        }
    }

    /// The wait before lookup number `lookup + 1` (`lookup` ≥ 1), never past the deadline by more than one wait.
    public func interval(afterLookup lookup: Int) -> Duration {
        var interval = firstInterval
        for _ in 1..<max(1, lookup) {
            interval = interval * 2
            if interval >= maxInterval { return maxInterval }
        }
        return min(interval, maxInterval)
    }

    /// The wait before the next poll of a run that has been paused for `pausedFor`: half the time it has waited,
    /// at least `first`, at most 5 minutes (a backoff with no deadline: a human may take days).
    public static func pausedPollInterval(pausedFor: Duration, first: Duration) -> Duration {
        min(.seconds(300), max(first, pausedFor / 2))
    }
}
