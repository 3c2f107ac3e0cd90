import DifyBatch
import DifyBatchPostgres
import Foundation
import PostgresTestSupport
import Testing

/// The ledger's identity (schema 11), which `.dify-batch-owner` names: one per ledger, whoever asks and however often.
@Suite struct LedgerIdentityContractTests {
    @Test(arguments: StoreKind.allCases)
    func identity_isCreatedOnce_theSameForConcurrentCallers_andForEveryLaterCall(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            async let first = ledger.identity()
            async let second = ledger.identity()
            let (a, b) = try await (first, second)
            #expect(a.id == b.id)
            #expect(a.id.count == 32 && a.id.allSatisfy(\.isHexDigit), "\(a.id)")
            #expect(try await ledger.identity().id == a.id)
            #expect(!a.location.isEmpty)
        }
    }

    @Test func sqliteIdentity_travelsWithTheFile_andAnotherFileIsAnotherLedger() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("identity-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let id = try await SQLiteLedger(path: folder + "/a.sqlite").identity().id
        try FileManager.default.moveItem(atPath: folder + "/a.sqlite", toPath: folder + "/moved.sqlite")
        let moved = try await SQLiteLedger(path: folder + "/moved.sqlite").identity()
        #expect(moved.id == id && moved.location == folder + "/moved.sqlite")
        #expect(try await SQLiteLedger(path: folder + "/b.sqlite").identity().id != id)
    }

    @Test func postgresIdentity_isOneForEveryProcessSharingTheDatabase() async throws {
        try await TestPostgres.withLedger { ledger, location in
            let id = try await ledger.identity().id
            try await TestPostgres.withLedger(at: location, owner: "another-host:2:1") { other in
                let seen = try await other.identity().id
                #expect(seen == id)
            }
        }
    }
}
