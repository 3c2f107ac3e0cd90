import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
import Logging
import ServiceLifecycle

/// A Dify-compatible HTTP server (the `/v1` service API) with fault injection, for tests, demos and users.
///
/// Modelled on Dify 1.14.1 (`Tests/Fixtures/dify-captures`, `dify-api.md`):
/// - `GET /v1/info`, `/v1/parameters`, `/v1/meta`, `/v1/site`.
/// - `POST /v1/files/upload`: multipart streamed to disk while hashing; Dify's checks in Dify's order; files
///   belong to (API key, `user`), `DEFAULT-USER` without `user`.
/// - `POST /v1/workflows/run`, `/v1/workflows/{workflow_id}/run`, `/v1/completion-messages`,
///   `/v1/chat-messages`: blocking (JSON, Python separators) or streaming (SSE, `event: ping` first). Invalid
///   inputs: blocking 400; streaming 200 + one ping + silence for `invalidInputStreamClose`, then close.
/// - `GET /v1/workflows/run/{id}` (inputs as a JSON string), `GET /v1/workflows/logs`, and the stop endpoints
///   (`/v1/workflows/tasks/{task_id}/stop`, `/v1/completion-messages/{task_id}/stop`,
///   `/v1/chat-messages/{task_id}/stop`), which really stop a streaming run (status `stopped`).
/// - Errors are `{"code","message","status"}` (Flask spelling, trailing newline); 401 adds
///   `WWW-Authenticate: Bearer realm="api"`; unknown routes get Flask's HTML 404, wrong methods a JSON 405.
///
/// Results come from ``SimulatedOutput``; faults from ``FaultPlan``; counters in ``SimulatorStats``.
/// Runs execute in the simulator's own task group, so a run whose client disconnected still finishes and
/// shows up in run detail and logs.
///
/// One instance serves once: call `run()` (or `run(onReady:)`) a single time. It is a `Service`, so it can
/// join a `ServiceGroup`; it stops on cancellation or graceful shutdown. On graceful shutdown, streams that
/// are stalling (invalid inputs) close at once and runs still processing end as `stopped`.
public final class DifySimulator: Service, Sendable {
    public let configuration: SimulatorConfiguration
    let state: SimulatorState
    let recorder = StatsRecorder()
    let background = BackgroundWork()
    let shutdown = ShutdownFlag()
    let lookupFaults = LookupFaultCounter()
    let logger: Logger
    /// Directory holding uploads, and whether the simulator created (and so removes) it.
    let storageDirectory: String
    private let ownsStorage: Bool
    /// When the simulator was created, in its own clock (the published workflow `version` in logs).
    let startedAt: Date

    public init(configuration: SimulatorConfiguration, logger: Logger = Logger(label: "dify-simulator")) {
        self.configuration = configuration
        self.logger = logger
        state = SimulatorState(seed: configuration.faults.seed)
        startedAt = Date().addingTimeInterval(configuration.faults.clockOffset.seconds)
        if let dir = configuration.storageDirectory {
            storageDirectory = dir
            ownsStorage = false
        } else {
            storageDirectory = (NSTemporaryDirectory() as NSString).appendingPathComponent("dify-simulator-\(StableID.random())")
            ownsStorage = true
        }
    }

    /// Serves until cancelled or gracefully shut down.
    public func run() async throws {
        try await run(onReady: { _ in })
    }

    /// Serves until cancelled or gracefully shut down; calls `onReady` with the base URL
    /// (`http://HOST:PORT/v1`) once the socket listens.
    public func run(onReady: @escaping @Sendable (_ baseURL: String) async -> Void) async throws {
        try FileManager.default.createDirectory(atPath: storageDirectory, withIntermediateDirectories: true)
        defer {
            if ownsStorage { try? FileManager.default.removeItem(atPath: storageDirectory) }
        }
        let host = configuration.host
        let state = self.state
        let clockOffset = configuration.faults.clockOffset
        let http1 = HTTPServerBuilder.http1(configuration: .init(additionalChannelHandlers: [ResponseHeadRewriter(clockOffset: clockOffset)]))
        var server = http1
        let scheme = configuration.tls == nil ? "http" : "https"
        if let tls = configuration.tls {
            let chain = try NIOSSLCertificate.fromPEMFile(tls.certificateChainFile).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: tls.privateKeyFile, format: .pem)
            server = try .tls(http1, tlsConfiguration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
        }
        let app = Application(
            responder: SimulatorResponder(simulator: self),
            server: server,
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "gunicorn"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let hostPart = host.contains(":") ? "[\(host)]" : host
                state.serverURL = "\(scheme)://\(hostPart):\(port)"
                await onReady("\(scheme)://\(hostPart):\(port)/v1")
            },
            logger: logger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.background.run() }
            do {
                let shutdown = self.shutdown
                try await withGracefulShutdownHandler {
                    try await app.run()
                } onGracefulShutdown: {
                    shutdown.set()
                }
            } catch {
                background.finish()
                group.cancelAll()
                throw error
            }
            background.finish()
            group.cancelAll()
            try await group.waitForAll()
        }
    }

    /// A snapshot of the counters.
    public var stats: SimulatorStats { recorder.snapshot }

    /// Zeroes the counters (active runs stay counted).
    public func resetStats() { recorder.reset() }
}

/// Runs a simulator for the duration of `body`, which receives it and its base URL (`http://127.0.0.1:PORT/v1`).
/// Structured: the server runs in a child task, shut down gracefully after `body` returns or throws (it stops
/// accepting, ends its stalled fault responses and finishes the connections it accepted), and cancelled if that
/// takes more than 10 s.
///
/// Not cancelled outright: cancelling a NIO async server while an accepted connection is still buffered traps the
/// process with "Deinited NIOAsyncWriter without calling finish()" (apple/swift-nio#3481; the maintainers' advice is
/// a graceful shutdown). A test process was lost to it once under load.
public func withDifySimulator<T: Sendable>(
    _ configuration: SimulatorConfiguration = .init(),
    _ body: @Sendable (DifySimulator, String) async throws -> T
) async throws -> T {
    var quiet = Logger(label: "dify-simulator")
    quiet.logLevel = .warning
    let simulator = DifySimulator(configuration: configuration, logger: quiet)
    let (urls, continuation) = AsyncStream<String>.makeStream()
    let server = ServiceGroup(configuration: .init(
        services: [.init(service: SimulatorService(simulator: simulator, onReady: { url in continuation.yield(url) }))],
        gracefulShutdownSignals: [], cancellationSignals: [],
        logger: Logger(label: "dify-simulator.lifecycle", factory: { _ in SwiftLogNoOpLogHandler() })))
    return try await withThrowingTaskGroup(of: Bool.self) { group in
        group.addTask {
            defer { continuation.finish() }
            try await server.run()
            return true
        }
        var iterator = urls.makeAsyncIterator()
        guard let url = await iterator.next() else {
            // The server stopped before listening: surface its error.
            try await group.waitForAll()
            throw CancellationError()
        }
        let result: Result<T, any Error>
        do {
            result = .success(try await body(simulator, url))
        } catch {
            result = .failure(error)
        }
        await server.triggerGracefulShutdown()
        group.addTask {
            try? await Task.sleep(for: .seconds(10))
            return false
        }
        // The server's end or the 10 s bound, whichever comes first; then the other is cancelled.
        _ = await group.nextResult()
        group.cancelAll()
        while let next = await group.nextResult() {
            if case let .failure(error) = next, !(error is CancellationError) {
                simulator.logger.debug("simulator stopped with \(error)")
            }
        }
        return try result.get()
    }
}

/// The simulator as a service of the ServiceGroup in ``withDifySimulator(_:_:)``.
private struct SimulatorService: Service {
    let simulator: DifySimulator
    let onReady: @Sendable (String) async -> Void

    func run() async throws { try await simulator.run(onReady: onReady) }
}
