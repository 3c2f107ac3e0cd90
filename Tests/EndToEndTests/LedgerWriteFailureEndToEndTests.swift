import DifySimulator
import Foundation
import GRDB
import Testing

/// Found by the attack helper (Scripts/attack/ledger-full-at-start.sh): a ledger that could be opened but not written (its
/// file system full) when `run`/`watch` registered the jobs or recorded the run ended the process with a bare
/// "Error: SQLite error 13: database or disk is full" and exit 1 — the code the table keeps for documents that ended
/// dead/rejected/unresolved — naming neither the ledger nor the fix. (The real binary; the failing write is made by
/// a trigger, as a full disk needs root to arrange.)
@Suite struct LedgerWriteFailureEndToEndTests {
    /// A ledger made by a first (empty) run, whose inserts into `table` then fail as on a full disk.
    static func ledgerRefusingInserts(into table: String, _ workspace: Workspace) async throws -> DatabaseQueue {
        let first = try await CLI.run(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment)
        #expect(first.status == 0, "\(first.stderr)")
        let queue = try DatabaseQueue(path: workspace.dbPath)
        try await queue.write { db in
            try db.execute(sql: "CREATE TRIGGER full BEFORE INSERT ON \(table) BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        }
        return queue
    }

    @Test func run_whenTheLedgerCannotRecordTheRun_exits4_namingTheLedgerAndTheFix_andSendsNothing() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            let queue = try await Self.ledgerRefusingInserts(into: "runs", workspace)
            try queue.close()
            _ = try workspace.drop("a.txt", "alpha")
            let result = try await CLI.run(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment)
            #expect(result.status == 4, "\(result.stderr)")
            #expect(result.stderr.contains("dify-batch: the ledger \(workspace.dbPath) could not be written: "), "\(result.stderr)")
            #expect(result.stderr.contains("database or disk is full"))
            #expect(result.stderr.contains("free space on its file system"))
            #expect(!result.stderr.contains("Error: "))
            #expect(simulator.stats.runRequestsReceived == 0 && simulator.stats.uploads == 0)
        }
    }

    /// Found by the attack helper (Scripts/attack/ledger-full-at-start.sh, LEAVE_KB=100): when the ledger refused to record the
    /// inbox's files, `run` logged a warning per file and exited 0, "succeeded 0 … 0 waiting" — cron saw success.
    @Test func run_whenTheLedgerCannotRecordTheInboxFiles_exits4_andTheNextRunTakesThem() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            let queue = try await Self.ledgerRefusingInserts(into: "documents", workspace)
            _ = try workspace.drop("a.txt", "alpha")
            let refused = try await CLI.run(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment)
            #expect(refused.status == 4, "\(refused.stderr)")
            #expect(refused.stderr.contains("1 inbox file(s) could not be recorded in the ledger (first: a.txt: "), "\(refused.stderr)")
            #expect(simulator.stats.uploads == 0)
            try await queue.write { db in try db.execute(sql: "DROP TRIGGER full") }
            try queue.close()
            let again = try await CLI.run(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(simulator.stats.runRequestsReceived == 1)
            #expect(workspace.outputs() == ["a.txt.json"])
        }
    }
}
