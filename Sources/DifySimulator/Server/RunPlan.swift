/// The values that travel between ``RunHandler`` (HTTP side) and ``RunExecutor`` (background side).

/// Which generate endpoint was called.
enum RunKind: Sendable {
    case workflow, completion, chat

    var payloadName: String {
        switch self {
        case .workflow: return "WorkflowRunPayload"
        case .completion: return "CompletionRequestPayload"
        case .chat: return "ChatRequestPayload"
        }
    }
}

/// A frame of a run's event stream, produced by ``RunExecutor`` and consumed by the HTTP response.
enum StreamFrame: Sendable {
    case ping
    /// An event; `isStart` marks the event after which `dropAfterStart` closes the connection.
    case event(JSONValue, isStart: Bool)
    case done(RunOutcome)
}

/// How a run ended, for blocking responses.
enum RunOutcome: Sendable {
    case workflow(RunRecord)
    case message(RunRecord, answer: String, usage: JSONValue)
    /// A workflow paused for human input; the run goes on waiting in the background.
    case paused(RunRecord, pausedNodes: [String])
    case error(status: Int, code: String, message: String)
}

/// The injected in-run fault chosen when a run starts.
enum RunFault: Sendable {
    case none
    case failedWorkflow
    case inStreamError(status: Int, code: String, message: String)
}

/// Everything the executor needs to play a run.
struct RunPlan: Sendable {
    var kind: RunKind
    var app: SimulatedApp
    var runID: String
    var taskID: String
    var conversationID: String
    var user: String
    var endUserID: String
    var startedInputs: JSONValue
    var summary: DocumentSummary
    var filename: String
    var language: String?
    var processing: Duration
    var fault: RunFault
    var streaming: Bool
    var createdAt: Int
    /// `upload_file_id` and content SHA-256 of the first file input (for the stats).
    var uploadFileID: String? = nil
    var sha256: String? = nil
    /// Pause for human input after the LLM node (``FaultPlan/pausedRunRate``).
    var pauses = false
}
