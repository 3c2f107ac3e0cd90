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

    /// One statement on `connection`, its rows collected; fails as soon as the connection closes instead of waiting
    /// for an answer that cannot come.
    /// - Throws: ``LedgerError/Code/unreachable`` when the connection is or becomes closed before the answer; the
    ///   statement's `PSQLError` otherwise.
    static func statement(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger, location: String) async throws -> [PostgresRow] {
        let closed = LedgerError(.unreachable, "the connection to the PostgreSQL ledger \(location) closed in the middle of a transaction, which the server rolled back (ended by the server after the process was stopped or cut off longer than its lease, or lost); the work is kept")
        guard !connection.isClosed else { throw closed }
        let answer = connection.eventLoop.makePromise(of: PostgresQueryResult.self)
        let sent: EventLoopFuture<PostgresQueryResult> = connection.query(query, logger: logger)
        sent.cascade(to: answer)
        // Whichever comes first wins; a promise completed twice keeps its first result.
        connection.closeFuture.whenComplete { _ in answer.fail(closed) }
        return try await answer.futureResult.get().rows
    }
}
