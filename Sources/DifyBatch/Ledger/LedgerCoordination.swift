/// The defaults for a ledger that one process serves at a time (SQLite: the per-job file lock keeps other
/// processes out, so there are no leases to take, confirm or take over).
extension Ledger {
    public var coordinatesProcesses: Bool { false }
    public func takeScannerLease(jobID: Int64) async throws -> Bool { true }
    public func takeOverExpired(jobID: Int64) async throws -> [DocumentRecord] { [] }
    public func confirmLease(documentID: Int64) async throws {}
    public func othersActive(jobID: Int64) async throws -> Bool { false }
}
