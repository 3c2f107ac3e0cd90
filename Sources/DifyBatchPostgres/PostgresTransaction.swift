import DifyBatch
import Logging
import NIOCore
import PostgresNIO

extension PostgresLedger {
    /// Runs `body` in one transaction (BEGIN … COMMIT; an error rolls it back) on one pooled connection, each
    /// statement through ``statement(_:on:logger:)``.
    ///
    /// Not `PostgresClient.withTransaction`: a transaction the server ended (its `idle_in_transaction_session_timeout`
    /// after a process froze mid-transaction, see ``makeClient(for:environment:transactionIdleLimit:logger:)``, or any
    /// lost connection) would hang that on its next statement or its ROLLBACK for good (postgres-nio 1.33 drops the
    /// failure of a query written to a closed channel). Here such a statement fails at once and no ROLLBACK is sent on
    /// a closed connection (the server rolled the transaction back when it closed it).
    ///
    /// A transaction whose connection closed before its COMMIT was sent never committed, so it is run again from
    /// the start on another connection (`body` must be safe to run again: it is, for every batch of this ledger),
    /// up to three times in all. A process that comes back after it was stopped past its lease thus sees the state
    /// of things (typically ``LedgerError/Code/leaseLost``: the others took its documents over) instead of a
    /// connection error.
    /// - Throws: what `body` throws; ``LedgerError/Code/unreachable`` when the connection closed after the COMMIT was
    ///   sent (whether it committed is unknown) or kept closing; a statement's error mapped by
    ///   ``ledgerError(_:location:)``.
    func inTransaction<Result: Sendable>(_ body: (_ run: Statements) async throws -> Result) async throws -> Result {
        let logger = self.logger
        let location = self.location
        var tries = 0
        while true {
            tries += 1
            do {
                return try await client.withConnection { connection in
                    let run: Statements = { query in try await Self.statement(query, on: connection, logger: logger) }
                    _ = try await run("BEGIN")
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
                if tries >= 3 {
                    throw LedgerError(.unreachable, "the connection to the PostgreSQL ledger \(location) closed in the middle of a transaction, which the server rolled back (ended by the server after the process was stopped or cut off longer than its lease, or lost), \(tries) times in a row; the work is kept")
                }
                logger.debug("a ledger transaction's connection closed before its COMMIT (the server rolled it back); running it again on another connection")
            } catch let error as PSQLError {
                // No connection to run the transaction on (the server went away, the pool is closing), or a statement's.
                throw Self.ledgerError(error, location: location)
            }
        }
    }

    /// A statement's connection closed before its answer came. `sent` is false when it was closed before the
    /// statement was written (so it never ran); `duringCommit` marks a transaction's COMMIT.
    struct ConnectionClosed: Error {
        var sent: Bool
        var duringCommit = false
    }

    /// One statement on `connection`, its rows collected; fails as soon as the connection closes instead of waiting
    /// for an answer that cannot come.
    /// - Throws: ``ConnectionClosed`` when the connection is or becomes closed before the answer; the statement's
    ///   `PSQLError` otherwise.
    static func statement(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws -> [PostgresRow] {
        guard !connection.isClosed else { throw ConnectionClosed(sent: false) }
        let answer = connection.eventLoop.makePromise(of: PostgresQueryResult.self)
        let sent: EventLoopFuture<PostgresQueryResult> = connection.query(query, logger: logger)
        sent.cascade(to: answer)
        // Whichever comes first wins; a promise completed twice keeps its first result.
        connection.closeFuture.whenComplete { _ in answer.fail(ConnectionClosed(sent: true)) }
        return try await answer.futureResult.get().rows
    }
}
