import DifyBatch
import Foundation
import Logging
import NIOSSL
import PostgresNIO
import Synchronization

extension PostgresLedger {
    /// A client for `location`, the password read as ``PostgresLocation/password(environment:)`` says. The client
    /// must be run (it is a Service) for the ledger to work.
    /// - Throws: ``LedgerError/Code/cannotOpen`` when the password file cannot be read.
    public static func makeClient(for location: PostgresLocation, environment: [String: String] = ProcessInfo.processInfo.environment,
                                  logger: Logger = Logger(label: "dify-batch.postgres", factory: { _ in SwiftLogNoOpLogHandler() })) throws -> PostgresClient {
        let tls: PostgresClient.Configuration.TLS
        switch location.tls {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(.makeClientConfiguration())
        case .require: tls = .require(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(host: location.host, port: location.port, username: location.user,
                                                         password: try location.password(environment: environment),
                                                         database: location.database, tls: tls)
        configuration.options.connectTimeout = .seconds(10)
        configuration.options.maximumConnections = 8
        configuration.options.additionalStartupParameters = [("application_name", "dify-batch")]
        return PostgresClient(configuration: configuration, backgroundLogger: logger)
    }

    /// ``prepare()`` bounded in time: a server that does not answer within `timeout` is an error, not a hang (the
    /// client's pool retries connecting forever). A ledger made from a ``PostgresLocation`` first opens one direct
    /// connection (``PostgresConnectionProbe``), so a refused, unresolvable or rejecting server fails at once with
    /// its cause instead of after `timeout`.
    /// - Throws: ``LedgerError/Code/unreachable`` when the server cannot be reached (refused, no such host, no
    ///   route, no answer in time); ``LedgerError/Code/cannotOpen`` when it refuses this user (authentication,
    ///   TLS, no such database); what ``prepare()`` throws.
    public func prepare(timeout: Duration) async throws {
        let location = self.location
        let start = ContinuousClock.now
        try await probe?.run(timeout: timeout)
        let remaining = max(timeout - (ContinuousClock.now - start), .seconds(1))
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await self.prepare()
                return true
            }
            group.addTask {
                try await Task.sleep(for: remaining)
                return false
            }
            defer { group.cancelAll() }
            guard try await group.next() == true else {
                throw LedgerError(.unreachable, "cannot reach the PostgreSQL ledger \(location) within \(timeout); check that the server runs and accepts this user, the URL in --db or DIFY_BATCH_DB, and the password (password_file=, PGPASSWORD or ~/.pgpass)")
            }
        }
        prepared.store(true, ordering: .releasing)
    }
}

import ServiceLifecycle

extension PostgresLedger {
    /// The URL's sslmode for a single connection (the probe), as ``makeClient(for:environment:logger:)`` sets it for the pool.
    static func connectionTLS(_ mode: PostgresLocation.TLSMode) throws -> PostgresConnection.Configuration.TLS {
        switch mode {
        case .disable: .disable
        case .prefer: .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        case .require: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
    }

    /// A ledger on `location` with its own client (see ``makeClient(for:environment:logger:)``); run ``services``
    /// (or ``runClient()``) and call ``prepare(timeout:)`` before use.
    public convenience init(location: PostgresLocation, leaseDuration: Duration = .seconds(30),
                            environment: [String: String] = ProcessInfo.processInfo.environment,
                            logger: Logger = Logger(label: "dify-batch.postgres")) throws {
        self.init(client: try Self.makeClient(for: location, environment: environment), location: location.description,
                  probe: PostgresConnectionProbe(location: location, password: try location.password(environment: environment), tls: try Self.connectionTLS(location.tls)),
                  leaseDuration: leaseDuration, logger: logger)
    }

    /// The client, then the lease heartbeat: put them in the command's ServiceGroup before the pipeline.
    public var services: [any Service] { [client, PostgresLeaseHeartbeat(ledger: self, logger: logger)] }

    /// Runs the client until cancelled (for short commands that need no heartbeat).
    public func runClient() async { await client.run() }
}
