import Foundation

/// Ids carried by every Dify stream event (those that apply).
public struct EventEnvelope: Sendable, Hashable {
    public var workflowRunID: String?
    public var taskID: String?
    public var messageID: String?
    public var conversationID: String?
    /// The whole JSON payload of the event.
    public var raw: JSONValue

    init(raw: JSONValue) {
        self.raw = raw
        workflowRunID = raw["workflow_run_id"]?.stringValue
        taskID = raw["task_id"]?.stringValue
        // Chat events carry `message_id`; completion `message_end` carries `id`.
        messageID = raw["message_id"]?.stringValue
        conversationID = raw["conversation_id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
    }

    var data: JSONValue { raw["data"] ?? .object([:]) }
}

/// `node_finished` / `node_started` / `iteration_completed` / `loop_completed` payload.
public struct NodeEvent: Sendable, Hashable {
    public var envelope: EventEnvelope
    /// Node execution id.
    public var id: String?
    public var nodeID: String?
    public var nodeType: String?
    public var title: String?
    public var status: String?
    public var error: String?
    /// Set when the node runs inside an iteration / loop.
    public var iterationID: String?
    public var loopID: String?
    public var totalTokens: Int?
    public var totalPrice: Decimal?
    public var currency: String?
    /// The model usage of an LLM-type node execution (`llm`, `question-classifier`, `parameter-extractor`, …):
    /// `outputs.usage`, else `process_data.usage` (capture `llm/22_llmflow_streaming`). Only read for
    /// `node_finished`; nil for nodes without a model call and for iteration/loop containers.
    public var llmUsage: Usage?

    init(envelope: EventEnvelope, finished: Bool = false) {
        self.envelope = envelope
        let data = envelope.data
        id = data["id"]?.stringValue
        nodeID = data["node_id"]?.stringValue
        nodeType = data["node_type"]?.stringValue
        title = data["title"]?.stringValue
        status = data["status"]?.stringValue
        error = data["error"]?.stringValue
        iterationID = data["iteration_id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        loopID = data["loop_id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        let metadata = data["execution_metadata"] ?? data["metadata"]
        totalTokens = metadata?["total_tokens"]?.intValue ?? data["total_tokens"]?.intValue
        totalPrice = metadata?["total_price"]?.decimalValue
        currency = metadata?["currency"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        if finished, nodeType != "iteration", nodeType != "loop",
           let usage = data["outputs"]?["usage"] ?? data["process_data"]?["usage"], usage.objectValue != nil {
            llmUsage = Usage(json: usage)
        }
    }
}

/// `workflow_started`.
public struct WorkflowStartedEvent: Sendable, Hashable {
    public var envelope: EventEnvelope
    public var workflowRunID: String?
    public var workflowID: String?
    /// Dify's clock: `data.created_at`.
    public var createdAt: Date?

    init(envelope: EventEnvelope) {
        self.envelope = envelope
        workflowRunID = envelope.workflowRunID ?? envelope.data["id"]?.stringValue
        workflowID = envelope.data["workflow_id"]?.stringValue
        createdAt = Lenient.date(envelope.data["created_at"])
    }
}

/// `workflow_finished` / `workflow_paused`. A paused event's `data` carries `workflow_run_id` (not `id`),
/// `paused_nodes`, `reasons` (e.g. `{"type":"human_input_required","form_id",…}`), `status: "paused"` and no
/// `finished_at` (Dify `WorkflowPauseStreamResponse`, dify-api.md §2.4).
public struct WorkflowFinishedEvent: Sendable, Hashable {
    public var envelope: EventEnvelope
    public var id: String?
    public var workflowID: String?
    public var status: RunStatus
    public var outputs: [String: JSONValue]
    public var error: String?
    public var elapsedTime: Double?
    public var totalTokens: Int?
    public var totalSteps: Int?
    public var createdAt: Date?
    /// `paused_nodes` of a `workflow_paused` event.
    public var pausedNodes: [String]

    init(envelope: EventEnvelope, defaultStatus: RunStatus) {
        self.envelope = envelope
        let data = envelope.data
        id = data["id"]?.stringValue ?? data["workflow_run_id"]?.stringValue
        workflowID = data["workflow_id"]?.stringValue
        status = data["status"]?.stringValue.map(RunStatus.init(rawValue:)) ?? defaultStatus
        outputs = Lenient.objectOrJSONString(data["outputs"])
        error = data["error"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        elapsedTime = data["elapsed_time"]?.lenientDouble
        totalTokens = data["total_tokens"]?.intValue
        totalSteps = data["total_steps"]?.intValue
        createdAt = Lenient.date(data["created_at"])
        pausedNodes = data["paused_nodes"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }
}

/// `message` / `agent_message` / `message_replace`.
public struct MessageEvent: Sendable, Hashable {
    public var envelope: EventEnvelope
    public var answer: String

    init(envelope: EventEnvelope) {
        self.envelope = envelope
        answer = envelope.raw["answer"]?.stringValue ?? ""
    }
}

/// `message_end`.
public struct MessageEndEvent: Sendable, Hashable {
    public var envelope: EventEnvelope
    public var messageID: String?
    public var usage: Usage?

    init(envelope: EventEnvelope) {
        self.envelope = envelope
        messageID = envelope.messageID ?? envelope.raw["id"]?.stringValue
        usage = envelope.raw["metadata"]?["usage"].map(Usage.init(json:))
    }
}

/// In-stream `error`.
public struct StreamErrorEvent: Sendable, Hashable {
    public var envelope: EventEnvelope
    public var code: String?
    public var status: Int?
    public var message: String

    init(envelope: EventEnvelope) {
        self.envelope = envelope
        code = envelope.raw["code"]?.stringValue
        status = envelope.raw["status"]?.intValue
        message = envelope.raw["message"]?.stringValue ?? "error event without message"
    }
}

/// A typed Dify stream event.
public enum DifyStreamEvent: Sendable, Hashable {
    case ping
    case workflowStarted(WorkflowStartedEvent)
    case nodeStarted(NodeEvent)
    case nodeFinished(NodeEvent)
    case iterationCompleted(NodeEvent)
    case loopCompleted(NodeEvent)
    case textChunk(String, EventEnvelope)
    case workflowFinished(WorkflowFinishedEvent)
    case workflowPaused(WorkflowFinishedEvent)
    case message(MessageEvent)
    case agentMessage(MessageEvent)
    case messageReplace(MessageEvent)
    case messageEnd(MessageEndEvent)
    case error(StreamErrorEvent)
    /// Any other event (ignored by the run logic; new ones keep appearing).
    case other(name: String, EventEnvelope)

    /// Decodes one SSE event. Returns nil for blocks that are not Dify events (empty or non-JSON data).
    public static func decode(_ sse: SSEEvent) -> DifyStreamEvent? {
        let trimmed = sse.data.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty {
            return sse.event == "ping" ? .ping : nil
        }
        guard let json = try? JSONValue.parse(trimmed), json.objectValue != nil else { return nil }
        return typed(json, eventField: sse.event)
    }

    /// The typed event for a decoded JSON object (`eventField`: the SSE `event:` field, used when the JSON
    /// has no `event` key).
    static func typed(_ json: JSONValue, eventField: String?) -> DifyStreamEvent {
        let name = json["event"]?.stringValue ?? eventField ?? ""
        let envelope = EventEnvelope(raw: json)
        switch name {
        case "ping": return .ping
        case "workflow_started": return .workflowStarted(WorkflowStartedEvent(envelope: envelope))
        case "node_started": return .nodeStarted(NodeEvent(envelope: envelope))
        case "node_finished": return .nodeFinished(NodeEvent(envelope: envelope, finished: true))
        case "iteration_completed": return .iterationCompleted(NodeEvent(envelope: envelope))
        case "loop_completed": return .loopCompleted(NodeEvent(envelope: envelope))
        case "text_chunk": return .textChunk(envelope.data["text"]?.stringValue ?? "", envelope)
        case "workflow_finished":
            return .workflowFinished(WorkflowFinishedEvent(envelope: envelope, defaultStatus: .unknown("missing")))
        case "workflow_paused": return .workflowPaused(WorkflowFinishedEvent(envelope: envelope, defaultStatus: .paused))
        case "message": return .message(MessageEvent(envelope: envelope))
        case "agent_message": return .agentMessage(MessageEvent(envelope: envelope))
        case "message_replace": return .messageReplace(MessageEvent(envelope: envelope))
        case "message_end": return .messageEnd(MessageEndEvent(envelope: envelope))
        case "error": return .error(StreamErrorEvent(envelope: envelope))
        default: return .other(name: name, envelope)
        }
    }

    /// The event's name as Dify spells it.
    public var name: String {
        switch self {
        case .ping: return "ping"
        case .workflowStarted: return "workflow_started"
        case .nodeStarted: return "node_started"
        case .nodeFinished: return "node_finished"
        case .iterationCompleted: return "iteration_completed"
        case .loopCompleted: return "loop_completed"
        case .textChunk: return "text_chunk"
        case .workflowFinished: return "workflow_finished"
        case .workflowPaused: return "workflow_paused"
        case .message: return "message"
        case .agentMessage: return "agent_message"
        case .messageReplace: return "message_replace"
        case .messageEnd: return "message_end"
        case .error: return "error"
        case .other(let name, _): return name
        }
    }
}

// MARK: - Accumulation

/// Folds stream events into a ``RunResult``.
struct RunAccumulator: Sendable {
    enum Step: Sendable {
        case proceed
        case finished
        case failed(StreamErrorEvent)
    }

    let mode: AppMode
    var workflowRunID: String?
    var taskID: String?
    var messageID: String?
    var conversationID: String?
    var workflowID: String?
    var createdAt: Date?
    var startedReported = false

    var answer = ""
    var sawAnswer = false
    var sawAgentMessage = false
    var finished: WorkflowFinishedEvent?
    var sawMessageEnd = false
    var messageUsage: Usage?
    /// Price per priced unit: top-level node executions, and iteration/loop containers keyed by node id
    /// (so a container's `node_finished` and its `*_completed` event count once).
    var prices: [String: Decimal] = [:]
    var currency: String?
    /// Model usage per LLM node execution id (inside iterations and loops too; a repeated event counts once).
    var nodeUsages: [String: Usage] = [:]
    /// The last top-level node that finished `failed`: its title, else its node id.
    var failedNode: String?

    init(mode: AppMode) { self.mode = mode }

    var runStarted: RunStarted { RunStarted(workflowRunID: workflowRunID, taskID: taskID, messageID: messageID) }

    /// True once ids worth reporting are known and not yet reported.
    mutating func takeStartedIfNew() -> RunStarted? {
        guard !startedReported else { return nil }
        let ready: Bool
        switch mode {
        case .workflow: ready = workflowRunID != nil || taskID != nil
        default: ready = taskID != nil || messageID != nil || workflowRunID != nil
        }
        guard ready else { return nil }
        startedReported = true
        return runStarted
    }

    private mutating func absorb(_ envelope: EventEnvelope) {
        if createdAt == nil, let date = Lenient.date(envelope.raw["created_at"]) { createdAt = date }
        if workflowRunID == nil, let id = envelope.workflowRunID { workflowRunID = id }
        if taskID == nil, let id = envelope.taskID { taskID = id }
        if messageID == nil, let id = envelope.messageID { messageID = id }
        if conversationID == nil, let id = envelope.conversationID { conversationID = id }
    }

    private mutating func addPrice(key: String, _ node: NodeEvent) {
        guard let price = node.totalPrice else { return }
        prices[key] = price
        if currency == nil { currency = node.currency }
    }

    mutating func apply(_ event: DifyStreamEvent) -> Step {
        switch event {
        case .ping:
            return .proceed
        case .workflowStarted(let started):
            absorb(started.envelope)
            if workflowRunID == nil { workflowRunID = started.workflowRunID }
            workflowID = workflowID ?? started.workflowID
            createdAt = createdAt ?? started.createdAt
            return .proceed
        case .nodeStarted(let node):
            absorb(node.envelope)
            return .proceed
        case .nodeFinished(let node):
            absorb(node.envelope)
            if node.status == "failed", node.iterationID == nil, node.loopID == nil {
                failedNode = node.title ?? node.nodeID
            }
            if let usage = node.llmUsage {
                nodeUsages[node.id ?? "node:\(nodeUsages.count)"] = usage
            }
            guard node.iterationID == nil, node.loopID == nil else { return .proceed }
            if node.nodeType == "iteration" || node.nodeType == "loop" {
                addPrice(key: "container:\(node.nodeID ?? node.id ?? UUID().uuidString)", node)
            } else {
                addPrice(key: "node:\(node.id ?? UUID().uuidString)", node)
            }
            return .proceed
        case .iterationCompleted(let node), .loopCompleted(let node):
            absorb(node.envelope)
            guard node.iterationID == nil, node.loopID == nil else { return .proceed }
            addPrice(key: "container:\(node.nodeID ?? node.id ?? UUID().uuidString)", node)
            return .proceed
        case .textChunk(let text, let envelope):
            _ = text  // outputs come complete in workflow_finished
            absorb(envelope)
            return .proceed
        case .workflowFinished(let event), .workflowPaused(let event):
            absorb(event.envelope)
            if workflowRunID == nil { workflowRunID = event.id }
            workflowID = workflowID ?? event.workflowID
            finished = event
            // advanced-chat: message_end precedes workflow_finished; both end the stream here.
            return .finished
        case .message(let message):
            absorb(message.envelope)
            if mode == .agent && sawAgentMessage {
                answer = message.answer  // New Agent: closing `message` holds the full answer
            } else {
                answer += message.answer
            }
            sawAnswer = true
            return .proceed
        case .agentMessage(let message):
            absorb(message.envelope)
            answer += message.answer
            sawAnswer = true
            sawAgentMessage = true
            return .proceed
        case .messageReplace(let message):
            absorb(message.envelope)
            answer = message.answer
            sawAnswer = true
            return .proceed
        case .messageEnd(let end):
            absorb(end.envelope)
            if messageID == nil { messageID = end.messageID }
            sawMessageEnd = true
            messageUsage = end.usage
            return mode == .advancedChat ? .proceed : .finished
        case .error(let error):
            absorb(error.envelope)
            return .failed(error)
        case .other(_, let envelope):
            absorb(envelope)
            return .proceed
        }
    }

    /// True when the stream carried enough to produce a result (used when it closes without the usual terminal).
    var hasResult: Bool { finished != nil || sawMessageEnd }

    var workflowPrice: (Decimal?, String?) {
        guard !prices.isEmpty else { return (nil, nil) }
        return (prices.values.reduce(Decimal(0), +), currency)
    }

    /// The workflow's usage: split and price summed over ``nodeUsages`` (exact decimals); `total_tokens` from
    /// `workflow_finished`. A run mixing currencies has no total price and currency `mixed(A,B)`. Without any
    /// node usage, the price summed from `execution_metadata` (split unknown).
    func workflowUsage() -> Usage {
        var usage = Usage(totalTokens: finished?.totalTokens, source: .stream)
        guard !nodeUsages.isEmpty else {
            let (price, priceCurrency) = workflowPrice
            usage.totalPrice = price
            usage.currency = priceCurrency
            return usage
        }
        var prompt = 0, completion = 0, total = 0
        var price = Decimal(0)
        var pricedNodes = 0
        var currencies = Set<String>()
        for node in nodeUsages.values {
            prompt += node.promptTokens ?? 0
            completion += node.completionTokens ?? 0
            total += node.totalTokens ?? (node.promptTokens ?? 0) + (node.completionTokens ?? 0)
            if let nodePrice = node.totalPrice {
                price += nodePrice
                pricedNodes += 1
            }
            if let currency = node.currency { currencies.insert(currency) }
        }
        usage.promptTokens = prompt
        usage.completionTokens = completion
        if usage.totalTokens == nil { usage.totalTokens = total }
        if currencies.count > 1 {
            usage.currency = "mixed(\(currencies.sorted().joined(separator: ",")))"
        } else {
            usage.totalPrice = pricedNodes > 0 ? price : nil
            usage.currency = currencies.first
        }
        return usage
    }

    func result() -> RunResult {
        let (price, priceCurrency) = workflowPrice
        if mode == .workflow {
            let usage = workflowUsage()
            return RunResult(
                mode: mode,
                status: finished?.status ?? .unknown("missing"),
                outputs: finished?.outputs ?? [:],
                answer: nil,
                error: finished?.error,
                workflowRunID: workflowRunID,
                taskID: taskID,
                messageID: messageID,
                conversationID: conversationID,
                usage: usage,
                elapsedTime: finished?.elapsedTime,
                totalSteps: finished?.totalSteps,
                workflowID: workflowID,
                createdAt: createdAt ?? finished?.createdAt,
                pausedNodes: finished?.pausedNodes ?? [],
                failedNode: finished?.status == .failed ? failedNode : nil
            )
        }
        var usage = messageUsage ?? Usage()
        usage.source = messageUsage == nil ? nil : .message
        if usage.totalTokens == nil { usage.totalTokens = finished?.totalTokens }
        if usage.totalPrice == nil, let price {
            usage.totalPrice = price
            usage.currency = usage.currency ?? priceCurrency
        }
        var outputs = finished?.outputs ?? [:]
        outputs["answer"] = .string(answer)
        return RunResult(
            mode: mode,
            status: finished?.status ?? .succeeded,
            outputs: outputs,
            answer: answer,
            error: finished?.error,
            workflowRunID: workflowRunID,
            taskID: taskID,
            messageID: messageID,
            conversationID: conversationID,
            usage: usage,
            elapsedTime: finished?.elapsedTime ?? usage.latency,
            totalSteps: finished?.totalSteps,
            workflowID: workflowID,
            createdAt: createdAt ?? finished?.createdAt,
            pausedNodes: finished?.pausedNodes ?? []
        )
    }
}

// MARK: - Blocking responses

enum BlockingResponse {
    static func result(mode: AppMode, json: JSONValue) throws -> RunResult {
        guard json.objectValue != nil else { throw LenientDecodingError("run response is not a JSON object") }
        if mode == .workflow {
            guard let data = json["data"] else { throw LenientDecodingError("workflow response has no `data`") }
            let runID = json["workflow_run_id"]?.stringValue ?? data["id"]?.stringValue
            guard let statusText = data["status"]?.stringValue else {
                throw LenientDecodingError("workflow response has no `data.status`")
            }
            return RunResult(
                mode: mode,
                status: RunStatus(rawValue: statusText),
                outputs: Lenient.objectOrJSONString(data["outputs"]),
                error: data["error"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 },
                workflowRunID: runID,
                taskID: json["task_id"]?.stringValue,
                usage: Usage(totalTokens: data["total_tokens"]?.intValue, source: .blocking),
                elapsedTime: data["elapsed_time"]?.lenientDouble,
                totalSteps: data["total_steps"]?.intValue,
                workflowID: data["workflow_id"]?.stringValue,
                createdAt: Lenient.date(data["created_at"]),
                // Dify ≥ 1.13 answers a blocking run that pauses with HTTP 200 and `data.status: "paused"`,
                // `finished_at: null`, `paused_nodes`, `reasons` (WorkflowAppPausedBlockingResponse).
                pausedNodes: data["paused_nodes"]?.arrayValue?.compactMap(\.stringValue) ?? []
            )
        }
        guard let answer = json["answer"]?.stringValue else {
            throw LenientDecodingError("message response has no `answer`")
        }
        var usage = json["metadata"]?["usage"].map(Usage.init(json:)) ?? Usage()
        if json["metadata"]?["usage"] != nil { usage.source = .message }
        return RunResult(
            mode: mode,
            status: .succeeded,
            outputs: ["answer": .string(answer)],
            answer: answer,
            workflowRunID: json["workflow_run_id"]?.stringValue,
            taskID: json["task_id"]?.stringValue,
            messageID: json["message_id"]?.stringValue ?? json["id"]?.stringValue,
            conversationID: json["conversation_id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 },
            usage: usage,
            elapsedTime: usage.latency,
            createdAt: Lenient.date(json["created_at"])
        )
    }
}
