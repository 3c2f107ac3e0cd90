import DifyBatch
import DifyBatchPostgres
import DifySimulator
import Foundation
import PostgresTestSupport
import Testing

/// One ledger per inbox with PostgreSQL: every process on one database is the same owner; another ledger is refused.
@Suite(.serialized) struct PostgresInboxOwnershipEndToEndTests {
    @Test func everyProcessOnOnePostgreSQLLedgerIsOneOwner_andASQLiteLedgerOnItsInboxIsRefusedBeforeAnyRun() async throws {
        guard let server = TestPostgres.server() else { return }
        let location = try await TestPostgres.createDatabase(on: server)
        do {
            try await withDifySimulator { simulator, baseURL in
                let workspace = try Workspace(baseURL: baseURL, extra: "after_success: keep")
                try workspace.drop("a.txt", documentText(1))
                try workspace.drop("b.txt", documentText(2))
                let db = location.description
                let first = try await CLI.run(["run", "--db", db, "--progress", "never", workspace.specPath], environment: workspace.environment)
                #expect(first.status == 0, "\(first.stderr)")
                // Another process (on another host it would be the same) on the same database: the same owner.
                let second = try await CLI.run(["run", "--db", db, "--progress", "never", workspace.specPath], environment: workspace.environment)
                #expect(second.status == 0, "\(second.stderr)")
                #expect(simulator.stats.requestsByEndpoint["POST /v1/workflows/run"] == 2)

                let sqlite = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                               environment: workspace.environment)
                #expect(sqlite.status == 2, "\(sqlite.stderr)")
                #expect(sqlite.stderr.contains("belongs to another ledger"), "\(sqlite.stderr)")
                #expect(simulator.stats.requestsByEndpoint["POST /v1/workflows/run"] == 2, "nothing paid again")
                let marker = InboxOwnership.Owner(contentsOf: (workspace.outbox as NSString).appendingPathComponent(InboxOwnership.fileName))
                #expect(marker?.ledger.hasPrefix("postgres") == true && marker?.ledger.contains("password") == false, "\(String(describing: marker))")
            }
        } catch {
            await TestPostgres.dropDatabase(location, on: server)
            throw error
        }
        await TestPostgres.dropDatabase(location, on: server)
    }
}
