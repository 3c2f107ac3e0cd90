import Foundation
import Synchronization

/// A snapshot of what the simulator has seen and done since start (or the last `resetStats()`).
public struct SimulatorStats: Sendable, Equatable {
    /// Requests per endpoint, keyed `"METHOD /path-template"`, e.g. `"POST /v1/files/upload"`,
    /// `"GET /v1/workflows/run/{workflow_run_id}"`. Unknown routes are keyed by their literal path.
    public var requestsByEndpoint: [String: Int] = [:]
    /// Responses per HTTP status (a stream counts under its head status, 200).
    public var responsesByStatus: [Int: Int] = [:]
    /// Responses per endpoint and status, keyed `"POST /v1/workflows/run 429"`.
    public var requestsByEndpointAndStatus: [String: Int] = [:]
    /// Runs actually started (past validation and HTTP-level faults), per SHA-256 of the document the model read:
    /// the uploaded file (workflow), or a completion/chat app's `text` input, else its first file.
    public var runsBySHA256: [String: Int] = [:]
    /// Highest number of runs executing at once.
    public var peakConcurrentRuns: Int = 0
    /// Runs executing now.
    public var activeRuns: Int = 0
    /// Sum of `total_tokens` of runs that produced a result (succeeded, including dropped-connection runs).
    public var tokensServed: Int = 0
    /// Sum of the price (``SimulatedOutput/usage(byteCount:wordCount:)``) of the same runs.
    public var priceServed: Decimal = 0
    /// Successful uploads (201).
    public var uploads: Int = 0
    /// Runs per final status (`succeeded`, `failed`, `stopped`, `error`).
    public var runsByStatus: [String: Int] = [:]

    public init() {}
}

/// Thread-safe stats store.
final class StatsRecorder: Sendable {
    private let state = Mutex(SimulatorStats())

    var snapshot: SimulatorStats { state.withLock { $0 } }

    func reset() {
        state.withLock { s in
            let active = s.activeRuns
            s = SimulatorStats()
            s.activeRuns = active
        }
    }

    func request(endpoint: String) {
        state.withLock { $0.requestsByEndpoint[endpoint, default: 0] += 1 }
    }

    func response(endpoint: String, status: Int) {
        state.withLock {
            $0.responsesByStatus[status, default: 0] += 1
            $0.requestsByEndpointAndStatus["\(endpoint) \(status)", default: 0] += 1
        }
    }

    func upload() { state.withLock { $0.uploads += 1 } }

    func runStarted(sha256: String?) {
        state.withLock {
            if let sha256 { $0.runsBySHA256[sha256, default: 0] += 1 }
            $0.activeRuns += 1
            $0.peakConcurrentRuns = max($0.peakConcurrentRuns, $0.activeRuns)
        }
    }

    func runEnded(status: String, tokens: Int, price: Decimal) {
        state.withLock {
            $0.activeRuns -= 1
            $0.runsByStatus[status, default: 0] += 1
            if status == "succeeded" {
                $0.tokensServed += tokens
                $0.priceServed += price
            }
        }
    }
}
