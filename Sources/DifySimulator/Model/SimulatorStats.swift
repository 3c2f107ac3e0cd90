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

    // Spend accounting (issue 10): what the server received, started and billed.

    /// POSTs received on the run endpoints (`/workflows/run`, `/workflows/{id}/run`, `/completion-messages`,
    /// `/chat-messages`), whatever their answer.
    public var runRequestsReceived = 0
    /// Runs that started (a run record exists, visible to run detail / logs for workflows).
    public var runsStarted = 0
    /// Run POSTs whose connection was dropped before any run existed (``FaultPlan/dropBeforeRunRate``): received
    /// but not run.
    public var runRequestsDroppedBeforeRun = 0
    /// Runs started per `upload_file_id` of the run's first file.
    public var runsByUploadFileID: [String: Int] = [:]
    /// Usage billed per document content SHA-256: every started run whose model call completed, whether or not
    /// its client ever saw the result (dropped connections, paused runs).
    public var billedBySHA256: [String: BilledUsage] = [:]
    /// The same per `upload_file_id`.
    public var billedByUploadFileID: [String: BilledUsage] = [:]
    /// Totals of all billed runs (with or without a file).
    public var billed = BilledUsage()
    /// Times a run paused for human input (``FaultPlan/pausedRunRate``).
    public var runsPaused = 0
    /// Paused runs resumed (by ``DifySimulator/resumePausedRun(id:)`` or ``FaultPlan/pausedRunResumeAfter``).
    public var runsResumed = 0

    public init() {}
}

/// Usage the simulated model provider charged.
public struct BilledUsage: Sendable, Equatable {
    /// Billed runs.
    public var runs = 0
    /// Sum of `total_tokens`.
    public var tokens = 0
    /// Sum of `total_price` (USD).
    public var price: Decimal = 0

    public init(runs: Int = 0, tokens: Int = 0, price: Decimal = 0) {
        self.runs = runs
        self.tokens = tokens
        self.price = price
    }

    mutating func add(tokens: Int, price: Decimal) {
        runs += 1
        self.tokens += tokens
        self.price += price
    }
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

    func runRequestReceived() { state.withLock { $0.runRequestsReceived += 1 } }

    func runDroppedBeforeRun() { state.withLock { $0.runRequestsDroppedBeforeRun += 1 } }

    /// The model call of a started run completed: it is billed whatever happens to the response.
    func billed(sha256: String?, uploadFileID: String?, tokens: Int, price: Decimal) {
        state.withLock {
            if let sha256 { $0.billedBySHA256[sha256, default: BilledUsage()].add(tokens: tokens, price: price) }
            if let uploadFileID {
                $0.billedByUploadFileID[uploadFileID, default: BilledUsage()].add(tokens: tokens, price: price)
            }
            $0.billed.add(tokens: tokens, price: price)
        }
    }

    /// A paused run stops counting as active until it resumes.
    func runPaused() {
        state.withLock {
            $0.runsPaused += 1
            $0.activeRuns -= 1
        }
    }

    func runResumed() {
        state.withLock {
            $0.runsResumed += 1
            $0.activeRuns += 1
        }
    }

    func runStarted(sha256: String?, uploadFileID: String? = nil) {
        state.withLock {
            if let sha256 { $0.runsBySHA256[sha256, default: 0] += 1 }
            if let uploadFileID { $0.runsByUploadFileID[uploadFileID, default: 0] += 1 }
            $0.runsStarted += 1
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
