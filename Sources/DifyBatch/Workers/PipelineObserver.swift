import Foundation

/// Something that happened in the pipeline, for progress displays, metrics and logs.
public enum PipelineEvent: Sendable {
    /// A job is served by this process: at start, or when `watch` loaded its spec again; its preflight follows.
    case jobAdmitted(job: String)
    /// A job finished its preflight and is about to work.
    case jobStarted(job: String, mode: String)
    /// A job ended (`stop` set when it stopped early).
    case jobFinished(job: String, stop: JobStop?)
    /// A document reached a resting state (terminal, `failed` with a retry time, or back to `pending`).
    case documentSettled(job: String, document: DocumentRecord)
    /// An HTTP call or phase ended: `outcome` as in the attempts table, `seconds` its duration.
    case attemptFinished(job: String, phase: AttemptPhase, outcome: String, seconds: Double)
    /// Tokens and money of one Dify run were recorded.
    case usageRecorded(job: String, usage: UsageAmounts)
    /// Documents in flight and waiting (pending + failed) for a job, after each change of the loop.
    case queue(job: String, inFlight: Int, waiting: Int)
    /// Files a job has seen that have not settled yet (issue 16), after each change of the loop.
    case unsettled(job: String, files: UnsettledFiles)
}

/// Receives pipeline events. Called from worker tasks: implementations must be cheap and thread-safe.
public protocol PipelineObserver: Sendable {
    func record(_ event: PipelineEvent)
}

/// Fans events out to several observers.
public struct PipelineObservers: PipelineObserver {
    public var observers: [any PipelineObserver]

    public init(_ observers: [any PipelineObserver] = []) { self.observers = observers }

    public func record(_ event: PipelineEvent) {
        for observer in observers { observer.record(event) }
    }
}
