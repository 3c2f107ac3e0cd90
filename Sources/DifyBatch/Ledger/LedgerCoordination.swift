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
        try await claim(jobID: jobID, limit: try await cappedLimit(limit, jobID: jobID, maxActive: maxActive), now: now)
    }

    /// `limit`, cut to what `maxActive` leaves beside the job's documents in flight (nil: no cap).
    func cappedLimit(_ limit: Int, jobID: Int64, maxActive: Int?) async throws -> Int {
        guard let maxActive else { return limit }
        return min(limit, maxActive - (try await inFlight(jobID: jobID).count))
    }
}
