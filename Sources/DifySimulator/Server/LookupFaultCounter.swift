import Synchronization

/// Counts lookups for the N-shot faults (``FaultPlan/runDetailNotFoundFirst`` and friends).
final class LookupFaultCounter: Sendable {
    enum Fault: Sendable { case notFound, badGateway }

    private struct Counts {
        var runDetail: [String: Int] = [:]
        var logs = 0
    }

    private let counts = Mutex(Counts())

    /// The fault for this `GET /workflows/run/{id}` (the n-th for this id), if any.
    func runDetailFault(id: String, notFoundFirst: Int, badGatewayFirst: Int) -> Fault? {
        guard notFoundFirst > 0 || badGatewayFirst > 0 else { return nil }
        let n = counts.withLock { c in
            c.runDetail[id, default: 0] += 1
            return c.runDetail[id]!
        }
        return Self.fault(n, notFoundFirst, badGatewayFirst)
    }

    /// The fault for this `GET /workflows/logs` (the n-th overall), if any.
    func logsFault(notFoundFirst: Int, badGatewayFirst: Int) -> Fault? {
        guard notFoundFirst > 0 || badGatewayFirst > 0 else { return nil }
        let n = counts.withLock { c in
            c.logs += 1
            return c.logs
        }
        return Self.fault(n, notFoundFirst, badGatewayFirst)
    }

    private static func fault(_ n: Int, _ notFoundFirst: Int, _ badGatewayFirst: Int) -> Fault? {
        if n <= notFoundFirst { return .notFound }
        if n <= notFoundFirst + badGatewayFirst { return .badGateway }
        return nil
    }
}
