import Foundation

/// The defaults for a ledger that one process serves at a time (SQLite: the per-job file lock keeps other
/// processes out, so there are no leases to take, confirm or take over).
extension Ledger {
    public var coordinatesProcesses: Bool { false }
    public func takeScannerLease(jobID: Int64) async throws -> Bool { true }
    public func takeOverExpired(jobID: Int64) async throws -> [DocumentRecord] { [] }
    public func confirmLease(documentID: Int64) async throws {}
    public func othersActive(jobID: Int64) async throws -> Bool { false }

    /// One process holds every in-flight document of its job, so counting them and claiming is exact here.
    public func claim(jobID: Int64, limit: Int, now: Date, maxActive: Int?) async throws -> [DocumentRecord] {
        guard let maxActive else { return try await claim(jobID: jobID, limit: limit, now: now) }
        let active = try await inFlight(jobID: jobID).count
        return try await claim(jobID: jobID, limit: min(limit, maxActive - active), now: now)
    }
}
