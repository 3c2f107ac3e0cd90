import DifyBatch
@testable import DifyBatchPostgres
import Foundation
import PostgresNIO
import PostgresTestSupport
import Testing

/// A PostgreSQL ledger whose connections die under it (the server ends a session: a frozen process's transaction after
/// its lease, `pg_terminate_backend`, a restart) and a process that comes back to stale claims. Found with
/// Scripts/attack/pg-freeze-storm.sh (attack3).
@Suite struct PostgresConnectionLossTests {
    @Test(.timeLimit(.minutes(2)))
    func connectionEndedByTheServerMidStatement_theNextLedgerReadsAnswerInsteadOfHanging() async throws {
        // The storm's `run` processes hung for good after a transaction the server ended: the statement failed with
        // the server's FATAL while the connection was still closing, the connection went back to the pool, and the
        // next pool statement (the document's re-read) was written to it after it closed; postgres-nio drops that
        // write's failure, so the read never answered and `run` never ended. Each round ends a transaction's session
        // while its statement runs and reads through the pool at once, several times: each read answers (rows or a
        // LedgerError), and the pool serves again afterwards.
        try await TestPostgres.withLedger(owner: "host-a:1:1") { a, location in
            try await TestPostgres.withLedger(at: location, owner: "host-b:2:2") { b in
                let job = try await makeJob(a)
                let doc = try await a.insert(NewDocument(jobID: job.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
                for round in 0..<8 {
                    let started = AsyncStream<Int64>.makeStream()
                    // More readers than the pool has connections (8): a connection released by the failed transaction
                    // goes straight to a waiting reader, as in a busy process.
                    let answered = try await withThrowingTaskGroup(of: Int.self) { group in
                        for _ in 0..<12 {
                            group.addTask {
                                var answers = 0
                                for _ in 0..<15 {
                                    do { _ = try await a.document(id: doc.id) } catch is LedgerError {}
                                    answers += 1
                                }
                                return answers
                            }
                        }
                        group.addTask {
                            // Committed when run again on another connection, or failed: either way it answers.
                            _ = await Self.transactionEndedByTheServer(a, announcing: started.continuation)
                            return 0
                        }
                        // No pid: the transaction failed before it began (a dead connection from an earlier round).
                        var pids = started.stream.makeAsyncIterator()
                        if let pid = await pids.next() {
                            try await Task.sleep(for: .milliseconds(20 + 10 * round))
                            _ = try await b.rows("SELECT pg_terminate_backend(\(Int32(pid)))")
                        }
                        return try await group.reduce(0, +)
                    }
                    #expect(answered == 12 * 15, "round \(round): every read answered")
                }
                // The pool replaced the dead connections: the ledger works normally.
                #expect(try await a.document(id: doc.id)?.path == "a")
                #expect(try await a.claim(jobID: job.id, limit: 1, now: Date()).map(\.id) == [doc.id])
            }
        }
    }

    @Test func claimReadAfterTheLeaseWasTakenOver_returnsOnlyDocumentsThisProcessStillHolds() async throws {
        // A claim is an UPDATE, then a read of the claimed rows. Stopped in between for longer than its lease (the
        // storm caught one), a process read documents that another process had taken over and finished meanwhile,
        // and settled them again: their outbox files written twice, the source's disposal redone, then an illegal
        // `succeeded → failed`. The read now keeps only what this process still holds.
        try await TestPostgres.withLedger(owner: "host-a:1:1", lease: .seconds(1)) { a, location in
            try await TestPostgres.withLedger(at: location, owner: "host-b:2:2", lease: .seconds(30)) { b in
                let job = try await makeJob(a)
                let doc = try await a.insert(NewDocument(jobID: job.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
                let other = try await a.insert(NewDocument(jobID: job.id, path: "b", sha256: "2", size: 1, mtimeNanoseconds: 1))
                #expect(try await a.claim(jobID: job.id, limit: 2, now: Date()).map(\.id) == [doc.id, other.id])
                #expect(try await a.claimed([doc.id, other.id]).map(\.id) == [doc.id, other.id], "A holds both")
                // A is stopped past its 1 s lease: B takes both over and finishes one of them.
                var taken: [DocumentRecord] = []
                let by = ContinuousClock.now + .seconds(30)
                while taken.count < 2 && ContinuousClock.now < by {
                    try await Task.sleep(for: .milliseconds(100))
                    taken += try await b.takeOverExpired(jobID: job.id)
                }
                #expect(Set(taken.map(\.id)) == [doc.id, other.id])
                try await b.transition(doc.id, from: .uploading, to: .uploaded, [.uploadFileID("u-1")])
                try await b.transition(doc.id, from: .uploaded, to: .running, [])
                try await b.transition(doc.id, from: .running, to: .succeeded, [])
                // A comes back and reads what it claimed: nothing of it is A's any more.
                #expect(try await a.claimed([doc.id, other.id]).isEmpty, "documents another process took over are not returned")
                #expect(try await b.claimed([doc.id, other.id]).map(\.id) == [other.id], "B holds the one still in flight")
            }
        }
    }

    @Test func insertOfAFileVersionAnotherProcessRecorded_returnsThatDocument_insteadOfASecondRow() async throws {
        // The scanner-freeze attack: a scanner stopped past its scanner lease (or one taking the lease back with its
        // cache of known files from before) recorded the files the other process's scanner had recorded meanwhile;
        // 167 of 360 files got a second row, which ended `skipped` and overwrote the file's outbox result.
        try await TestPostgres.withLedger(owner: "host-a:1:1") { a, location in
            try await TestPostgres.withLedger(at: location, owner: "host-b:2:2") { b in
                let job = try await makeJob(a)
                let version = NewDocument(jobID: job.id, path: "in/x.pdf", sha256: "s1", size: 10, mtimeNanoseconds: 100, device: 5, inode: 7)
                let first = try await a.insert(version)
                let again = try await b.insert(version)
                #expect(again.id == first.id, "the version another process recorded is returned, not recorded twice")
                #expect(try await a.documents(path: "in/x.pdf").count == 1)
                // A changed file (another mtime, or replaced: another inode) is a new version, as for the scanner.
                var touched = version
                touched.mtimeNanoseconds = 200
                let second = try await b.insert(touched)
                #expect(second.id != first.id)
                var replaced = touched
                replaced.inode = 8
                let third = try await a.insert(replaced)
                #expect(third.id != second.id)
                #expect(try await a.documents(path: "in/x.pdf").count == 3)
                // Only the path's newest version counts: the first version's identity again is a new version.
                #expect(try await b.insert(version).id != first.id)
            }
        }
    }

    /// A transaction on `ledger` that announces its server process id and then runs a 20 s statement (only the first
    /// time: the ledger runs a transaction whose connection closed before its COMMIT again, and that run commits at
    /// once); how it ended (`committed`, or the code of the LedgerError it failed with).
    static func transactionEndedByTheServer(_ ledger: PostgresLedger, announcing pid: AsyncStream<Int64>.Continuation) async -> String {
        defer { pid.finish() }
        var runs = 0
        do {
            try await ledger.inTransaction { run in
                runs += 1
                guard runs == 1 else { return }
                pid.yield(try PostgresLedger.int64(try await run("SELECT pg_backend_pid()::bigint AS pid").first, "pid") ?? 0)
                _ = try await run("SELECT pg_sleep(20)")
            }
            return "committed"
        } catch let error as LedgerError {
            return "\(error.code)"
        } catch {
            return "\(error)"
        }
    }
}
