import DifyBatch
import DifySimulator
import Foundation
import PostgresTestSupport
import Testing

/// A PostgreSQL ledger that cannot be reached or refuses the user fails at once, saying why (the real binary).
///
/// The wait for the server is set to 10 minutes (`--busy-timeout`) and the child is killed (the test fails) after
/// 3 minutes, so "failed at once with the cause" is told from "waited for the deadline" even on a machine so
/// loaded that the test process itself stalls for a minute; the assertions are on the cause named.
@Suite struct PostgresFailFastEndToEndTests {
    static let password = "pw-that-must-not-leak-4711"

    /// `run` against `url`; throws (the test fails) when the child did not end within 3 minutes of its 10-minute wait.
    func runAgainst(_ url: String, environment extra: [String: String] = [:]) async throws -> (CLI.Result, Workspace) {
        let workspace = try Workspace(baseURL: "http://127.0.0.1:1/v1")
        try workspace.drop("kept.txt", documentText(1))
        let result = try await CLI.run(["run", "--db", url, "--busy-timeout", "10m", "--progress", "never", workspace.specPath],
                                       environment: workspace.environment.merging(["PGPASSWORD": Self.password]) { $1 }.merging(extra) { $1 },
                                       timeout: .seconds(180))
        return (result, workspace)
    }

    /// What no message may contain: the password, the pool's internal error names, NIO's texts.
    func expectClean(_ stderr: String) {
        #expect(!stderr.contains(Self.password), "\(stderr)")
        for word in ["ConnectionPoolError", "poolShutdown", "NIOConnectionError", "errno", "cannot renew the leases", "cannot release the leases"] {
            #expect(!stderr.contains(word), "\(word): \(stderr)")
        }
    }

    @Test func run_whenNothingListensAtThePostgreSQLPort_exits4AtOnceSayingConnectionRefused() async throws {
        let (result, workspace) = try await runAgainst("postgres://batch@127.0.0.1:1/ledger?sslmode=disable")
        #expect(result.status == 4, "\(result.stderr)")
        #expect(result.stderr.contains("127.0.0.1:1"), "\(result.stderr)")
        #expect(result.stderr.contains("connection refused"), "\(result.stderr)")
        #expect(result.stderr.contains("start the server"), "\(result.stderr)")
        expectClean(result.stderr)
        #expect(FileManager.default.fileExists(atPath: workspace.inbox + "/kept.txt"))
    }

    @Test func run_whenThePostgreSQLHostDoesNotResolve_exits4AtOnceSayingNoSuchHost() async throws {
        let (result, _) = try await runAgainst("postgres://batch@no-such-host.invalid:5432/ledger?sslmode=disable")
        #expect(result.status == 4, "\(result.stderr)")
        #expect(result.stderr.contains("no-such-host.invalid:5432"), "\(result.stderr)")
        #expect(result.stderr.contains("no such host"), "\(result.stderr)")
        expectClean(result.stderr)
    }

    @Test func check_whenThePostgreSQLLedgerIsDown_saysSoAndExits4() async throws {
        try await withDifySimulator { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            let result = try await CLI.run(["check", "--db", "postgres://batch@127.0.0.1:1/ledger?sslmode=disable", workspace.specPath],
                                           environment: workspace.environment)
            #expect(result.status == 4, "\(result.stderr)")
            #expect(!result.stderr.contains("job docs:"), "the job itself checks out: \(result.stderr)")
            #expect(result.stderr.contains("ledger: cannot reach the PostgreSQL ledger at 127.0.0.1:1"), "\(result.stderr)")
            #expect(result.stderr.contains("connection refused"), "\(result.stderr)")
        }
    }

    @Test func run_whenPostgreSQLRejectsTheUser_exits2NamingThePasswordFix_withoutThePassword() async throws {
        guard let server = TestPostgres.server() else { return }
        // The test cluster trusts local users, so an unknown role is its authentication failure (SQLSTATE 28000).
        let url = "postgres://no_such_role_polish@\(server.host):\(server.port)/\(server.database)?sslmode=disable"
        let (result, _) = try await runAgainst(url)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("authentication failed"), "\(result.stderr)")
        #expect(result.stderr.contains("\(server.host):\(server.port)"), "\(result.stderr)")
        for fix in ["PGPASSWORD", "~/.pgpass", "password_file="] { #expect(result.stderr.contains(fix), "\(fix): \(result.stderr)") }
        expectClean(result.stderr)
    }
}
