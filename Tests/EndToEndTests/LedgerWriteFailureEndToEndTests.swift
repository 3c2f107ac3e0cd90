import DifySimulator
import Foundation
import GRDB
import Testing

/// Found by the attack helper (attack/ledger-full-at-start.sh): a ledger that could be opened but not written (its
/// file system full) when `run`/`watch` registered the jobs or recorded the run ended the process with a bare
/// "Error: SQLite error 13: database or disk is full" and exit 1 — the code the table keeps for documents that ended
/// dead/rejected/unresolved — naming neither the ledger nor the fix. (The real binary; the failing write is made by
/// a trigger, as a full disk needs root to arrange.)
@Suite struct LedgerWriteFailureEndToEndTests {
    @Test func run_whenTheLedgerCannotRecordTheRun_exits4_namingTheLedgerAndTheFix_andSendsNothing() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            let first = try await CLI.run(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment)
            #expect(first.status == 0, "\(first.stderr)")
            let queue = try DatabaseQueue(path: workspace.dbPath)
            try await queue.write { db in
                try db.execute(sql: "CREATE TRIGGER full BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
            }
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
}
