import Foundation

/// One write of a ``Ledger/write(_:)`` batch (issue 14). The writes of a batch are made in order in ONE
/// transaction, all or none: a document's adjacent durable steps (the upload's end, the send of its run and the
/// start of the run's attempt; the run's end, its usage and its stored result; the final state and its count in
/// the run) cost one commit instead of one each. Each case means exactly what the ``Ledger`` method of the same
/// name means, with the same checks (a transition or update of a document no longer in the expected state throws
/// `LedgerError.stateChanged`, and then nothing of the batch is written).
public enum LedgerWrite: Sendable, Equatable {
    /// ``Ledger/transition(_:from:to:_:)``.
    case transition(Int64, from: DocumentState, to: DocumentState, [DocumentChange])
    /// ``Ledger/update(_:in:_:)``.
    case update(Int64, in: DocumentState, [DocumentChange])
    /// ``Ledger/beginAttempt(documentID:runID:phase:)``; its id is in ``LedgerWriteResult/attemptIDs``.
    case beginAttempt(documentID: Int64, runID: Int64?, phase: AttemptPhase)
    /// ``Ledger/finishAttempt(_:_:)``.
    case finishAttempt(Int64, AttemptResult)
    /// An attempt row begun and ended at once: it began `elapsedMilliseconds` before this write and ends with it
    /// (issue 14: an upload's attempt row is written with the upload's end, not in a transaction of its own before
    /// the upload; an upload cut off by a crash leaves no row, and its document is requeued like any `uploading`
    /// leftover). Its id is not reported.
    case attempt(documentID: Int64, runID: Int64?, phase: AttemptPhase, elapsedMilliseconds: Int64, AttemptResult)
    /// ``Ledger/recordUsage(documentID:jobID:runID:difyRunID:_:)``.
    case recordUsage(documentID: Int64, jobID: Int64, runID: Int64?, difyRunID: String?, UsageAmounts)
    /// ``Ledger/storeResult(documentID:status:outputsJSON:)``.
    case storeResult(documentID: Int64, status: String, outputsJSON: String)
    /// ``Ledger/countInRun(runID:jobID:state:)``.
    case countInRun(runID: Int64, jobID: Int64, state: DocumentState)

    /// The changes a transition to `to` makes besides the caller's: a terminal state gets `finished_at` (unless
    /// the caller set one), a waiting or in-flight state clears it. Both stores apply this same rule.
    public static func transitionChanges(to: DocumentState, _ changes: [DocumentChange], now: Date) -> [DocumentChange] {
        var all = changes
        if to.isTerminal && !changes.contains(where: { if case .finishedAt = $0 { return true } else { return false } }) {
            all.append(.finishedAt(now))
        }
        if to == .pending || to == .failed || to.isInFlight {
            all.append(.finishedAt(nil))
        }
        return all
    }

    /// Throws `illegalTransition` for a transition the state table does not allow (checked before anything is written).
    func checkLegal() throws {
        if case .transition(let id, let from, let to, _) = self, !from.canTransition(to: to) {
            throw LedgerError(.illegalTransition, "document \(id): \(from.rawValue) → \(to.rawValue) is not a legal transition")
        }
    }
}

/// What a ``Ledger/write(_:)`` batch produced.
public struct LedgerWriteResult: Sendable {
    /// The document after each `transition`/`update` of the batch, in batch order.
    public var documents: [DocumentRecord] = []
    /// The id of each attempt begun by the batch, in batch order.
    public var attemptIDs: [Int64] = []

    public init(documents: [DocumentRecord] = [], attemptIDs: [Int64] = []) {
        self.documents = documents
        self.attemptIDs = attemptIDs
    }

    /// The document after the batch's last `transition`/`update`.
    public var document: DocumentRecord? { documents.last }
}

extension Array where Element == LedgerWrite {
    /// Throws `illegalTransition` when any transition of the batch is not allowed (nothing is written then).
    public func checkLegal() throws {
        for write in self { try write.checkLegal() }
    }
}
