import DifyBatch
import Logging
import NIOCore
import PostgresNIO

extension PostgresLedger {
    /// Runs `body` in one transaction (BEGIN … COMMIT; an error rolls it back) on one pooled connection, each
    /// statement through ``statement(_:on:logger:)``.
    ///
    /// A transaction that locks documents starts with `SET LOCAL idle_in_transaction_session_timeout` =
    /// ``transactionIdleLimit`` (the lease, at least 10 s): a process frozen or cut off in the middle of such a
    /// transaction holds its row and advisory locks no longer than that, after which the server ends its session and
    /// rolls the transaction back. (Without it the others' `FOR UPDATE SKIP LOCKED` skips such a row for good, and the
    /// claim's advisory lock makes them wait: CI, stop 19.) Per transaction, not as a connection startup parameter,
    /// so a pooler such as PgBouncer, which refuses unknown startup parameters, still works.
    ///
    /// Not `PostgresClient.withTransaction`: a transaction the server ended (that timeout, or any lost connection)
    /// would hang that on its next statement or its ROLLBACK for good (postgres-nio 1.33 drops the failure of a query
    /// written to a closed channel). Here such a statement fails at once and no ROLLBACK is sent on a closed
    /// connection (the server rolled the transaction back when it closed it).
    ///
    /// A transaction whose connection closed before its COMMIT was sent never committed, so it is run again from
    /// the start on another connection (`body` must be safe to run again: it is, for every batch of this ledger),
    /// up to five times in all. A process that comes back after it was stopped past its lease thus sees the state
    /// of things (typically ``LedgerError/Code/leaseLost``: the others took its documents over) instead of a
    /// connection error.
    /// - Throws: what `body` throws; ``LedgerError/Code/unreachable`` when the connection closed after the COMMIT was
    ///   sent (whether it committed is unknown) or kept closing; a statement's error mapped by
    ///   ``ledgerError(_:location:)``.
    /// - Parameter limitingIdleTime: false for the schema transaction at start (no document is locked; a slow
    ///   migration on a starved machine must not be ended).
    func inTransaction<Result: Sendable>(limitingIdleTime: Bool = true,
                                         _ body: (_ run: Statements) async throws -> Result) async throws -> Result {
        let logger = self.logger
        let location = self.location
        let idleLimit = limitingIdleTime ? transactionIdleLimit.milliseconds : nil
        var tries = 0
        while true {
            tries += 1
            do {
                return try await client.withConnection { connection in
                    let run: Statements = { query in try await Self.statement(query, on: connection, logger: logger) }
                    _ = try await run("BEGIN")
                    if let idleLimit {
                        _ = try await run(PostgresQuery(unsafeSQL: "SET LOCAL idle_in_transaction_session_timeout = \(idleLimit)"))
                    }
                    let value: Result
                    do {
                        value = try await body(run)
                    } catch {
                        if !connection.isClosed { _ = try? await run("ROLLBACK") }
                        throw error
                    }
                    do {
                        _ = try await run("COMMIT")
                    } catch var closed as ConnectionClosed {
                        closed.duringCommit = true
                        throw closed
                    }
                    return value
                }
            } catch let closed as ConnectionClosed {
                if closed.duringCommit && closed.sent {
                    throw LedgerError(.unreachable, "the connection to the PostgreSQL ledger \(location) closed after a transaction's COMMIT was sent and before the server answered, so whether it committed is unknown (the server restarted or the network failed); the work is kept")
                }
                if tries >= 5 {
                    throw LedgerError(.unreachable, "the connection to the PostgreSQL ledger \(location) closed in the middle of a transaction, which the server rolled back (ended by the server after the process was stopped or cut off longer than its lease, or lost), \(tries) times in a row; the work is kept")
                }
                logger.debug("a ledger transaction's connection closed before its COMMIT (the server rolled it back); running it again on another connection")
            } catch let error as PSQLError {
                // No connection to run the transaction on (the server went away, the pool is closing), or a statement's.
                throw Self.ledgerError(error, location: location)
            }
        }
    }

    /// How long a ledger transaction may wait for this process's next statement before the server ends it: the
    /// lease, at least 10 s (a process starved for a moment on a busy machine must not lose its transactions to
    /// a short `--lease`; a frozen one still frees its rows soon after its lease).
    var transactionIdleLimit: Duration { max(leaseDuration, .seconds(10)) }

    /// A statement's connection closed before its answer came. `sent` is false when it was closed before the
    /// statement was written (so it never ran); `duringCommit` marks a transaction's COMMIT.
    struct ConnectionClosed: Error {
        var sent: Bool
        var duringCommit = false
    }

    /// One statement on `connection`, its rows collected; fails as soon as the connection is closed instead of
    /// waiting for an answer that cannot come.
    ///
    /// postgres-nio 1.33 writes a query to its channel without a promise, so a query written once the channel has
    /// closed is never answered nor failed. Here the check and the write happen together on the connection's event
    /// loop: a connection still open then takes the query into its handler, which fails it if the connection
    /// closes later. (No callback on the connection's close future: one per statement would pile up for the
    /// connection's lifetime.)
    /// - Throws: ``ConnectionClosed`` when the connection was closed before the statement was written (`sent`
    ///   false), or closed or was ended by the server before the answer (`sent` true); the statement's `PSQLError`
    ///   otherwise.
    static func statement(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws -> [PostgresRow] {
        let loop = connection.eventLoop
        let answer: EventLoopFuture<PostgresQueryResult> = loop.flatSubmit {
            guard !connection.isClosed else { return loop.makeFailedFuture(ConnectionClosed(sent: false)) }
            return connection.query(query, logger: logger)
        }
        do {
            return try await answer.get().rows
        } catch let error as PSQLError where Self.endsTheConnection(error) {
            throw ConnectionClosed(sent: true)
        }
    }

    /// A driver error that means the connection is gone: closed by either side or broken, or ended by the server
    /// (SQLSTATE class 08 connection exception, 57P operator intervention such as a shutdown, 25P03
    /// idle_in_transaction_session_timeout).
    static func endsTheConnection(_ error: PSQLError) -> Bool {
        switch error.code {
        case .serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown:
            return true
        default:
            guard let state = error.serverInfo?[.sqlState] else { return false }
            return state.hasPrefix("08") || state.hasPrefix("57P") || state == "25P03"
        }
    }
}
