import DifyBatch
import Logging
import NIOCore
import PostgresNIO

extension PostgresLedger {
    /// Runs `body` in one transaction (BEGIN … COMMIT; an error rolls it back) on one pooled connection, each
    /// statement through ``statement(_:on:)``.
    ///
    /// Not `PostgresClient.withTransaction`: a transaction the server ended (its `idle_in_transaction_session_timeout`
    /// after a process froze mid-transaction, see ``makeClient(for:environment:transactionIdleLimit:logger:)``, or any
    /// lost connection) would hang that on its next statement or its ROLLBACK for good (postgres-nio 1.33 drops the
    /// failure of a query written to a closed channel). Here such a statement fails at once and no ROLLBACK is sent on
    /// a closed connection (the server rolled the transaction back when it closed it).
    /// - Throws: what `body` throws; ``LedgerError/Code/unreachable`` when the connection closed in between;
    ///   a statement's error mapped by ``ledgerError(_:location:)``.
    func inTransaction<Result: Sendable>(_ body: (_ run: Statements) async throws -> Result) async throws -> Result {
        let logger = self.logger
        let location = self.location
        do {
            return try await client.withConnection { connection in
                let run: Statements = { query in try await Self.statement(query, on: connection, logger: logger, location: location) }
                _ = try await run("BEGIN")
                do {
                    let value = try await body(run)
                    _ = try await run("COMMIT")
                    return value
                } catch {
                    if !connection.isClosed { _ = try? await run("ROLLBACK") }
                    throw error
                }
            }
        } catch let error as PSQLError {
            // No connection to run the transaction on (the server went away, the pool is closing), or a statement's.
            throw Self.ledgerError(error, location: location)
        }
    }

    /// One statement outside a transaction on a pooled connection, through ``statement(_:on:logger:location:closed:)``.
    ///
    /// Not `PostgresClient.query`: a connection the server just ended (a frozen process's transaction after its lease,
    /// `pg_terminate_backend`, a restart) can go back to the pool while it is still closing, and postgres-nio 1.33
    /// never answers a query written to it once it closed (attack3's storm: `run` hung for good on the document read
    /// that follows a failed transaction). Here such a statement fails at once; one the pool hands out already
    /// closed is not used (the statement goes to another connection, at most 3 tries).
    /// - Throws: ``LedgerError/Code/unreachable`` when the connection closed before the answer; the statement's error
    ///   mapped by ``ledgerError(_:location:)``.
    func pooledStatement(_ query: PostgresQuery) async throws -> [PostgresRow] {
        let logger = self.logger
        let location = self.location
        let closed = LedgerError(.unreachable, "the connection to the PostgreSQL ledger \(location) closed before the server answered (the server ended the session, restarted or went away); the work is kept")
        do {
            // A connection the pool hands out already closed never got the statement: another one is leased (the
            // pool drops a closed connection as soon as it sees the close).
            for retry in 0..<3 {
                let answer: [PostgresRow]? = try await client.withConnection { connection in
                    guard !connection.isClosed else { return nil }
                    return try await Self.statement(query, on: connection, logger: logger, location: location, closed: closed)
                }
                if let answer { return answer }
                try await Task.sleep(for: .milliseconds(10 * (retry + 1)))
            }
            throw closed
        } catch let error as PSQLError {
            throw Self.ledgerError(error, location: location)
        }
    }

    /// One statement on `connection`, its rows collected; fails as soon as the connection closes instead of waiting
    /// for an answer that cannot come.
    /// - Parameter closed: the error for a connection that is or becomes closed (default: the one of a transaction).
    /// - Throws: `closed` (``LedgerError/Code/unreachable``) when the connection is or becomes closed before the
    ///   answer; the statement's `PSQLError` otherwise.
    static func statement(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger, location: String,
                          closed: LedgerError? = nil) async throws -> [PostgresRow] {
        let closed = closed ?? LedgerError(.unreachable, "the connection to the PostgreSQL ledger \(location) closed in the middle of a transaction, which the server rolled back (ended by the server after the process was stopped or cut off longer than its lease, or lost); the work is kept")
        guard !connection.isClosed else { throw closed }
        let answer = connection.eventLoop.makePromise(of: PostgresQueryResult.self)
        let sent: EventLoopFuture<PostgresQueryResult> = connection.query(query, logger: logger)
        sent.cascade(to: answer)
        // Whichever comes first wins; a promise completed twice keeps its first result.
        connection.closeFuture.whenComplete { _ in answer.fail(closed) }
        return try await answer.futureResult.get().rows
    }
}
