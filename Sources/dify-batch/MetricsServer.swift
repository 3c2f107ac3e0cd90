import DifyBatch
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// Where `--metrics` listens: `HOST:PORT` (`127.0.0.1:9464`, `[::1]:9464`, port 0 = any free port).
struct MetricsAddress: Sendable, Equatable {
    var host: String
    var port: Int

    init?(_ text: String) {
        let hostPart: Substring, portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard !hostPart.isEmpty, let port = Int(portPart), (0...65535).contains(port) else { return nil }
        host = String(hostPart)
        self.port = port
    }
}

/// Serves `GET /metrics` from a ``MetricsRegistry`` with Hummingbird, as a lifecycle service.
enum MetricsServer {
    /// `ledger` (the ledger's path and the jobs served) adds `dify_batch_ledger_documents`, read at each scrape.
    static func make(registry: MetricsRegistry, address: MetricsAddress, ledger: LedgerCounts?, logger: Logger) -> some Service {
        MetricsService(application: application(registry: registry, address: address, ledger: ledger, logger: logger), address: address)
    }

    static func application(registry: MetricsRegistry, address: MetricsAddress, ledger: LedgerCounts?, logger: Logger) -> some Service {
        let router = Router()
        router.get("metrics") { _, _ -> Response in
            let counts = await ledger?.read()
            return Response(status: .ok, headers: [.contentType: PrometheusText.contentType],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: registry.render(ledgerCounts: counts))))
        }
        var serverLogger = logger
        serverLogger[metadataKey: "component"] = "metrics"
        if serverLogger.logLevel > .debug { serverLogger.logLevel = max(serverLogger.logLevel, .warning) }
        let host = address.host
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: address.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? address.port
                let hostPart = host.contains(":") ? "[\(host)]" : host
                logger.info("metrics at http://\(hostPart):\(port)/metrics")
            },
            logger: serverLogger
        )
    }
}

/// The metrics application; a failure (such as the address being in use) becomes a ``ServiceFailure``.
struct MetricsService<Wrapped: Service>: Service {
    let application: Wrapped
    let address: MetricsAddress

    func run() async throws {
        do {
            try await application.run()
        } catch is CancellationError {
            return
        } catch {
            throw ServiceFailure(description: "--metrics \(address.host):\(address.port): cannot serve metrics: \(error)")
        }
    }
}

/// A service next to the pipeline failed (reported, exit 2).
struct ServiceFailure: Error, CustomStringConvertible {
    var description: String
}

/// Reads documents by state from the ledger for the metrics (opened on first use; the launcher creates it).
final class LedgerCounts: Sendable {
    let path: String
    /// The jobs of the specs at start.
    let initialJobs: Set<String>
    /// Adds the jobs served since (a spec `watch` loaded again after SIGHUP or a change).
    let registry: MetricsRegistry?
    private let ledger = Mutex<SQLiteLedger?>(nil)

    init(path: String, jobs: Set<String>, registry: MetricsRegistry? = nil) {
        self.path = path
        self.initialJobs = jobs
        self.registry = registry
    }

    /// The jobs whose counts a scrape shows: those of the specs at start and every job served since.
    var jobs: Set<String> { initialJobs.union(registry?.servedJobs ?? []) }

    /// Job name → counts by state for the jobs served, or nil when the ledger cannot be read now. A PostgreSQL
    /// ledger is read through a connection opened for the scrape.
    func read() async -> [String: [DocumentState: Int]]? {
        switch try? LedgerURL.parse(path) {
        case .postgres(let location)?:
            return await PostgresSession.read(location) { try await self.counts(in: $0) }
        case .sqlite(let file)?:
            guard FileManager.default.fileExists(atPath: file) else { return nil }
            let store: SQLiteLedger
            if let open = ledger.withLock({ $0 }) {
                store = open
            } else {
                guard let opened = try? SQLiteLedger(path: file) else { return nil }
                ledger.withLock { $0 = opened }
                store = opened
            }
            return try? await counts(in: store)
        case nil:
            return nil
        }
    }

    private func counts(in store: any LedgerReader) async throws -> [String: [DocumentState: Int]] {
        let records = try await store.jobs()
        let counts = try await store.stateCounts()
        var result: [String: [DocumentState: Int]] = [:]
        let jobs = self.jobs
        for record in records where jobs.contains(record.name) { result[record.name] = counts[record.id] ?? [:] }
        return result
    }
}
