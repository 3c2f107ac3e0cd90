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

    /// attack4: `dify-batch status` next to another program's open read transaction took its whole busy timeout
    /// (10 s) in this checkpoint, holding the write lock meanwhile: the running daemon could not write.
    @Test func checkpoint_withAnotherProgramReading_returnsAtOnce_insteadOfHoldingTheWriteLockForTheBusyTimeout() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("l.sqlite")
        let daemon = try SQLiteLedger(path: path)  // stays open, like a running `watch`
        _ = try await daemon.register(JobRegistration(name: "a", specPath: "/s.yaml", specHash: "h", baseURL: "http://x/v1",
                                                      difyUser: "u", inbox: "/in", outbox: "/out"))
        // An sqlite3 shell (or a backup tool) reading in a transaction.
        let reader = WriteLockHolder(path: path, begin: "BEGIN; SELECT count(*) FROM jobs", holdAtMost: 120)
        #expect(reader.waitUntilLocked())
        defer { reader.release() }
        _ = try await daemon.register(JobRegistration(name: "b", specPath: "/t.yaml", specHash: "h", baseURL: "http://x/v1",
                                                      difyUser: "u", inbox: "/in2", outbox: "/out2"))
        // `dify-batch status`: reads only, then checkpoints (the slow side is very slow: a 60 s busy timeout).
        let status = try SQLiteLedger(path: path, busyTimeout: 60)
        #expect(try await status.jobs().count == 2)
        let clock = ContinuousClock()
        let start = clock.now
        let error = status.checkpoint()
        #expect(clock.now - start < .seconds(45), "returned at once, not after the busy timeout")
        #expect(error != nil, "the reader keeps the -wal from being emptied: left for a later close")
    }
}
