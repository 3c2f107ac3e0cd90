import Foundation
import Synchronization

/// A ``PipelineObserver`` that aggregates pipeline events into Prometheus metrics; ``render()`` gives the
/// text exposition format 0.0.4 served at `GET /metrics`.
///
/// Metrics (all labelled by `job`):
/// - `dify_batch_documents{job,state}` gauge — documents by the state they last settled in during this process
/// - `dify_batch_documents_settled_total{job,state}` counter — settle events by state
/// - `dify_batch_attempts_total{job,phase,outcome}` counter — HTTP calls/phases by outcome
/// - `dify_batch_errors_total{job,phase,class}` counter — attempts whose outcome was not `ok`, by error class
/// - `dify_batch_dify_request_duration_seconds{job,phase}` histogram — Dify latency per phase
/// - `dify_batch_tokens_total{job,kind}` counter — `prompt`, `completion`, `total`
/// - `dify_batch_price_total{job,currency}` counter — price reported by Dify
/// - `dify_batch_queue_waiting{job}`, `dify_batch_inflight{job}` gauges
/// - `dify_batch_job_running{job}` gauge — 1 while the job works, 0 after it ended
/// - `dify_batch_ledger_documents{job,state}` gauge — every document version in the ledger by state (when
///   ``render(ledgerCounts:)`` is given counts)
public final class MetricsRegistry: PipelineObserver {
    /// Histogram bucket upper bounds in seconds (`+Inf` is added).
    public static let latencyBuckets: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

    struct Histogram {
        var buckets: [Int]
        var sum: Double = 0
        var count = 0
    }

    struct State {
        var lastState: [Int64: (job: String, state: DocumentState)] = [:]
        var documents: [String: [DocumentState: Int]] = [:]
        var settled: [String: [DocumentState: Int]] = [:]
        var attempts: [LabelKey: Int] = [:]
        var errors: [LabelKey: Int] = [:]
        var latency: [LabelKey: Histogram] = [:]
        var tokens: [LabelKey: Int] = [:]
        var price: [LabelKey: Decimal] = [:]
        var queue: [String: (inFlight: Int, waiting: Int)] = [:]
        var running: [String: Bool] = [:]
        /// Every job this process served (``PipelineEvent/jobAdmitted(job:)``), also those `watch` loaded later.
        var served: Set<String> = []
    }

    struct LabelKey: Hashable, Comparable {
        var values: [String]
        static func < (lhs: LabelKey, rhs: LabelKey) -> Bool { lhs.values.lexicographicallyPrecedes(rhs.values) }
    }

    private let state = Mutex(State())

    public init() {}

    public func record(_ event: PipelineEvent) {
        state.withLock { state in
            switch event {
            case .jobAdmitted(let job):
                state.served.insert(job)
                // Its labels exist from now on (0 until its preflight passed), also for a job `watch` loaded later.
                if state.running[job] == nil { state.running[job] = false }
            case .jobStarted(let job, _):
                state.running[job] = true
            case .jobFinished(let job, _):
                state.running[job] = false
            case .documentSettled(let job, let document):
                if let previous = state.lastState.updateValue((job, document.state), forKey: document.id) {
                    state.documents[previous.job, default: [:]][previous.state, default: 0] -= 1
                }
                state.documents[job, default: [:]][document.state, default: 0] += 1
                state.settled[job, default: [:]][document.state, default: 0] += 1
            case .attemptFinished(let job, let phase, let outcome, let seconds):
                state.attempts[LabelKey(values: [job, phase.rawValue, outcome]), default: 0] += 1
                if outcome != "ok" { state.errors[LabelKey(values: [job, phase.rawValue, outcome]), default: 0] += 1 }
                let key = LabelKey(values: [job, phase.rawValue])
                var histogram = state.latency[key] ?? Histogram(buckets: Array(repeating: 0, count: Self.latencyBuckets.count))
                for (index, bound) in Self.latencyBuckets.enumerated() where seconds <= bound { histogram.buckets[index] += 1 }
                histogram.sum += seconds
                histogram.count += 1
                state.latency[key] = histogram
            case .usageRecorded(let job, let usage):
                state.tokens[LabelKey(values: [job, "prompt"]), default: 0] += usage.promptTokens ?? 0
                state.tokens[LabelKey(values: [job, "completion"]), default: 0] += usage.completionTokens ?? 0
                state.tokens[LabelKey(values: [job, "total"]), default: 0] += usage.totalTokens ?? 0
                if let price = usage.totalPrice {
                    state.price[LabelKey(values: [job, usage.currency ?? ""]), default: 0] += price
                }
            case .queue(let job, let inFlight, let waiting):
                state.queue[job] = (inFlight, waiting)
            case .unsettled:
                break
            }
        }
    }

    /// The names of the jobs this process served so far, including jobs `watch` started after loading the specs
    /// again (their ledger counts belong in ``render(ledgerCounts:)``).
    public var servedJobs: Set<String> { state.withLock { $0.served } }

    /// The metrics in the text exposition format 0.0.4 (ends with a newline). `ledgerCounts` (job name → counts by
    /// state, as read from the ledger) adds `dify_batch_ledger_documents` with every state of each job listed.
    public func render(ledgerCounts: [String: [DocumentState: Int]]? = nil) -> String {
        let state = self.state.withLock { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(PrometheusText.escapeHelp(help))\n# TYPE \(name) \(type)\n"
        }
        func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
            out += "\(name)\(PrometheusText.labels(labels)) \(PrometheusText.value(value))\n"
        }

        family("dify_batch_documents", "gauge", "Documents by the state they last settled in during this process.")
        for job in state.documents.keys.sorted() {
            for (docState, count) in state.documents[job, default: [:]].sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                sample("dify_batch_documents", [("job", job), ("state", docState.rawValue)], Double(count))
            }
        }
        family("dify_batch_documents_settled_total", "counter", "Documents reaching a resting state, by state.")
        for job in state.settled.keys.sorted() {
            for (docState, count) in state.settled[job, default: [:]].sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                sample("dify_batch_documents_settled_total", [("job", job), ("state", docState.rawValue)], Double(count))
            }
        }
        family("dify_batch_attempts_total", "counter", "Dify calls and phases (upload, run, recover) by outcome.")
        for (key, count) in state.attempts.sorted(by: { $0.key < $1.key }) {
            sample("dify_batch_attempts_total", [("job", key.values[0]), ("phase", key.values[1]), ("outcome", key.values[2])], Double(count))
        }
        family("dify_batch_errors_total", "counter", "Attempts that did not succeed, by phase and error class.")
        for (key, count) in state.errors.sorted(by: { $0.key < $1.key }) {
            sample("dify_batch_errors_total", [("job", key.values[0]), ("phase", key.values[1]), ("class", key.values[2])], Double(count))
        }
        let latencyName = "dify_batch_dify_request_duration_seconds"
        family(latencyName, "histogram", "Duration of Dify calls and phases in seconds.")
        for (key, histogram) in state.latency.sorted(by: { $0.key < $1.key }) {
            let base = [("job", key.values[0]), ("phase", key.values[1])]
            for (index, bound) in Self.latencyBuckets.enumerated() {
                sample(latencyName + "_bucket", base + [("le", PrometheusText.bound(bound))], Double(histogram.buckets[index]))
            }
            sample(latencyName + "_bucket", base + [("le", "+Inf")], Double(histogram.count))
            sample(latencyName + "_sum", base, histogram.sum)
            sample(latencyName + "_count", base, Double(histogram.count))
        }
        family("dify_batch_tokens_total", "counter", "Tokens reported by Dify, by kind (prompt, completion, total).")
        for (key, count) in state.tokens.sorted(by: { $0.key < $1.key }) {
            sample("dify_batch_tokens_total", [("job", key.values[0]), ("kind", key.values[1])], Double(count))
        }
        family("dify_batch_price_total", "counter", "Price reported by Dify, by currency.")
        for (key, price) in state.price.sorted(by: { $0.key < $1.key }) {
            sample("dify_batch_price_total", [("job", key.values[0]), ("currency", key.values[1])], NSDecimalNumber(decimal: price).doubleValue)
        }
        family("dify_batch_queue_waiting", "gauge", "Documents waiting (pending, or failed with a retry time).")
        for job in state.queue.keys.sorted() { sample("dify_batch_queue_waiting", [("job", job)], Double(state.queue[job]!.waiting)) }
        family("dify_batch_inflight", "gauge", "Documents in flight.")
        for job in state.queue.keys.sorted() { sample("dify_batch_inflight", [("job", job)], Double(state.queue[job]!.inFlight)) }
        family("dify_batch_job_running", "gauge", "1 while the job is working, 0 after it ended.")
        for job in state.running.keys.sorted() { sample("dify_batch_job_running", [("job", job)], state.running[job]! ? 1 : 0) }
        if let ledgerCounts {
            family("dify_batch_ledger_documents", "gauge", "Document versions in the ledger by state (all runs).")
            for job in ledgerCounts.keys.sorted() {
                for docState in DocumentState.allCases {
                    sample("dify_batch_ledger_documents", [("job", job), ("state", docState.rawValue)], Double(ledgerCounts[job]?[docState] ?? 0))
                }
            }
        }
        return out
    }
}
