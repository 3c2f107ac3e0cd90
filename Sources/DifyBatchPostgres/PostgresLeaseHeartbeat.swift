import DifyBatch
import Logging
import ServiceLifecycle

/// Renews this process's leases every third of the lease while the process lives; on graceful shutdown lets go
/// of them so other processes take over at once. Runs in the command's ServiceGroup after the PostgresClient
/// and before the pipeline (so it stops after the pipeline drained and before the client closes).
public struct PostgresLeaseHeartbeat: Service {
    let ledger: PostgresLedger
    let logger: Logger

    public init(ledger: PostgresLedger, logger: Logger) {
        self.ledger = ledger
        self.logger = logger
    }

    public func run() async throws {
        let interval = ledger.leaseDuration / 3
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: interval)
                } catch {
                    return
                }
                // Until the ledger is prepared this process holds no lease (and the server may be unreachable,
                // which the start-up already reports once).
                guard ledger.prepared.load(ordering: .acquiring) else { continue }
                do {
                    try await ledger.renewLeases()
                } catch {
                    logger.warning("cannot renew the leases in the PostgreSQL ledger (\(PostgresLedger.describe(error))); documents held longer than the lease will be taken over by other processes")
                }
            }
        }
        guard ledger.prepared.load(ordering: .acquiring) else { return }
        do {
            try await ledger.releaseLeases()
        } catch {
            logger.warning("cannot release the leases at shutdown (\(PostgresLedger.describe(error))); other processes take over after the lease expires")
        }
    }
}
