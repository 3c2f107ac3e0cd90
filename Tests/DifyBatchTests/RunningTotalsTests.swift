import Foundation
import GRDB
import Testing
@testable import DifyBatch

/// Schema 10 (issue 14): the running totals that `status` reads equal a full count of the rows.
@Suite struct RunningTotalsTests {
    static func register(_ ledger: SQLiteLedger, _ name: String) async throws -> JobRecord {
        try await ledger.register(JobRegistration(name: name, specPath: "/\(name).yaml", specHash: "h", baseURL: "http://x/v1",
                                                  difyUser: "u", inbox: "/in/\(name)", outbox: "/out/\(name)"))
    }

    static func expectTotalsEqualAFullCount(_ ledger: SQLiteLedger, jobs: [String]) async throws {
        let counts = try await ledger.stateCounts()
        #expect(counts == (try await ledger.stateCountsByScan()))
        let usage = try await ledger.usageTotals(matching: UsageFilter(), by: .job)
        #expect(usage == (try await ledger.usageTotalsByScan(matching: UsageFilter(), by: .job)))
        for job in jobs {
            let filter = UsageFilter(jobName: job)
            #expect(try await ledger.usageTotals(matching: filter, by: .job)
                    == (try await ledger.usageTotalsByScan(matching: filter, by: .job)))
        }
    }

    @Test func totals_afterAMixedScenario_equalAFullCountOfDocumentsAndUsage() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let invoices = try await Self.register(ledger, "invoices")
        let letters = try await Self.register(ledger, "letters")
        var ids: [Int64] = []
        for index in 0..<12 {
            let job = index % 3 == 0 ? letters : invoices
            ids.append(try await ledger.insert(NewDocument(jobID: job.id, path: "f\(index)", sha256: "\(index)", size: 1,
                                                           mtimeNanoseconds: 1)).id)
        }
        _ = try await ledger.insert(NewDocument(jobID: invoices.id, path: "bad", sha256: nil, size: 1, mtimeNanoseconds: 1,
                                                state: .rejected))
        let claimed = try await ledger.claim(jobID: invoices.id, limit: 5, now: Date())
        #expect(claimed.count == 5)
        #expect(claimed.map(\.id) == claimed.map(\.id).sorted())
        for document in claimed.prefix(3) {
            try await ledger.transition(document.id, from: .uploading, to: .uploaded, [.uploadFileID("f")])
            try await ledger.transition(document.id, from: .uploaded, to: .running, [])
            try await ledger.transition(document.id, from: .running, to: .succeeded, [])
        }
        try await ledger.transition(claimed[3].id, from: .uploading, to: .failed, [.nextAttemptAt(Date())])
        try await ledger.transition(claimed[4].id, from: .uploading, to: .dead, [])
        // A refused transition (wrong expected state) changes no count.
        await #expect(throws: LedgerError.self) {
            try await ledger.transition(claimed[0].id, from: .running, to: .failed, [])
        }
        let run = try await ledger.beginRun(command: "run", pid: 1, host: "h", jobIDs: [invoices.id, letters.id])
        let usages: [(Int64, Int64, String?, UsageAmounts)] = [
            (claimed[0].id, invoices.id, "r0", UsageAmounts(promptTokens: 10, completionTokens: 5, totalTokens: 15,
                                                            totalPrice: Decimal(string: "0.1"), currency: "USD")),
            (claimed[0].id, invoices.id, "r0b", UsageAmounts(totalTokens: 4)),  // second run of one document, no split
            (claimed[1].id, invoices.id, "r1", UsageAmounts(promptTokens: 1, completionTokens: 2, totalTokens: 3,
                                                            totalPrice: Decimal(string: "0.2"), currency: "USD")),
            (claimed[2].id, invoices.id, "r2", UsageAmounts(totalTokens: 9, totalPrice: Decimal(string: "0.5"), currency: "EUR")),
            (ids[0], letters.id, nil, UsageAmounts(totalTokens: 2)),
            (ids[0], letters.id, nil, UsageAmounts(totalTokens: 3)),
        ]
        for (document, job, difyRun, amounts) in usages {
            try await ledger.recordUsage(documentID: document, jobID: job, runID: run, difyRunID: difyRun, amounts)
        }
        // The same Dify run recorded twice counts once.
        try await ledger.recordUsage(documentID: claimed[1].id, jobID: invoices.id, runID: run, difyRunID: "r1",
                                     UsageAmounts(totalTokens: 1000))
        _ = try await ledger.requeue(ids: [claimed[4].id], from: [.dead])

        try await Self.expectTotalsEqualAFullCount(ledger, jobs: ["invoices", "letters", "nobody"])
        let counts = try await ledger.stateCounts()
        #expect(counts[invoices.id] == [.pending: 4, .succeeded: 3, .failed: 1, .rejected: 1])
        #expect(counts[letters.id] == [.pending: 4])
        let usage = try await ledger.usageTotals(matching: UsageFilter(), by: .job)
        #expect(usage.map(\.group) == ["invoices", "letters"])
        #expect(usage[0].documents == 3 && usage[0].runs == 4 && usage[0].totalTokens == 31)
        #expect(usage[0].currency == "mixed(EUR,USD)" && usage[0].totalPrice == nil)
        #expect(usage[0].promptTokens == 11 && usage[0].splitRuns == 2 && usage[0].pricedRuns == 3)
        #expect(usage[1].documents == 1 && usage[1].runs == 2 && usage[1].promptTokens == nil && usage[1].currency == nil)
    }

    @Test func migrationTo10_ofAPopulatedLedger_fillsTotalsEqualToAFullCount_andKeepsThemUpToDate() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("v1.sqlite")
        try LedgerMigrationTests.makeV1Ledger(path)
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(sql: """
                INSERT INTO jobs (id, name, spec_path, spec_hash, base_url, dify_user, inbox, outbox, created_at, updated_at)
                VALUES (2, 'other', '/o.yaml', 'h', 'http://x/v1', 'u', '/in2', '/out2', 1, 1);
                INSERT INTO documents (id, job_id, path, sha256, size, mtime_ns, state, attempts, created_at, updated_at) VALUES
                    (8, 1, 'b.txt', 'b', 3, 5, 'failed', 1, 1, 2), (9, 1, 'c.txt', 'c', 3, 5, 'pending', 0, 1, 2),
                    (10, 2, 'd.txt', 'd', 3, 5, 'succeeded', 1, 1, 2), (11, 2, 'e.txt', 'e', 3, 5, 'dead', 3, 1, 2);
                INSERT INTO usage (document_id, job_id, dify_run_id, prompt_tokens, completion_tokens, total_tokens,
                                   total_price, total_price_nanos, currency, recorded_at) VALUES
                    (7, 1, 'a', 3, 4, 7, '0.25', 250000000, 'USD', 2), (7, 1, 'b', NULL, NULL, 5, NULL, NULL, NULL, 3),
                    (10, 2, 'c', 1, 1, 2, '1', 1000000000, 'EUR', 4);
                """)
        }
        try queue.close()

        let migrated = try SQLiteLedger(path: path)
        #expect(try LedgerMigrationTests.userVersion(path) == SQLiteLedger.schemaVersion)
        #expect(try migrated.schemaDescription() == (try SQLiteLedger(path: dir.file("fresh.sqlite")).schemaDescription()))
        try await Self.expectTotalsEqualAFullCount(migrated, jobs: ["docs", "other"])
        #expect(try await migrated.stateCounts()[1] == [.succeeded: 1, .failed: 1, .pending: 1])
        #expect(try await migrated.usageTotals(matching: UsageFilter(), by: .job).map(\.runs) == [2, 1])

        // The migrated ledger's triggers keep counting (the failed document has no next_attempt_at: not claimed).
        #expect(try await migrated.claim(jobID: 1, limit: 10, now: Date.distantFuture).map(\.id) == [9])
        try await migrated.recordUsage(documentID: 9, jobID: 1, runID: nil, difyRunID: "n",
                                       UsageAmounts(totalTokens: 1, totalPrice: Decimal(string: "0.01"), currency: "USD"))
        try await Self.expectTotalsEqualAFullCount(migrated, jobs: ["docs", "other"])
        #expect(try await migrated.stateCounts()[1] == [.succeeded: 1, .failed: 1, .uploading: 1])
    }

    /// Schema 14: the usage triggers' "has this document other usage rows" lookups go through usage_by_document (a
    /// few rows), in a new ledger and in one migrated from v1. With `job_id = ?` SQLite chose usage_by_job_time and
    /// walked every usage row of the job on each recorded run.
    @Test func usageTriggers_lookUpADocumentsRowsThroughUsageByDocument_inNewAndMigratedLedgers() async throws {
        let dir = try TemporaryDirectory()
        let migratedPath = dir.file("v1.sqlite")
        try LedgerMigrationTests.makeV1Ledger(migratedPath)
        _ = try SQLiteLedger(path: migratedPath)
        let freshPath = dir.file("fresh.sqlite")
        _ = try SQLiteLedger(path: freshPath)
        func triggers(_ path: String) throws -> [String: String] {
            try DatabaseQueue(path: path).read { db in
                Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
                    .map { ($0["name"] as String, $0["sql"] as String) })
            }
        }
        let fresh = try triggers(freshPath)
        #expect(try triggers(migratedPath) == fresh)
        for name in ["usage_totals_insert", "usage_totals_delete"] {
            let body = try #require(fresh[name])
            let lookup = try #require(body.range(of: #"SELECT 1 FROM usage WHERE [^)]*"#, options: .regularExpression))
            // The lookup as the trigger runs it, its NEW./OLD. values replaced by literals.
            let query = body[lookup].replacingOccurrences(of: #"(NEW|OLD)\.\w+"#, with: "1", options: .regularExpression)
            let plan = try await DatabaseQueue(path: freshPath).read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + query).map { $0["detail"] as String }
            }
            #expect(plan.contains { $0.contains("usage_by_document") }, "\(name): \(query) → \(plan)")
        }
    }
}
