import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Shared state between a request, its response delegate and its watchdog.
final class RequestContext: @unchecked Sendable {
    private let lock = NSLock()
    private var lastActivity: ContinuousClock.Instant?
    private var started = RunStarted()
    private var headReceived = false

    init() {}

    /// Arms the idle timer (after the response head of a stream) and records activity.
    func touch() {
        lock.withLock { lastActivity = ContinuousClock.now }
    }

    /// Last activity, or nil while the idle timer is not armed or the caller's callback runs
    /// (time spent in `onStarted` is not server silence).
    var idleSince: ContinuousClock.Instant? { lock.withLock { callbackDepth > 0 ? nil : lastActivity } }

    private var callbackDepth = 0

    /// Runs the caller's callback with idle detection suspended; its errors are wrapped in ``CallbackError``.
    func runCallback(_ body: () async throws -> Void) async throws {
        lock.withLock { callbackDepth += 1 }
        defer {
            lock.withLock {
                callbackDepth -= 1
                if lastActivity != nil { lastActivity = ContinuousClock.now }
            }
        }
        do { try await body() } catch { throw CallbackError(underlying: error) }
    }

    private var headDate: Date?

    /// Records that the response head arrived, with its `Date` header (Dify's clock) and status (for the trace log).
    func markHeadReceived(_ headers: HTTPHeaders? = nil, status: Int? = nil) {
        let date = headers.flatMap(DifyClient.serverDate)
        lock.withLock {
            headReceived = true
            if let date { headDate = date }
            if let status { self.status = status }
        }
    }
    var didReceiveHead: Bool { lock.withLock { headReceived } }
    /// The `Date` header of the response head, when one arrived.
    var serverDate: Date? { lock.withLock { headDate } }

    private var status: Int?
    /// Records the HTTP status of the response head (for the trace log).
    func markStatus(_ status: Int) { markHeadReceived(status: status) }
    /// The HTTP status of the response head, once received.
    var httpStatus: Int? { lock.withLock { status } }

    func record(_ ids: RunStarted) {
        lock.withLock {
            if started.workflowRunID == nil { started.workflowRunID = ids.workflowRunID }
            if started.taskID == nil { started.taskID = ids.taskID }
            if started.messageID == nil { started.messageID = ids.messageID }
        }
    }

    var runStarted: RunStarted { lock.withLock { started } }
}

/// A deadline of ``RequestWatchdog`` passed; mapped to ``DifyError`` `timeout` (total, head) or `streamStalled` (idle).
enum WatchdogFired: Error {
    case total(Duration)
    case idle(Duration)
    case head(Duration)
}

/// Errors thrown by the caller's `onStarted` pass through unchanged.
struct CallbackError: Error {
    let underlying: any Error
}

extension DifyClient {
    /// Runs `operation` (which sends one request through ``RequestWatchdog``), mapping every failure to
    /// ``DifyError`` and writing the request's trace line.
    func guarded<T: Sendable>(endpoint: String, isRun: Bool, context: RequestContext,
                              operation: () async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        do {
            let value = try await operation()
            traceRequest(endpoint: endpoint, context: context, started: started, error: nil)
            return value
        } catch {
            let mapped = mapError(error, endpoint: endpoint, isRun: isRun, context: context)
            let difyError = mapped as? DifyError
            traceRequest(endpoint: endpoint, context: context, started: started, error: difyError)
            if let difyError {
                configuration.logger.debug("dify request failed", metadata: ["endpoint": "\(endpoint)",
                                                                            "error": "\(difyError.code)"])
            }
            throw mapped
        }
    }

    /// One trace line per HTTP request: method, path (no query), status, duration in ms. Never headers or keys.
    func traceRequest(endpoint: String, context: RequestContext, started: ContinuousClock.Instant, error: DifyError?) {
        guard configuration.logger.logLevel <= .trace else { return }
        let parts = endpoint.split(separator: " ", maxSplits: 1)
        let elapsed = ContinuousClock.now - started
        let milliseconds = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        var metadata: Logger.Metadata = [
            "method": "\(parts.first ?? "")",
            "path": "\(parts.count > 1 ? String(parts[1]) : "")",
            "duration_ms": .stringConvertible(milliseconds),
        ]
        if let status = context.httpStatus ?? error?.httpStatus { metadata["status"] = .stringConvertible(status) }
        if let error { metadata["error"] = "\(error.code)" }
        configuration.logger.trace("http request", metadata: metadata)
    }

    func mapError(_ error: any Error, endpoint: String, isRun: Bool, context: RequestContext) -> any Error {
        var mapped = mapErrorFacts(error, endpoint: endpoint, isRun: isRun, context: context)
        if var difyError = mapped as? DifyError, !(error is DifyError) {
            // Facts every locally detected failure carries: a sent run request may have started a run, and the
            // response head (if any) gave Dify's clock.
            difyError.runMayHaveStarted = isRun && difyError.requestSent
            difyError.serverDate = difyError.serverDate ?? context.serverDate
            mapped = difyError
        }
        return mapped
    }

    private func mapErrorFacts(_ error: any Error, endpoint: String, isRun: Bool, context: RequestContext) -> any Error {
        let started = context.runStarted
        let runStarted: RunStarted? = started.isEmpty ? nil : started
        switch error {
        case let error as DifyError:
            return error
        case let error as CallbackError:
            return error.underlying
        case WatchdogFired.total(let total):
            if Task.isCancelled { break }
            return DifyError(
                code: .timeout, message: "total deadline of \(Self.seconds(total)) exceeded", endpoint: endpoint,
                runStarted: runStarted, requestSent: true,
                classification: ErrorClassifier.classifyTransport(isRun: isRun, requestSent: true))
        case WatchdogFired.head(let head):
            if Task.isCancelled { break }
            return DifyError(
                code: .timeout,
                message: "no response head within the head deadline (\(Self.seconds(head)) for this call type)",
                endpoint: endpoint, runStarted: runStarted, requestSent: true,
                classification: ErrorClassifier.classifyTransport(isRun: isRun, requestSent: true))
        case WatchdogFired.idle(let idle):
            if Task.isCancelled { break }
            let detail = started.workflowRunID != nil || started.taskID != nil
                ? "after the run started"
                : "before workflow_started (no run id received); the request was sent and its outcome is unknown: "
                    + "look the run up (logs by user and time) before sending it again"
            return DifyError(
                code: .streamStalled,
                message: "stream stalled: no bytes for \(Self.seconds(idle)) \(detail)", endpoint: endpoint,
                runStarted: runStarted, requestSent: true,
                classification: isRun ? .ambiguous : .retryable)
        default:
            break
        }
        if Task.isCancelled || error is CancellationError {
            return DifyError(code: .cancelled, message: "cancelled", endpoint: endpoint, runStarted: runStarted,
                             requestSent: true,
                             classification: isRun ? .ambiguous : .retryable)
        }
        if let clientError = error as? HTTPClientError {
            switch clientError {
            case .connectTimeout:
                return DifyError(code: .timeout,
                                 message: "could not connect within \(Self.seconds(configuration.timeouts.connect))",
                                 endpoint: endpoint, requestSent: false, classification: .retryable)
            case .deadlineExceeded:
                let sent = true
                return DifyError(
                    code: .timeout,
                    message: "no response head within the head deadline (\(Self.seconds(configuration.timeouts.responseHead)) for this call type)",
                    endpoint: endpoint, runStarted: runStarted, requestSent: sent,
                    classification: ErrorClassifier.classifyTransport(isRun: isRun, requestSent: sent))
            case .readTimeout:
                return DifyError(code: .timeout, message: "read timeout from the HTTP client", endpoint: endpoint,
                                 runStarted: runStarted, requestSent: true,
                                 classification: ErrorClassifier.classifyTransport(isRun: isRun, requestSent: true))
            case .invalidURL, .emptyHost, .emptyScheme:
                return DifyError(code: .invalidRequest,
                                 message: "invalid base URL '\(configuration.baseURL)': \(clientError)",
                                 endpoint: endpoint, requestSent: false, classification: .configuration)
            case .cancelled:
                return DifyError(code: .cancelled, message: "request cancelled", endpoint: endpoint,
                                 runStarted: runStarted, requestSent: true,
                                 classification: isRun ? .ambiguous : .retryable)
            default:
                break
            }
        }
        let baseURL = configuration.trimmedBaseURL
        if let failure = TransportFailure.classify(error) {
            let sent = !failure.connectFailed
            return DifyError(
                code: .transport, message: redact(failure.message(baseURL: baseURL)), endpoint: endpoint,
                runStarted: runStarted, requestSent: sent,
                classification: failure.isConfiguration
                    ? .configuration : ErrorClassifier.classifyTransport(isRun: isRun, requestSent: sent))
        }
        // Unknown: name the kind of error only (NIO's texts carry errno dumps and source paths).
        let sent = !Self.isConnectFailure(error)
        let kind = String(describing: type(of: error))
        return DifyError(
            code: .transport,
            message: sent ? "network error talking to \(baseURL) (\(kind))" : "cannot connect to \(baseURL) (\(kind)); check dify.base_url and that Dify is running",
            endpoint: endpoint, runStarted: runStarted, requestSent: sent,
            classification: ErrorClassifier.classifyTransport(isRun: isRun, requestSent: sent))
    }

    /// Errors that mean no connection was established, so the request never left.
    static func isConnectFailure(_ error: any Error) -> Bool {
        if let clientError = error as? HTTPClientError, clientError == .connectTimeout { return true }
        if let ioError = error as? IOError, [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH].contains(ioError.errnoCode) {
            return true
        }
        let text = String(reflecting: error)
        return ["connectionRefused", "Connection refused", "NIOConnectionError", "connectTimeout",
                "SingleConnectionFailure", "ECONNREFUSED", "hostUnreachable"].contains { text.contains($0) }
    }

    static func seconds(_ duration: Duration) -> String {
        let (seconds, atto) = duration.components
        let value = Double(seconds) + Double(atto) / 1e18
        return value.rounded() == value ? "\(Int64(value)) s" : String(format: "%.3g s", value)
    }
}
