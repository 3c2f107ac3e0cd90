import Foundation

/// Human input for paused workflow runs (``FaultPlan/pausedRunRate``): what a person submitting the Human Input
/// form does in Dify.
extension DifySimulator {
    /// Ids of the workflow runs paused now, oldest first.
    public var pausedRunIDs: [String] {
        configuration.apps.flatMap { state.runs(apiKey: $0.apiKey) }
            .filter { $0.status == "paused" }
            .sorted { $0.createdAt < $1.createdAt }
            .map(\.id)
    }

    /// Resumes a paused run: it continues and finishes `succeeded` with its outputs and usage. Returns false when
    /// no run with this id is paused.
    @discardableResult
    public func resumePausedRun(id: String) -> Bool {
        var resumed = false
        state.updateRun(id: id) { run in
            guard run.status == "paused" else { return }
            run.resumeRequested = true
            resumed = true
        }
        return resumed
    }
}
