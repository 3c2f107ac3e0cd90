import DifyBatch
import DifyKit
import Logging
import NIOCore
import PostgresNIO

/// One direct connection to the ledger's server, opened and closed before the client's pool is used.
///
/// The pool retries a refused or unresolvable server quietly until the caller's deadline, so the cause would be
/// lost and every such start would wait the whole deadline. The probe fails at once with the cause in words:
/// connection refused, no such host, no route, no answer in time (``LedgerError/Code/unreachable``: temporary,
/// exit 4), or authentication failed, TLS refused, no such database (``LedgerError/Code/cannotOpen``: the fix
/// is in the configuration, exit 2). Messages name `host:port` and the location without secrets; a password
/// never appears in them.
struct PostgresConnectionProbe: Sendable {
    /// The same settings as the pool's connections.
    let configuration: PostgresConnection.Configuration
    /// `host:port` of the server.
    let endpoint: String
    /// The ledger's URL without secrets.
    let location: String

    init(location: PostgresLocation, password: String?, tls: PostgresConnection.Configuration.TLS) {
        configuration = PostgresConnection.Configuration(host: location.host, port: location.port, username: location.user,
                                                         password: password, database: location.database, tls: tls)
        endpoint = location.host.contains(":") ? "[\(location.host)]:\(location.port)" : "\(location.host):\(location.port)"
        self.location = location.description
    }

    /// Connects (TCP, TLS as configured, authentication) within `timeout` and closes the connection again.
    /// - Throws: a ``LedgerError`` naming the cause; `CancellationError` when cancelled.
    func run(timeout: Duration) async throws {
        var configuration = self.configuration
        let (seconds, attoseconds) = timeout.components
        configuration.options.connectTimeout = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        configuration.options.additionalStartupParameters = [("application_name", "dify-batch")]
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 0,
                                                              logger: Logger(label: "dify-batch.postgres", factory: { _ in SwiftLogNoOpLogHandler() }))
        } catch {
            if error is CancellationError || Task.isCancelled { throw CancellationError() }
            throw failure(error, timeout: timeout)
        }
        try? await connection.close()
    }

    /// What `error` (from connecting) means for the operator.
    func failure(_ error: any Error, timeout: Duration) -> LedgerError {
        let server = "the PostgreSQL ledger at \(endpoint) (\(location))"
        let retry = "the work is kept; run again once the server is up"
        let credentials = "give the password with PGPASSWORD, a ~/.pgpass line (host:port:database:user:password) or password_file= in the URL, and check the user in --db or DIFY_BATCH_DB and the server's pg_hba.conf"
        guard let error = error as? PSQLError else {
            return LedgerError(.unreachable, "cannot reach \(server): \(Self.kindName(error)); check the host and port in --db or DIFY_BATCH_DB; \(retry)")
        }
        if let state = error.serverInfo?[.sqlState] {
            let message = error.serverInfo?[.message] ?? "error"
            switch state {
            case "28P01", "28000":
                return LedgerError(.cannotOpen, "authentication failed for \(server): \(message) (SQLSTATE \(state)); \(credentials)")
            case "57P03", "53300":
                return LedgerError(.unreachable, "\(server) does not take connections now: \(message) (SQLSTATE \(state)); \(retry)")
            default:
                return LedgerError(.cannotOpen, "\(server): \(message) (SQLSTATE \(state)); check the database name and user in --db or DIFY_BATCH_DB")
            }
        }
        switch error.code {
        case .authMechanismRequiresPassword:
            return LedgerError(.cannotOpen, "authentication failed for \(server): the server asks for a password and none was found; \(credentials)")
        case .sslUnsupported:
            return LedgerError(.cannotOpen, "\(server) does not offer TLS but the URL says sslmode=require; use sslmode=prefer or disable, or enable ssl on the server")
        case .connectionError, .serverClosedConnection, .clientClosedConnection:
            return Self.connectFailure(error.underlying, server: server, retry: retry, timeout: timeout)
        default:
            return LedgerError(.unreachable, "cannot reach \(server) (\(error.code)); check that the server runs and the host and port in --db or DIFY_BATCH_DB; \(retry)")
        }
    }

    /// A failure below the PostgreSQL protocol: refused, DNS, no route, timeout, TLS.
    static func connectFailure(_ underlying: (any Error)?, server: String, retry: String, timeout: Duration) -> LedgerError {
        if let channel = underlying as? ChannelError, case .connectTimeout = channel {
            return LedgerError(.unreachable, "cannot reach \(server): timeout, no answer within \(timeout) (a firewall dropping packets, or the server is overloaded); check the host and port in --db or DIFY_BATCH_DB; \(retry)")
        }
        switch underlying.flatMap(TransportFailure.classify)?.kind {
        case .refused?:
            return LedgerError(.unreachable, "cannot reach \(server): connection refused (nothing listens there); start the server or correct the host and port in --db or DIFY_BATCH_DB; \(retry)")
        case .dns?:
            return LedgerError(.unreachable, "cannot reach \(server): no such host (the name does not resolve); correct the host in --db or DIFY_BATCH_DB or this machine's DNS; \(retry)")
        case .unreachable?:
            return LedgerError(.unreachable, "cannot reach \(server): no route to the host; check the network and the host in --db or DIFY_BATCH_DB; \(retry)")
        case .untrustedCertificate?, .hostnameMismatch?, .notTLS?, .caFileUnreadable?, .tls?:
            return LedgerError(.cannotOpen, "the TLS handshake with \(server) failed; the server's certificate must be trusted by this machine, or use sslmode=disable on a trusted network")
        case .connectionClosed?, nil:
            return LedgerError(.unreachable, "cannot reach \(server): the connection was closed before the server answered; check that the server runs and the host and port in --db or DIFY_BATCH_DB; \(retry)")
        }
    }

    /// The type of an error, without its text (NIO's texts carry errno dumps and source paths).
    static func kindName(_ error: any Error) -> String { String(describing: type(of: error)) }
}
