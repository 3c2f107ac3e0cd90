import Logging

/// Sorts documents left in flight by a process that is gone (crashed, killed, or whose lease expired): those
/// whose run was never sent go back to the queue; those with a sent run are returned for recovery, which looks
/// the run up before anything is sent again.
enum LeftoverTriage {
    /// Requeues `uploading`/`uploaded` documents (the attempt given back); returns the `running`/`recovering` ones.
    static func requeueUnsent(_ leftovers: [DocumentRecord], ledger: any Ledger, logger: Logger) async throws -> [DocumentRecord] {
        var toRecover: [DocumentRecord] = []
        for document in leftovers {
            switch document.state {
            case .uploading, .uploaded:
                // Nothing was sent for a run: the upload is simply made again (or reused).
                let moved = try await ledger.transition(document.id, from: document.state, to: .pending,
                                                        document.resultStored ? [] : [.attempts(max(0, document.attempts - 1))])
                logger.info("requeued \(moved.path) left \(document.state.rawValue) by an earlier process",
                            metadata: ["path": "\(moved.path)", "document": .stringConvertible(moved.id)])
            case .running, .recovering:
                toRecover.append(document)
            default:
                break
            }
        }
        return toRecover
    }
}
