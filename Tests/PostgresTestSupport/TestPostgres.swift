import DifyBatch
import DifyBatchPostgres
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// The private PostgreSQL cluster that `.ci/run` (or `.ci/postgres-cluster start`) provides through
/// `DIFY_BATCH_TEST_POSTGRES_URL`. Each test gets its own database, dropped afterwards.
public enum TestPostgres {
    public static let environment = ProcessInfo.processInfo.environment

    /// The server, or nil (printing why) when the variable is not set. In CI (CI=true) a missing server is a
    /// recorded failure, never a skip.
    public static func server() -> PostgresLocation? {
        guard let text = environment["DIFY_BATCH_TEST_POSTGRES_URL"], case .postgres(let location)? = try? LedgerURL.parse(text) else {
            if environment["CI"] == "true" {
                Issue.record("DIFY_BATCH_TEST_POSTGRES_URL is not set: .ci/run must start the PostgreSQL cluster (.ci/postgres-cluster start)")
            } else {
                print("note: PostgreSQL tests skipped: set DIFY_BATCH_TEST_POSTGRES_URL (eval \"$(.ci/postgres-cluster start)\")")
            }
            return nil
        }
        return location
    }

    private static let counter = Atomic<Int>(0)

    /// A new empty database on the test server; returns its location.
    public static func createDatabase(on server: PostgresLocation) async throws -> PostgresLocation {
        let name = "t\(getpid())_\(counter.add(1, ordering: .relaxed).newValue)_\(UInt32.random(in: 0...UInt32.max))"
        try await admin(server) { client in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \"\(name)\""))
        }
        var location = server
        location.database = name
        return location
    }

    public static func dropDatabase(_ location: PostgresLocation, on server: PostgresLocation) async {
        try? await admin(server) { client in
            try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \"\(location.database)\" WITH (FORCE)"))
        }
    }

    /// Runs `body` with a running client on `location`.
    public static func admin(_ location: PostgresLocation, _ body: (PostgresClient) async throws -> Void) async throws {
        let client = try PostgresLedger.makeClient(for: location, environment: environment)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await body(client)
        }
    }

    /// Runs `body` with a prepared ledger in a new database (dropped afterwards).
    public static func withLedger(owner: String = "test-owner", lease: Duration = .seconds(30), now: @escaping @Sendable () -> Date = { Date() },
                           _ body: (PostgresLedger, PostgresLocation) async throws -> Void) async throws {
        guard let server = server() else { return }
        let location = try await createDatabase(on: server)
        do {
            try await withLedger(at: location, owner: owner, lease: lease, now: now) { try await body($0, location) }
        } catch {
            await dropDatabase(location, on: server)
            throw error
        }
        await dropDatabase(location, on: server)
    }

    /// Runs `body` with a prepared ledger on an existing database.
    public static func withLedger(at location: PostgresLocation, owner: String, lease: Duration = .seconds(30),
                           now: @escaping @Sendable () -> Date = { Date() }, _ body: (PostgresLedger) async throws -> Void) async throws {
        let client = try PostgresLedger.makeClient(for: location, environment: environment)
        let ledger = PostgresLedger(client: client, location: location.description, owner: owner, leaseDuration: lease, now: now)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await ledger.prepare(timeout: .seconds(30))
            try await body(ledger)
        }
    }
}

