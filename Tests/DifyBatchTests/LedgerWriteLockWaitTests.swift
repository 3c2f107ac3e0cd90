import Foundation
import GRDB
import Testing
@testable import DifyBatch

/// Writes waiting for another program's write lock (an `sqlite3` shell's `BEGIN IMMEDIATE`) must not hold the
/// cooperative threads: with every thread asleep in SQLite's busy handler nothing else runs, not even the SIGTERM
/// handler (attack `Scripts/attack/held-lock.sh`: a `watch` ignored SIGTERM for the whole 60 s of the lock).
@Suite struct LedgerWriteLockWaitTests {
    @Test func writesWaitingForAnotherProgramsLock_leaveTheCooperativeThreadsFree_andLandOnceItIsReleased() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("ledger.sqlite")
        let ledger = try SQLiteLedger(path: path, busyTimeout: 120)
        let job = try await ledger.register(JobRegistration(name: "j", specPath: "/s.yaml", specHash: "h", baseURL: "http://x/v1",
                                                           difyUser: "u", inbox: "/in", outbox: "/out"))
        // The hold ends by itself after 90 s: long enough that a suite starving this process's threads (CI, two
        // helpers building beside it: 38 s once) still lets the writers start; with the bug they never can.
        let holder = WriteLockHolder(path: path, begin: "BEGIN IMMEDIATE", holdAtMost: 90)
        #expect(holder.waitUntilLocked())
        let before = ledger.writeTransactions
        // More waiting writers than the pool has threads.
        let writers = ProcessInfo.processInfo.activeProcessorCount * 2 + 2
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<writers {
                group.addTask {
                    _ = try await ledger.insert(NewDocument(jobID: job.id, path: "f\(i).txt", sha256: "s\(i)", size: 1, mtimeNanoseconds: 0))
                }
            }
            // Needs a cooperative thread while every writer waits: releases the lock once all of them have started.
            group.addTask {
                let deadline = ContinuousClock.now + .seconds(150)
                while ledger.writeTransactions - before < writers, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(10))
                }
                holder.release()
            }
            try await group.waitForAll()
        }
        #expect(holder.releasedByUs, "the lock was held until its own 90 s limit: the waiting writes starved the other tasks")
        let rows = try await DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM documents") }
        #expect(rows == writers)
    }
}

@Suite struct LedgerWriteFailureTests {
    @Test func aWriteRefusedByAnotherProgramsLock_isNamedAsTheLock_notAsAFullDisk() {
        let busy = LedgerWriteFailure.message(ledger: "/var/l.sqlite", error: DatabaseError(resultCode: .SQLITE_BUSY, message: "database is locked"))
        #expect(busy.contains("/var/l.sqlite stayed locked by another program") && busy.contains("busy timeout") && !busy.contains("free space"), "\(busy)")
        let full = LedgerWriteFailure.message(ledger: "/var/l.sqlite", error: DatabaseError(resultCode: .SQLITE_FULL, message: "database or disk is full"))
        #expect(full.contains("could not be written") && full.contains("free space"), "\(full)")
    }
}
