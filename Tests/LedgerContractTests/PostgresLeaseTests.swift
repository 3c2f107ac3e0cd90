import DifyBatch
@testable import DifyBatchPostgres
import Foundation
import Logging
import PostgresNIO
import PostgresTestSupport
import Synchronization
import Testing

/// Several processes on one PostgreSQL ledger: each test plays two or three processes (different lease owners).
@Suite struct PostgresLeaseTests {
    @Test func claim_byTwoProcessesAtOnce_neverGivesOneDocumentTwice_andLeasesEachToItsClaimer() async throws {
        try await TestPostgres.withLedger(owner: "host-a:1:1") { a, location in
            try await TestPostgres.withLedger(at: location, owner: "host-b:2:2") { b in
                let job = try await makeJob(a)
                for index in 0..<200 {
                    _ = try await a.insert(NewDocument(jobID: job.id, path: "f\(index)", sha256: "\(index)", size: 1, mtimeNanoseconds: 1))
                }
                var claimedByA: [Int64] = []
                var claimedByB: [Int64] = []
                while true {
                    async let fromA = a.claim(jobID: job.id, limit: 7, now: Date())
                    async let fromB = b.claim(jobID: job.id, limit: 7, now: Date())
                    let (x, y) = try await (fromA, fromB)
                    if x.isEmpty && y.isEmpty { break }
                    claimedByA += x.map(\.id)
                    claimedByB += y.map(\.id)
                }
                #expect(claimedByA.count + claimedByB.count == 200)
                #expect(Set(claimedByA + claimedByB).count == 200)
                #expect(Set(claimedByA).isDisjoint(with: claimedByB))
                // B cannot settle what A holds: the change is fenced on the lease.
                if let held = claimedByA.first {
                    do {
                        try await b.transition(held, from: .uploading, to: .pending, [])
                        Issue.record("another process's document was changed")
                    } catch let error as LedgerError {
                        #expect(error.code == .leaseLost)
                    }
                    try await a.transition(held, from: .uploading, to: .pending, [])
                }
                #expect(try await a.othersActive(jobID: job.id), "B holds documents")
                #expect(try await b.takeOverExpired(jobID: job.id).isEmpty, "live leases are not taken over")
            }
        }
    }

    @Test func expiredLease_isTakenOverOnce_andTheLoserCannotWriteOrSettle() async throws {
        // A's leases last 8 s and are never renewed (no heartbeat runs here): A plays a process stopped with SIGSTOP.
        // (8 s, not 1 s: the steps before the wait must fit inside the lease on a loaded machine.)
        try await TestPostgres.withLedger(owner: "host-a:1:1", lease: .seconds(8)) { a, location in
            try await TestPostgres.withLedger(at: location, owner: "host-b:2:2") { b in
                try await TestPostgres.withLedger(at: location, owner: "host-c:3:3") { c in
                    let job = try await makeJob(a)
                    let doc = try await a.insert(NewDocument(jobID: job.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
                    let claimed = try await a.claim(jobID: job.id, limit: 1, now: Date())
                    #expect(claimed.map(\.id) == [doc.id])
                    try await a.transition(doc.id, from: .uploading, to: .uploaded, [.uploadFileID("f")])
                    try await a.transition(doc.id, from: .uploaded, to: .running, [.runSentAt(Date()), .workflowRunID("run-1")])
                    #expect(try await b.takeOverExpired(jobID: job.id).isEmpty)
                    try await a.confirmLease(documentID: doc.id)   // still A's

                    // Wait (bounded) until the database's clock passes A's lease.
                    var taken: [DocumentRecord] = []
                    var taker: PostgresLedger?
                    let expiredBy = ContinuousClock.now + .seconds(60)
                    while taken.isEmpty && ContinuousClock.now < expiredBy {
                        try await Task.sleep(for: .milliseconds(100))
                        async let byB = b.takeOverExpired(jobID: job.id)
                        async let byC = c.takeOverExpired(jobID: job.id)
                        let (x, y) = try await (byB, byC)
                        #expect(x.isEmpty || y.isEmpty, "exactly one process takes an expired document over")
                        taken = x + y
                        taker = !x.isEmpty ? b : (!y.isEmpty ? c : nil)
                    }
                    #expect(taken.map(\.id) == [doc.id])
                    #expect(taken.first?.state == .running && taken.first?.workflowRunID == "run-1", "the taker sees the sent run to look up")

                    // A wakes up: it notices the lost lease before writing anything, and cannot settle the document.
                    do {
                        try await a.confirmLease(documentID: doc.id)
                        Issue.record("a lost lease was confirmed")
                    } catch let error as LedgerError {
                        #expect(error.code == .leaseLost)
                    }
                    do {
                        try await a.transition(doc.id, from: .running, to: .succeeded, [])
                        Issue.record("the process that lost its lease settled the document")
                    } catch let error as LedgerError {
                        #expect(error.code == .leaseLost)
                    }
                    #expect(try await a.renewLeases() == 0, "A holds nothing any more")
                    // The taker settles it: A, one step later, still finds the document lost, not merely changed.
                    try await #require(taker).transition(doc.id, from: .running, to: .succeeded, [])
                    do {
                        try await a.update(doc.id, in: .running, [.workflowRunID("run-1")])
                        Issue.record("the process that lost its lease changed a document the taker settled")
                    } catch let error as LedgerError {
                        #expect(error.code == .leaseLost, "\(error)")
                    }
                }
            }
        }
    }

    @Test func processFrozenInsideATransaction_holdsNoDocumentOrClaimLockPastItsLease() async throws {
        // A process stopped (SIGSTOP, a partition) between two statements of one of its transactions keeps the
        // transaction open at the server with the rows it changed locked. The others' `FOR UPDATE SKIP LOCKED` skips a
        // locked row and the claim's advisory lock makes them wait, so before the fix they never took such a
        // document over (CI, stop 19: one document held for 90 s). Each ledger transaction sets PostgreSQL's
        // idle_in_transaction_session_timeout to the lease, so the server ends such a transaction then, freeing the row.
        let lease = Duration.seconds(2)
        try await TestPostgres.withLedger(owner: "host-a:1:1", lease: lease) { a, location in
            try await TestPostgres.withLedger(at: location, owner: "host-b:2:2") { b in
                let job = try await makeJob(a)
                let doc = try await a.insert(NewDocument(jobID: job.id, path: "a", sha256: "1", size: 1, mtimeNanoseconds: 1))
                _ = try await a.insert(NewDocument(jobID: job.id, path: "b", sha256: "2", size: 1, mtimeNanoseconds: 1))
                #expect(try await a.claim(jobID: job.id, limit: 1, now: Date()).map(\.id) == [doc.id])
                // A's frozen transaction, through the ledger's own transaction path: it changed the document's row and
                // holds the job's claim lock, then stops until woken.
                let locked = AsyncStream<Void>.makeStream()
                let woken = AsyncStream<Void>.makeStream()
                let ended = try await withThrowingTaskGroup(of: String.self) { group in
                    group.addTask {
                        let runs = Atomic<Int>(0)
                        do {
                            try await a.inTransaction { run in
                                guard runs.add(1, ordering: .relaxed).newValue == 1 else {
                                    // Run again on another connection: the first one never committed.
                                    _ = try await run("SELECT 1")
                                    return
                                }
                                _ = try await run("UPDATE documents SET last_error_message = 'frozen' WHERE id = \(doc.id)")
                                _ = try await run("SELECT pg_advisory_xact_lock(1684171370, \(Int32(truncatingIfNeeded: job.id)))")
                                locked.continuation.yield()
                                var wake = woken.stream.makeAsyncIterator()
                                await wake.next()
                                _ = try await run("SELECT 1")
                            }
                            return "committed after \(runs.load(ordering: .relaxed)) run(s)"
                        } catch let error as LedgerError {
                            return "\(error.code): \(error.message)"
                        }
                    }
                    var iterator = locked.stream.makeAsyncIterator()
                    await iterator.next()
                    #expect(try await b.takeOverExpired(jobID: job.id).isEmpty, "a live lease is not taken over")
                    // Lease (2 s) plus the server's idle limit (2 s), bounded at 30 s for a loaded machine; without the
                    // limit the frozen transaction holds the row until it wakes.
                    var taken: [DocumentRecord] = []
                    let by = ContinuousClock.now + .seconds(30)
                    while taken.isEmpty && ContinuousClock.now < by {
                        try await Task.sleep(for: .milliseconds(100))
                        taken = try await b.takeOverExpired(jobID: job.id)
                    }
                    #expect(taken.map(\.id) == [doc.id], "the frozen process's document is taken over after its lease")
                    if !taken.isEmpty {
                        // The claim lock it held is free too: another process claims (maxActive takes that lock).
                        let claimed = try await b.claim(jobID: job.id, limit: 1, now: Date(), maxActive: 4)
                        #expect(claimed.map(\.path) == ["b"])
                    }
                    // The frozen process wakes: its transaction is gone, so its next statement fails at once (it used to
                    // wait forever: postgres-nio drops the failure of a query written to a closed connection), and the
                    // transaction, which never committed, runs again on another connection.
                    woken.continuation.yield()
                    return try await group.next() ?? "?"
                }
                #expect(ended == "committed after 2 run(s)", "\(ended)")
                let frozenChange = try await a.documents(matching: DocumentFilter()).first { $0.id == doc.id }?.lastError?.message
                #expect(frozenChange != "frozen", "the frozen transaction was rolled back, never committed")
            }
        }
    }

    @Test func scannerLease_isHeldByOneProcessAtATime_andPassesOnWhenReleased() async throws {
        try await TestPostgres.withLedger(owner: "host-a:1:1") { a, location in
            try await TestPostgres.withLedger(at: location, owner: "host-b:2:2") { b in
                let job = try await makeJob(a)
                #expect(try await a.takeScannerLease(jobID: job.id))
                #expect(try await !b.takeScannerLease(jobID: job.id))
                #expect(try await a.takeScannerLease(jobID: job.id), "the holder renews it")
                #expect(try await b.othersActive(jobID: job.id), "B sees A scanning")
                #expect(try await !a.othersActive(jobID: job.id))
                try await a.releaseLeases()
                #expect(try await b.takeScannerLease(jobID: job.id))
                #expect(try await !a.takeScannerLease(jobID: job.id))
            }
        }
    }

    @Test func prepare_refusesANewerSchema_andADatabaseThatIsNotALedger() async throws {
        try await TestPostgres.withLedger(owner: "a") { ledger, location in
            try await TestPostgres.admin(location) { client in
                try await client.query("UPDATE ledger_meta SET value = '999' WHERE key = 'schema_version'")
            }
            do {
                try await ledger.prepare()
                Issue.record("a newer schema was accepted")
            } catch let error as LedgerError {
                #expect(error.code == .schemaTooNew)
                #expect("\(error)".contains("upgrade dify-batch"))
            }
        }
        guard let server = TestPostgres.server() else { return }
        let foreign = try await TestPostgres.createDatabase(on: server)
        try await TestPostgres.admin(foreign) { client in try await client.query("CREATE TABLE customers (id int)") }
        do {
            try await TestPostgres.withLedger(at: foreign, owner: "a") { _ in Issue.record("a foreign database was taken as a ledger") }
        } catch let error as LedgerError {
            #expect(error.code == .cannotOpen)
        }
        await TestPostgres.dropDatabase(foreign, on: server)
    }

    @Test func maxActive_capsDocumentsInFlightAcrossProcessesClaimingAtOnce() async throws {
        try await TestPostgres.withLedger(owner: "host-a:1:1") { a, location in
            try await TestPostgres.withLedger(at: location, owner: "host-b:2:2") { b in
                let job = try await makeJob(a)
                for index in 0..<50 {
                    _ = try await a.insert(NewDocument(jobID: job.id, path: "f\(index)", sha256: "\(index)", size: 1, mtimeNanoseconds: 1))
                }
                for _ in 0..<5 {
                    async let x = a.claim(jobID: job.id, limit: 4, now: Date(), maxActive: 6)
                    async let y = b.claim(jobID: job.id, limit: 4, now: Date(), maxActive: 6)
                    _ = try await (x, y)
                }
                #expect(try await a.inFlight(jobID: job.id).count == 6)
            }
        }
    }

    @Test func renewLeases_renewsEveryHeldDocument_andReleasingLetsOthersTakeOverAtOnce() async throws {
        try await TestPostgres.withLedger(owner: "host-a:1:1") { a, location in
            try await TestPostgres.withLedger(at: location, owner: "host-b:2:2") { b in
                let job = try await makeJob(a)
                for index in 0..<3 {
                    _ = try await a.insert(NewDocument(jobID: job.id, path: "f\(index)", sha256: "\(index)", size: 1, mtimeNanoseconds: 1))
                }
                #expect(try await a.claim(jobID: job.id, limit: 2, now: Date()).count == 2)
                #expect(try await a.takeScannerLease(jobID: job.id))
                #expect(try await a.renewLeases() == 2, "the heartbeat renews every in-flight document this process holds")
                #expect(try await b.takeOverExpired(jobID: job.id).isEmpty)
                #expect(try await !b.takeScannerLease(jobID: job.id))
                try await a.releaseLeases()
                #expect(try await b.takeOverExpired(jobID: job.id).count == 2, "released at shutdown: taken over at once")
                #expect(try await b.takeScannerLease(jobID: job.id))
                #expect(try await a.renewLeases() == 0)
            }
        }
    }
    @Test func leases_runOnTheDatabaseClock_soHostsWhoseClocksAreAnHourApartNeitherStealNorLoseDocuments() async throws {
        // A's host clock is an hour behind, B's an hour ahead. Were lease times taken from the host clocks, A's leases
        // would be an hour expired the moment they are written, and B would see every lease as expired.
        let behind: @Sendable () -> Date = { Date().addingTimeInterval(-3600) }
        let ahead: @Sendable () -> Date = { Date().addingTimeInterval(3600) }
        try await TestPostgres.withLedger(owner: "host-a:1:1", lease: .seconds(30), now: behind) { a, location in
            try await TestPostgres.withLedger(at: location, owner: "host-b:2:2", lease: .seconds(30), now: ahead) { b in
                let job = try await makeJob(a)
                for index in 0..<2 {
                    _ = try await a.insert(NewDocument(jobID: job.id, path: "f\(index)", sha256: "\(index)", size: 1, mtimeNanoseconds: 1))
                }
                let byA = try await a.claim(jobID: job.id, limit: 1, now: behind())
                #expect(byA.count == 1)
                #expect(try await a.takeScannerLease(jobID: job.id))
                #expect(try await b.takeOverExpired(jobID: job.id).isEmpty, "B does not take A's live lease over")
                #expect(try await !b.takeScannerLease(jobID: job.id), "nor its scanner lease")
                // B claims with its clock an hour ahead: the other document is due, and leased on the database's clock.
                let byB = try await b.claim(jobID: job.id, limit: 1, now: ahead())
                #expect(byB.count == 1)
                #expect(try await a.takeOverExpired(jobID: job.id).isEmpty, "A does not take B's live lease over")
                try await a.confirmLease(documentID: byA[0].id)
                try await b.confirmLease(documentID: byB[0].id)
                // Every lease ends about 30 s after the database's now(), whichever host wrote it.
                try await TestPostgres.admin(location) { client in
                    let rows = try await client.query("""
                        SELECT lease_until - (extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM documents WHERE lease_owner IS NOT NULL
                        UNION ALL SELECT lease_until - (extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM scanner_leases
                        """)
                    var remaining: [Int64] = []
                    for try await value in rows.decode(Int64.self) { remaining.append(value) }
                    #expect(remaining.count == 3)
                    #expect(remaining.allSatisfy { $0 > 0 && $0 <= 30_000 }, "lease time left in ms: \(remaining)")
                }
            }
        }
    }
}
