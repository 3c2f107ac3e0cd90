import ArgumentParser
import DifySimulator
import Foundation
import Logging
import ServiceLifecycle

/// `dify-batch simulate`: runs the Dify simulator until SIGINT/SIGTERM.
/// The first line of stdout is the base URL (`http://HOST:PORT/v1`); logs go to stderr.
struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run a Dify-compatible API server with fault injection.",
        discussion: """
            Prints the base URL (http://HOST:PORT/v1) as the first line of stdout, then serves until SIGINT or \
            SIGTERM. Without --key the app key is '\(SimulatedApp.defaultAPIKey)'. Durations accept ms, s, m \
            (e.g. 200ms, 2s, 1m); a bare number means seconds.
            """
    )

    @Option(help: "Interface to bind.") var host = "127.0.0.1"
    @Option(help: "TCP port; 0 picks a free port.") var port = 0
    @Option(name: .customLong("key"), help: "App API key (repeatable); each key is one app.") var keys: [String] = []
    @Option(help: "App mode: workflow, completion or chat.") var mode = "workflow"

    @Option(name: .customLong("error-rate"), help: "Probability of 500 internal_server_error on runs and uploads.")
    var errorRate = 0.0
    @Option(name: .customLong("too-many-requests-rate"), help: "Probability of 429 too_many_requests on runs.")
    var tooManyRequestsRate = 0.0
    @Option(name: .customLong("max-active"), help: "Maximum concurrent runs; more get 429.") var maxActive: Int?
    @Option(name: .customLong("bad-gateway-rate"), help: "Probability of an HTML 502 on runs and uploads.")
    var badGatewayRate = 0.0
    @Option(name: .customLong("drop-after-start-rate"), help: "Probability that a stream is cut after workflow_started.")
    var dropAfterStartRate = 0.0
    @Option(name: .customLong("in-stream-error-rate"), help: "Probability of an `error` event instead of a result.")
    var inStreamErrorRate = 0.0
    @Option(name: .customLong("failed-workflow-rate"), help: "Probability of workflow_finished with status failed.")
    var failedWorkflowRate = 0.0
    @Option(name: .customLong("failed-workflow-message"), help: "The error text of failed workflow runs (and of their failed LLM node).")
    var failedWorkflowMessage: String?
    @Option(help: "Run processing time, e.g. 200ms.") var latency = "0ms"
    @Option(help: "Extra random processing time in 0...jitter, e.g. 50ms.") var jitter = "0ms"
    @Option(name: .customLong("slow-headers"), help: "Delay before the response head of runs and uploads.")
    var slowHeaders = "0ms"
    @Option(help: "Seed of the fault RNG.") var seed: UInt64 = 1
    @Option(name: .customLong("invalid-input-close"), help: "How long a streamed run with invalid inputs stays silent before closing.")
    var invalidInputClose = "300s"
    @Option(name: .customLong("ping-interval"), help: "Interval of `event: ping` while a streamed run processes.")
    var pingInterval = "10s"
    @Option(name: .customLong("storage"), help: "Directory for uploads (default: a temporary directory, removed on exit).")
    var storage: String?

    // Recovery faults (issue 10): what makes "did my run happen?" hard on real deployments.
    @Option(name: .customLong("clock-offset"), parsing: .unconditional,
            help: "Shift the simulator's clock (created_at, Date header, logs filters), e.g. -2m or 90s.")
    var clockOffset = "0s"
    @Flag(name: .customLong("logs-only-when-finished"), help: "List a run in /workflows/logs only once it has finished.")
    var logsOnlyWhenFinished = false
    @Option(name: .customLong("run-detail-not-found-first"), help: "The first N run-detail requests per run id answer 404.")
    var runDetailNotFoundFirst = 0
    @Option(name: .customLong("run-detail-bad-gateway-first"), help: "Then the next N per run id answer an HTML 502.")
    var runDetailBadGatewayFirst = 0
    @Option(name: .customLong("logs-not-found-first"), help: "The first N /workflows/logs requests answer an HTML 404.")
    var logsNotFoundFirst = 0
    @Option(name: .customLong("logs-bad-gateway-first"), help: "Then the next N /workflows/logs requests answer an HTML 502.")
    var logsBadGatewayFirst = 0
    @Option(name: .customLong("drop-before-run-rate"),
            help: "Probability that a run request's connection is closed before any run exists.")
    var dropBeforeRunRate = 0.0
    @Option(name: .customLong("drop-blocking-after-start-rate"),
            help: "Probability that a blocking run's connection is closed once the run started (it still finishes).")
    var dropBlockingAfterStartRate = 0.0
    @Option(name: .customLong("silence-before-start"),
            help: "Streams stay silent this long after the first ping (a buffering proxy) while the run executes.")
    var silenceBeforeStart = "0s"
    @Option(name: .customLong("gateway-rate-limit-rate"),
            help: "Probability of a Cloudflare-style HTML 429 (error 1015) on runs, before Dify sees them.")
    var gatewayRateLimitRate = 0.0
    @Option(name: .customLong("gateway-retry-after"), help: "Retry-After on the gateway 429 (default: none).")
    var gatewayRetryAfter: String?
    @Option(name: .customLong("too-many-requests-retry-after"),
            help: "Retry-After on Dify's JSON 429 too_many_requests (real Dify sends none; default: none).")
    var tooManyRequestsRetryAfter: String?
    @Option(name: .customLong("paused-run-rate"),
            help: "Probability that a workflow run pauses for human input (workflow_paused, status paused).")
    var pausedRunRate = 0.0
    @Option(name: .customLong("paused-run-resume-after"),
            help: "Resume paused runs after this long (default: they stay paused).")
    var pausedRunResumeAfter: String?

    func validate() throws {
        guard ["workflow", "completion", "chat"].contains(mode) else {
            throw ValidationError("--mode must be workflow, completion or chat, not '\(mode)'.")
        }
        for (name, rate) in [
            ("--error-rate", errorRate), ("--too-many-requests-rate", tooManyRequestsRate), ("--bad-gateway-rate", badGatewayRate),
            ("--drop-after-start-rate", dropAfterStartRate), ("--in-stream-error-rate", inStreamErrorRate),
            ("--failed-workflow-rate", failedWorkflowRate), ("--drop-before-run-rate", dropBeforeRunRate),
            ("--drop-blocking-after-start-rate", dropBlockingAfterStartRate), ("--gateway-rate-limit-rate", gatewayRateLimitRate),
            ("--paused-run-rate", pausedRunRate),
        ] where !(0...1).contains(rate) {
            throw ValidationError("\(name) must be between 0 and 1, not \(rate).")
        }
        if let maxActive, maxActive < 1 { throw ValidationError("--max-active must be at least 1.") }
        for (name, text) in [
            ("--latency", latency), ("--jitter", jitter), ("--slow-headers", slowHeaders), ("--invalid-input-close", invalidInputClose),
            ("--ping-interval", pingInterval), ("--silence-before-start", silenceBeforeStart),
            ("--gateway-retry-after", gatewayRetryAfter ?? "0"), ("--too-many-requests-retry-after", tooManyRequestsRetryAfter ?? "0"),
            ("--paused-run-resume-after", pausedRunResumeAfter ?? "0"),
        ] where parseDuration(text) == nil {
            throw ValidationError("\(name): '\(text)' is not a duration like 200ms, 2s or 1m.")
        }
        if parseSignedDuration(clockOffset) == nil {
            throw ValidationError("--clock-offset: '\(clockOffset)' is not a duration like -2m, 90s or 1h.")
        }
        for (name, count) in [
            ("--run-detail-not-found-first", runDetailNotFoundFirst), ("--run-detail-bad-gateway-first", runDetailBadGatewayFirst),
            ("--logs-not-found-first", logsNotFoundFirst), ("--logs-bad-gateway-first", logsBadGatewayFirst),
        ] where count < 0 {
            throw ValidationError("\(name) must be 0 or more, not \(count).")
        }
    }

    func run() async throws {
        // A local stderr logger: no global LoggingSystem.bootstrap, which may run only once per process.
        let logger = Logger(label: "dify-simulator", factory: { StreamLogHandler.standardError(label: $0) })
        let apps = (keys.isEmpty ? [SimulatedApp.defaultAPIKey] : keys).map { key -> SimulatedApp in
            switch mode {
            case "completion": return .completion(apiKey: key)
            case "chat": return .chat(apiKey: key)
            default: return .workflow(apiKey: key)
            }
        }
        var faults = FaultPlan(
            seed: seed, serverErrorRate: errorRate, tooManyRequestsRate: tooManyRequestsRate, maxActive: maxActive,
            badGatewayRate: badGatewayRate, dropAfterStartRate: dropAfterStartRate, inStreamErrorRate: inStreamErrorRate,
            failedWorkflowRate: failedWorkflowRate, slowHeaders: parseDuration(slowHeaders)!, latency: parseDuration(latency)!,
            latencyJitter: parseDuration(jitter)!)
        faults.clockOffset = parseSignedDuration(clockOffset)!
        faults.logsOnlyWhenFinished = logsOnlyWhenFinished
        faults.failedWorkflowMessage = failedWorkflowMessage
        faults.runDetailNotFoundFirst = runDetailNotFoundFirst
        faults.runDetailBadGatewayFirst = runDetailBadGatewayFirst
        faults.logsNotFoundFirst = logsNotFoundFirst
        faults.logsBadGatewayFirst = logsBadGatewayFirst
        faults.dropBeforeRunRate = dropBeforeRunRate
        faults.dropBlockingAfterStartRate = dropBlockingAfterStartRate
        faults.silenceBeforeStart = parseDuration(silenceBeforeStart)!
        faults.gatewayRateLimitRate = gatewayRateLimitRate
        faults.gatewayRetryAfter = gatewayRetryAfter.flatMap(parseDuration)
        faults.tooManyRequestsRetryAfter = tooManyRequestsRetryAfter.flatMap(parseDuration)
        faults.pausedRunRate = pausedRunRate
        faults.pausedRunResumeAfter = pausedRunResumeAfter.flatMap(parseDuration)
        let configuration = SimulatorConfiguration(
            host: host, port: port, apps: apps, faults: faults, invalidInputStreamClose: parseDuration(invalidInputClose)!,
            pingInterval: parseDuration(pingInterval)!, storageDirectory: storage)
        let simulator = DifySimulator(configuration: configuration, logger: logger)
        let announcer = ReadyAnnouncer(simulator: simulator, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [announcer], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// Runs the simulator and prints its base URL as the first stdout line once it listens.
private struct ReadyAnnouncer: Service {
    let simulator: DifySimulator
    let logger: Logger

    func run() async throws {
        let logger = self.logger
        try await simulator.run(onReady: { baseURL in
            FileHandle.standardOutput.write(Data((baseURL + "\n").utf8))
            logger.info("Dify simulator listening", metadata: ["base_url": .string(baseURL)])
        })
    }
}

/// A ``parseDuration(_:)`` value with an optional leading `-` or `+`; `h` (hours) is also accepted.
private func parseSignedDuration(_ text: String) -> Duration? {
    var t = text.trimmingCharacters(in: .whitespaces).lowercased()
    var sign: Int64 = 1
    if t.hasPrefix("-") { sign = -1; t.removeFirst() } else if t.hasPrefix("+") { t.removeFirst() }
    if t.hasSuffix("h"), let hours = Double(t.dropLast()), hours >= 0, hours.isFinite {
        return .milliseconds(sign * Int64((hours * 3_600_000).rounded()))
    }
    return parseDuration(t).map { $0 * Int(sign) }
}

/// `200ms`, `2s`, `1.5s`, `1m`, or a bare number of seconds.
private func parseDuration(_ text: String) -> Duration? {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60)]
    for (suffix, scale) in units where t.hasSuffix(suffix) {
        guard let n = Double(t.dropLast(suffix.count)), n >= 0, n.isFinite else { return nil }
        return .milliseconds(Int64((n * scale * 1000).rounded()))
    }
    guard let n = Double(t), n >= 0, n.isFinite else { return nil }
    return .milliseconds(Int64((n * 1000).rounded()))
}
