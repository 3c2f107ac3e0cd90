import DifyKit

/// The hard cap on run POSTs for one document version (issue 10 rule 3).
///
/// `retry.max_attempts` caps the run requests ever made for a document version, counted in the ledger's
/// `documents.run_posts` in the same statement that moves the document to `running` (so a crash right after
/// the POST left still counts it). A send is given back only when Dify's answer proves no run started
/// (``FailurePolicy/runMayHaveStarted(_:)``); nothing else refunds it, across restarts. Every send that follows
/// a run whose outcome could not be established (`outcome_unknown`) is counted in `duplicate_runs`.
/// Only an explicit `dify-batch retry` gives a document a fresh budget.
public struct SendBudget: Sendable, Equatable {
    /// `retry.max_attempts` (default 5).
    public let maxSends: Int

    public init(maxSends: Int) { self.maxSends = maxSends }

    /// Whether another run POST may be sent for `document`.
    public func allowsSend(_ document: DocumentRecord) -> Bool { document.runPosts < maxSends }

    /// The ledger changes that go with the move to `running`, before the POST leaves.
    public func changesForSend(_ document: DocumentRecord) -> [DocumentChange] {
        var changes: [DocumentChange] = [.incrementRunPosts]
        if document.outcomeUnknown { changes += [.incrementDuplicateRuns, .outcomeUnknown(false)] }
        return changes
    }

    /// The ledger changes after the run POST failed with `error`: the send is given back only on proof that no
    /// run started (then the duplicate it was counted as is given back too).
    /// - Parameters:
    ///   - before: the document as it was before the send; `sent`: as the move to `running` left it.
    public func changesAfterFailure(before: DocumentRecord, sent: DocumentRecord, _ error: DifyError) -> [DocumentChange] {
        guard !FailurePolicy.runMayHaveStarted(error) else { return [] }
        var changes: [DocumentChange] = [.runPosts(max(0, sent.runPosts - 1))]
        if before.outcomeUnknown {
            changes += [.duplicateRuns(max(0, sent.duplicateRuns - 1)), .outcomeUnknown(true)]
        }
        return changes
    }

    /// Why a document cannot be sent again, for its `.error.json`.
    public func exhaustedMessage(_ document: DocumentRecord) -> String {
        "\(document.runPosts) run request(s) already sent for this file (retry.max_attempts: \(maxSends)); it is not sent again. Check the runs in Dify's logs, then `dify-batch retry` it if it should run once more"
    }
}
