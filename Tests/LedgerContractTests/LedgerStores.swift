import DifyBatch
import DifyBatchPostgres
import Foundation
import PostgresTestSupport
import Synchronization
import Testing

/// The stores the contract suite runs against.
enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite, postgres
    var description: String { rawValue }
}

/// A settable clock for the ledger's timestamps.
final class ContractClock: Sendable {
    private let value: Mutex<Date>
    init(_ start: Date = Date(timeIntervalSince1970: 1_795_000_000)) { value = Mutex(start) }
    var now: Date { value.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { value.withLock { $0 = $0.addingTimeInterval(seconds) } }
    var closure: @Sendable () -> Date { { self.now } }
}

/// Runs `body` against a fresh ledger of `kind` (nothing for PostgreSQL when no server is configured locally).
func withStore(_ kind: StoreKind, now: @escaping @Sendable () -> Date = { Date() }, _ body: (any Ledger) async throws -> Void) async throws {
    switch kind {
    case .sqlite:
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("contract-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try await body(try SQLiteLedger(path: folder + "/ledger.sqlite", now: now))
    case .postgres:
        try await TestPostgres.withLedger(now: now) { ledger, _ in try await body(ledger) }
    }
}

func makeJob(_ ledger: any Ledger, name: String = "invoices") async throws -> JobRecord {
    try await ledger.register(JobRegistration(name: name, specPath: "/jobs/\(name).yaml", specHash: "h", baseURL: "http://127.0.0.1:1/v1",
                                              difyUser: "dify-batch", inbox: "/in/\(name)", outbox: "/out/\(name)"))
}
