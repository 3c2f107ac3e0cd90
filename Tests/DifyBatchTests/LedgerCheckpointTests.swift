import Foundation
import Testing
@testable import DifyBatch

/// A command's last transactions live in the `-wal` file until the last connection closes; a process that exits
/// before its connections are closed leaves them there, and a ledger file moved or copied without its `-wal` loses
/// them (a helper saw a moved ledger without its identity row). `run`/`watch` end with ``SQLiteLedger/checkpoint()``.
@Suite struct LedgerCheckpointTests {
    @Test func checkpoint_copiesEveryCommittedTransactionIntoTheDatabaseFile_soTheFileAloneIsTheWholeLedger() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("l.sqlite")
        let ledger = try SQLiteLedger(path: path)
        _ = try await ledger.register(JobRegistration(name: "a", specPath: "/s.yaml", specHash: "h", baseURL: "http://x/v1",
                                                      difyUser: "u", inbox: "/in", outbox: "/out"))
        let identity = try await ledger.identity()

        // While the ledger is open its rows are in -wal: the database file alone does not hold them yet.
        try FileManager.default.copyItem(atPath: path, toPath: dir.file("before.sqlite"))
        let before = try SQLiteLedger(path: dir.file("before.sqlite"))
        #expect(try await before.jobs().isEmpty)
        #expect(try await before.identity().id != identity.id)

        #expect(ledger.checkpoint() == nil)
        let wal = try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int
        #expect(wal == 0, "the -wal is emptied")
        try FileManager.default.copyItem(atPath: path, toPath: dir.file("after.sqlite"))
        let after = try SQLiteLedger(path: dir.file("after.sqlite"))
        #expect(try await after.jobs().map(\.name) == ["a"])
        #expect(try await after.identity().id == identity.id, "the same ledger, not a new one")
    }
}
