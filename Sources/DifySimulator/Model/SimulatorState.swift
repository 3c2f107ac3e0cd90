import Foundation
import Synchronization

/// A stored upload. Files belong to (api key, user).
struct StoredUpload: Sendable {
    var id: String
    var apiKey: String
    var user: String
    var endUserID: String
    var name: String
    var size: Int
    var extension_: String
    var mimeType: String
    var path: String
    var summary: DocumentSummary
    var createdAt: Int
}

/// A run (workflow run, or completion/chat message) as the server remembers it.
struct RunRecord: Sendable {
    var id: String
    var taskID: String
    var logID: String
    var apiKey: String
    var workflowID: String
    var user: String
    var endUserID: String
    var mode: String
    var status: String
    /// The run-detail `inputs` string (Python `json.dumps` spelling).
    var inputsString: String
    var outputs: JSONValue = .object([])
    var error: String?
    var totalTokens = 0
    var totalSteps = 0
    /// Whole seconds, like Dify's `CURRENT_TIMESTAMP(0)` columns.
    var createdAt: Int
    var startedAt: ContinuousClock.Instant
    var finishedAt: Int?
    var elapsed: Double?
    var stopRequested = false
    /// A paused run was resumed (``DifySimulator/resumePausedRun(id:)``).
    var resumeRequested = false

    /// `created_at` of the run's log row: when it finished (or started, while running).
    var logCreatedAt: Int { finishedAt ?? createdAt }
}

/// All mutable server state behind one lock.
final class SimulatorState: Sendable {
    struct Inner {
        var uploads: [String: StoredUpload] = [:]
        var endUsers: [String: String] = [:]
        var runs: [String: RunRecord] = [:]
        var runOrder: [String] = []
        var runByTask: [String: String] = [:]
        var conversations: Set<String> = []
        var activeSlots = 0
        var rng: SeededGenerator
        var serverURL = "http://127.0.0.1"
    }

    private let inner: Mutex<Inner>

    init(seed: UInt64) {
        inner = Mutex(Inner(rng: SeededGenerator(seed: seed)))
    }

    var serverURL: String {
        get { inner.withLock { $0.serverURL } }
        set { inner.withLock { $0.serverURL = newValue } }
    }

    /// True with probability `rate` (one draw from the seeded RNG; no draw when rate ≤ 0).
    func roll(_ rate: Double) -> Bool {
        guard rate > 0 else { return false }
        return inner.withLock { Double($0.rng.next() >> 11) / Double(1 << 53) } < rate
    }

    /// Uniform duration in `0...max`.
    func jitter(_ max: Duration) -> Duration {
        guard max > .zero else { return .zero }
        let u = inner.withLock { Double($0.rng.next() >> 11) / Double(1 << 53) }
        return max * u
    }

    func endUserID(apiKey: String, user: String) -> String {
        inner.withLock { s in
            let key = apiKey + "\u{0}" + user
            if let id = s.endUsers[key] { return id }
            let id = StableID.random()
            s.endUsers[key] = id
            return id
        }
    }

    func addUpload(_ upload: StoredUpload) { inner.withLock { $0.uploads[upload.id] = upload } }

    func upload(id: String) -> StoredUpload? { inner.withLock { $0.uploads[id] } }

    var allUploadPaths: [String] { inner.withLock { $0.uploads.values.map(\.path) } }

    /// Takes a concurrency slot unless `max` are taken.
    func acquireSlot(max: Int?) -> Bool {
        inner.withLock { s in
            if let max, s.activeSlots >= max { return false }
            s.activeSlots += 1
            return true
        }
    }

    func releaseSlot() { inner.withLock { $0.activeSlots -= 1 } }

    func addRun(_ run: RunRecord) {
        inner.withLock {
            $0.runs[run.id] = run
            $0.runOrder.append(run.id)
            $0.runByTask[run.taskID] = run.id
        }
    }

    /// The chat conversation to use: a new one for nil/"", the given one if this (key, user) owns it, else nil.
    func conversation(_ requested: String?, apiKey: String, user: String) -> String? {
        inner.withLock { s in
            guard let requested, !requested.isEmpty else {
                let id = StableID.random()
                s.conversations.insert(apiKey + "\u{0}" + user + "\u{0}" + id)
                return id
            }
            return s.conversations.contains(apiKey + "\u{0}" + user + "\u{0}" + requested) ? requested : nil
        }
    }

    func run(id: String) -> RunRecord? { inner.withLock { $0.runs[id] } }

    func updateRun(id: String, _ body: (inout RunRecord) -> Void) {
        inner.withLock { s in
            if var r = s.runs[id] {
                body(&r)
                s.runs[id] = r
            }
        }
    }

    /// Marks the run with this task id as stop-requested (only when `user` matches, for non-workflow apps).
    func requestStop(taskID: String, apiKey: String, user: String, checkUser: Bool) {
        inner.withLock { s in
            guard let runID = s.runByTask[taskID], var r = s.runs[runID], r.apiKey == apiKey else { return }
            if checkUser && r.user != user { return }
            r.stopRequested = true
            s.runs[runID] = r
        }
    }

    func isStopRequested(id: String) -> Bool { inner.withLock { $0.runs[id]?.stopRequested ?? false } }

    /// Runs of one app, newest first.
    func runs(apiKey: String) -> [RunRecord] {
        inner.withLock { s in s.runOrder.reversed().compactMap { s.runs[$0] }.filter { $0.apiKey == apiKey } }
    }
}
