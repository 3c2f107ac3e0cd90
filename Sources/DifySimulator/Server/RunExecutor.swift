import Foundation

/// Plays one run in the simulator's background task group, so it finishes even when the client has gone.
/// Emits ``StreamFrame``s; the last one is always `.done`.
struct RunExecutor: Sendable {
    let simulator: DifySimulator
    let plan: RunPlan

    private static let startNode = ("1700000000001", "start", "Start")
    private static let llmNode = ("1700000000002", "llm", "LLM")
    private static let endNode = ("1700000000003", "end", "End")

    func execute(_ out: AsyncStream<StreamFrame>.Continuation) async {
        defer { out.finish() }
        let outcome: RunOutcome
        switch plan.kind {
        case .workflow: outcome = await executeWorkflow(out)
        case .completion, .chat: outcome = await executeMessage(out)
        }
        out.yield(.done(outcome))
    }

    private var now: Int { simulator.nowSeconds }

    /// Waits the processing time, pinging every `pingInterval` (streaming only); true if stopped.
    private func process(_ out: AsyncStream<StreamFrame>.Continuation) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + plan.processing
        let pingInterval = max(simulator.configuration.pingInterval, .milliseconds(1))
        var nextPing = clock.now + pingInterval
        while clock.now < deadline {
            if simulator.state.isStopRequested(id: plan.runID) || Task.isCancelled || simulator.shutdown.isSet { return true }
            let wake = min(deadline, nextPing, clock.now + .milliseconds(50))
            try? await Task.sleep(until: wake, clock: clock)
            if plan.streaming, clock.now >= nextPing {
                out.yield(.ping)
                nextPing += pingInterval
            }
        }
        return simulator.state.isStopRequested(id: plan.runID)
    }

    /// Records the end of the run (once): record, stats, concurrency slot.
    private func finalize(
        status: String, outputs: JSONValue, error: String?, tokens: Int, price: Decimal, steps: Int, releaseSlot: Bool = true
    ) -> RunRecord {
        let finishedAt = now
        simulator.state.updateRun(id: plan.runID) { r in
            r.status = status
            r.outputs = outputs
            r.error = error
            r.totalTokens = tokens
            r.totalSteps = steps
            r.finishedAt = finishedAt
            r.elapsed = (ContinuousClock.now - r.startedAt).seconds
        }
        simulator.recorder.runEnded(status: status, tokens: tokens, price: price)
        if releaseSlot { simulator.state.releaseSlot() }
        return simulator.state.run(id: plan.runID)!
    }

    // MARK: Workflow

    private func envelope(_ event: String, _ data: JSONValue) -> JSONValue {
        .object([("event", .string(event)), ("workflow_run_id", .string(plan.runID)), ("task_id", .string(plan.taskID)), ("data", data)])
    }

    private func nodeStarted(_ node: (String, String, String), id: String, index: Int) -> JSONValue {
        envelope(
            "node_started",
            .object([
                ("id", .string(id)), ("node_id", .string(node.0)), ("node_type", .string(node.1)), ("title", .string(node.2)),
                ("index", .int(index)), ("predecessor_node_id", .null), ("inputs", .null), ("inputs_truncated", false),
                ("created_at", .int(now)), ("extras", .object([])), ("iteration_id", .null), ("loop_id", .null),
                ("agent_strategy", .null),
            ]))
    }

    private func nodeFinished(
        _ node: (String, String, String), id: String, index: Int, inputs: JSONValue, outputs: JSONValue, status: String,
        error: String?, elapsed: Double, metadata: JSONValue, processData: JSONValue = .object([])
    ) -> JSONValue {
        envelope(
            "node_finished",
            .object([
                ("id", .string(id)), ("node_id", .string(node.0)), ("node_type", .string(node.1)), ("title", .string(node.2)),
                ("index", .int(index)), ("predecessor_node_id", .null), ("inputs", inputs), ("inputs_truncated", false),
                ("process_data", processData), ("process_data_truncated", false), ("outputs", outputs),
                ("outputs_truncated", false), ("status", .string(status)), ("error", .optional(error)),
                ("elapsed_time", .double(elapsed)), ("execution_metadata", metadata), ("created_at", .int(now)),
                ("finished_at", .int(now)), ("files", .array([])), ("iteration_id", .null), ("loop_id", .null),
            ]))
    }

    private func workflowFinished(_ run: RunRecord) -> JSONValue {
        envelope(
            "workflow_finished",
            .object([
                ("id", .string(run.id)), ("workflow_id", .string(run.workflowID)), ("status", .string(run.status)),
                ("outputs", run.outputs), ("error", .optional(run.error)), ("elapsed_time", .double(run.elapsed ?? 0)),
                ("total_tokens", .int(run.totalTokens)), ("total_steps", .int(run.totalSteps)),
                ("created_by", .object([("id", .string(plan.endUserID)), ("user", .string(plan.user))])),
                ("created_at", .int(run.createdAt)), ("finished_at", run.finishedAt.map(JSONValue.int) ?? .null),
                ("exceptions_count", 0), ("files", .array([])),
            ]))
    }

    private func executeWorkflow(_ out: AsyncStream<StreamFrame>.Continuation) async -> RunOutcome {
        let app = plan.app
        out.yield(
            .event(
                envelope(
                    "workflow_started",
                    .object([
                        ("id", .string(plan.runID)), ("workflow_id", .string(app.workflowID)), ("inputs", plan.startedInputs),
                        ("created_at", .int(plan.createdAt)), ("reason", "initial"),
                    ])), isStart: true))
        let startID = StableID.random()
        out.yield(.event(nodeStarted(Self.startNode, id: startID, index: 1), isStart: false))
        let userInputs: JSONValue = .object((plan.startedInputs.objectValue ?? []).filter { !$0.0.hasPrefix("sys.") })
        out.yield(
            .event(
                nodeFinished(
                    Self.startNode, id: startID, index: 1, inputs: userInputs, outputs: userInputs, status: "succeeded", error: nil,
                    elapsed: 0.0002, metadata: .null), isStart: false))
        let llmID = StableID.random()
        out.yield(.event(nodeStarted(Self.llmNode, id: llmID, index: 2), isStart: false))
        let llmStart = ContinuousClock.now
        let stopped = await process(out)
        let llmElapsed = (ContinuousClock.now - llmStart).seconds
        if stopped {
            let run = finalize(status: "stopped", outputs: .object([]), error: "Workflow execution stopped by user.", tokens: 0, price: 0, steps: 2)
            out.yield(.event(workflowFinished(run), isStart: false))
            return .workflow(run)
        }
        switch plan.fault {
        case let .inStreamError(status, code, message):
            _ = finalize(status: "failed", outputs: .object([]), error: message, tokens: 0, price: 0, steps: 2)
            out.yield(
                .event(
                    .object([
                        ("event", "error"), ("workflow_run_id", .string(plan.runID)), ("code", .string(code)),
                        ("status", .int(status)), ("message", .string(message)),
                    ]), isStart: false))
            return .error(status: status, code: code, message: message)
        case .failedWorkflow:
            let message = simulator.configuration.faults.failedWorkflowMessage ?? "[simulator] Injected node failure: the model returned an invalid response."
            out.yield(
                .event(
                    nodeFinished(
                        Self.llmNode, id: llmID, index: 2, inputs: .object([]), outputs: .object([]), status: "failed",
                        error: message, elapsed: llmElapsed, metadata: .null), isStart: false))
            let run = finalize(status: "failed", outputs: .object([]), error: message, tokens: 0, price: 0, steps: 2)
            out.yield(.event(workflowFinished(run), isStart: false))
            return .workflow(run)
        case .none:
            break
        }
        let outputs = SimulatedOutput.outputsJSON(plan.summary, filename: plan.filename, language: plan.language)
        let usage = SimulatedOutput.usage(byteCount: plan.summary.bytes, wordCount: plan.summary.words)
        out.yield(
            .event(
                envelope(
                    "text_chunk", .object([("text", .string(plan.summary.text)), ("from_variable_selector", [.string(Self.llmNode.0), "text"])])),
                isStart: false))
        let metadata: JSONValue = .object([
            ("total_tokens", .int(usage.total)), ("total_price", .string(SimulatedOutput.priceString(usage.price))),
            ("currency", .string(usage.currency)),
        ])
        // The LLM node's usage as real Dify gives it: in outputs, process_data and (totals) execution_metadata.
        let llmUsage = Self.usageJSON(prompt: usage.prompt, completion: usage.completion, latency: llmElapsed, timing: true)
        out.yield(
            .event(
                nodeFinished(
                    Self.llmNode, id: llmID, index: 2, inputs: .object([]), outputs: outputs.adding("usage", llmUsage), status: "succeeded",
                    error: nil, elapsed: llmElapsed, metadata: metadata,
                    processData: .object([("model_mode", "chat"), ("usage", llmUsage), ("finish_reason", "stop")])), isStart: false))
        // The model call completed: the provider has charged it, whatever happens to the response.
        simulator.recorder.billed(sha256: plan.sha256, uploadFileID: plan.uploadFileID, tokens: usage.total, price: usage.price)
        if plan.pauses {
            let resumed = await pauseForHumanInput(out, tokens: usage.total, steps: 2)
            if !resumed { return .paused(simulator.state.run(id: plan.runID)!, pausedNodes: [Self.humanNode.0]) }
        }
        let endIndex = plan.pauses ? 4 : 3
        let endID = StableID.random()
        out.yield(.event(nodeStarted(Self.endNode, id: endID, index: endIndex), isStart: false))
        out.yield(
            .event(
                nodeFinished(
                    Self.endNode, id: endID, index: endIndex, inputs: outputs, outputs: outputs, status: "succeeded", error: nil,
                    elapsed: 0.0001, metadata: .null), isStart: false))
        let run = finalize(
            status: "succeeded", outputs: outputs, error: nil, tokens: usage.total, price: usage.price, steps: endIndex,
            releaseSlot: !plan.pauses)
        out.yield(.event(workflowFinished(run), isStart: false))
        return .workflow(run)
    }

    // MARK: Human input (paused runs)

    static let humanNode = ("1700000000004", "human-input", "Human Input")

    /// One `reasons` entry of a paused run (Dify `HumanInputRequired` pause reason).
    static func pauseReason(runID: String, nodeID: String) -> JSONValue {
        .object([
            ("type", "human_input_required"), ("form_id", .string("form-" + runID)), ("node_id", .string(nodeID)),
            ("expiration_time", .int(Int(Date().timeIntervalSince1970) + 7 * 86_400)),
        ])
    }

    /// Pauses at the Human Input node: `human_input_required`, `workflow_paused`, then the client's stream (or
    /// blocking response) ends while the run waits, releasing its concurrency slot as Dify's request ends. Returns
    /// true once resumed (``DifySimulator/resumePausedRun(id:)`` or ``FaultPlan/pausedRunResumeAfter``), false
    /// when the simulator stops first (the run stays paused).
    private func pauseForHumanInput(_ out: AsyncStream<StreamFrame>.Continuation, tokens: Int, steps: Int) async -> Bool {
        let node = Self.humanNode
        let humanID = StableID.random()
        out.yield(.event(nodeStarted(node, id: humanID, index: 3), isStart: false))
        let reason = Self.pauseReason(runID: plan.runID, nodeID: node.0)
        out.yield(
            .event(
                envelope(
                    "human_input_required",
                    .object([
                        ("form_id", reason["form_id"] ?? .null), ("node_id", .string(node.0)), ("node_title", .string(node.2)),
                        ("form_content", "Please review the document summary."), ("inputs", .array([])),
                        ("actions", .array([.object([("id", "approve"), ("title", "Approve")])])), ("display_in_ui", true),
                        ("form_token", .string(StableID.nonce())), ("resolved_default_values", .object([])),
                        ("expiration_time", reason["expiration_time"] ?? .null),
                    ])), isStart: false))
        simulator.state.updateRun(id: plan.runID) { r in
            r.status = "paused"
            r.totalTokens = tokens
            r.totalSteps = steps
            r.elapsed = (ContinuousClock.now - r.startedAt).seconds
        }
        simulator.state.releaseSlot()
        simulator.recorder.runPaused()
        let run = simulator.state.run(id: plan.runID)!
        out.yield(
            .event(
                envelope(
                    "workflow_paused",
                    .object([
                        ("workflow_run_id", .string(plan.runID)), ("paused_nodes", [.string(node.0)]), ("outputs", .object([])),
                        ("reasons", [reason]), ("status", "paused"), ("created_at", .int(run.createdAt)),
                        ("elapsed_time", .double(run.elapsed ?? 0)), ("total_tokens", .int(tokens)), ("total_steps", .int(steps)),
                    ])), isStart: false))
        out.yield(.done(.paused(run, pausedNodes: [node.0])))
        out.finish()
        let clock = ContinuousClock()
        let deadline = simulator.configuration.faults.pausedRunResumeAfter.map { clock.now + $0 }
        while simulator.state.run(id: plan.runID)?.resumeRequested != true {
            if Task.isCancelled || simulator.shutdown.isSet { return false }
            if let deadline, clock.now >= deadline { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        simulator.state.updateRun(id: plan.runID) { r in
            r.status = "running"
            r.elapsed = nil
        }
        simulator.recorder.runResumed()
        return true
    }

    // MARK: Completion / chat

    private func messageEnvelope(_ event: String, _ extra: [(String, JSONValue)], withTask: Bool = true) -> JSONValue {
        var pairs: [(String, JSONValue)] = [("event", .string(event))]
        if withTask { pairs.append(("task_id", .string(plan.taskID))) }
        pairs += [("id", .string(plan.runID)), ("message_id", .string(plan.runID))]
        if plan.kind == .chat { pairs.append(("conversation_id", .string(plan.conversationID))) }
        pairs += extra
        pairs.append(("created_at", .int(plan.createdAt)))
        return .object(pairs)
    }

    /// A model usage object with real Dify's keys (capture `llm/22_llmflow_streaming`); `timing`: seconds to the
    /// first token and to generate (an LLM node), else null (a completion `message_end`, capture `llm/11`).
    static func usageJSON(prompt: Int, completion: Int, latency: Double, timing: Bool = false) -> JSONValue {
        let promptPrice = Decimal(prompt) * Decimal(string: "0.000002")!
        let completionPrice = Decimal(completion) * Decimal(string: "0.000004")!
        return .object([
            ("prompt_tokens", .int(prompt)), ("prompt_unit_price", "0.002"), ("prompt_price_unit", "0.001"),
            ("prompt_price", .string(SimulatedOutput.priceString(promptPrice))), ("completion_tokens", .int(completion)),
            ("completion_unit_price", "0.004"), ("completion_price_unit", "0.001"),
            ("completion_price", .string(SimulatedOutput.priceString(completionPrice))), ("total_tokens", .int(prompt + completion)),
            ("total_price", .string(SimulatedOutput.priceString(promptPrice + completionPrice))), ("currency", "USD"),
            ("latency", .double(latency)),
            ("time_to_first_token", timing ? .double(latency / 4) : .null), ("time_to_generate", timing ? .double(latency * 3 / 4) : .null),
        ])
    }

    /// Completion/chat: the first answer piece, then the processing time (pings, stop), then the rest and
    /// `message_end` — or an `error` event, or a `message_end` with the partial answer when stopped.
    private func executeMessage(_ out: AsyncStream<StreamFrame>.Continuation) async -> RunOutcome {
        let outputs = SimulatedOutput.outputsJSON(plan.summary, filename: plan.filename, language: plan.language)
        var answer = SimulatedOutput.answerJSON(outputs)
        if plan.kind == .chat { answer = SimulatedOutput.chatAnswer(answer) }
        // The answer streams in up to four pieces, split on character boundaries.
        let characters = Array(answer)
        let pieceSize = max(1, (characters.count + 3) / 4)
        let pieces = stride(from: 0, to: characters.count, by: pieceSize).map {
            String(characters[$0..<min(characters.count, $0 + pieceSize)])
        }
        let start = ContinuousClock.now
        if let first = pieces.first {
            out.yield(.event(messageEnvelope("message", [("answer", .string(first))]), isStart: true))
        }
        let stopped = await process(out)
        let latency = (ContinuousClock.now - start).seconds
        if stopped {
            let usage = Self.usageJSON(prompt: 0, completion: 0, latency: latency)
            let partial = pieces.first ?? ""
            let run = finalize(status: "stopped", outputs: .object([("answer", .string(partial))]), error: nil, tokens: 0, price: 0, steps: 0)
            out.yield(
                .event(
                    messageEnvelope("message_end", [("metadata", .object([("usage", usage), ("retriever_resources", .array([]))])), ("files", .null)]),
                    isStart: false))
            return .message(run, answer: partial, usage: usage)
        }
        if case let .inStreamError(status, code, message) = plan.fault {
            _ = finalize(status: "failed", outputs: .object([]), error: message, tokens: 0, price: 0, steps: 0)
            out.yield(
                .event(
                    messageEnvelope("error", [("code", .string(code)), ("status", .int(status)), ("message", .string(message))], withTask: false),
                    isStart: false))
            return .error(status: status, code: code, message: message)
        }
        let usage = SimulatedOutput.usage(byteCount: plan.summary.bytes, wordCount: plan.summary.words)
        let usageJSON = Self.usageJSON(prompt: usage.prompt, completion: usage.completion, latency: latency)
        for piece in pieces.dropFirst() {
            out.yield(.event(messageEnvelope("message", [("answer", .string(piece))]), isStart: false))
        }
        // Real Dify closes the answer with an empty `message` right before `message_end` (capture `llm/11`).
        out.yield(.event(messageEnvelope("message", [("answer", "")]), isStart: false))
        let run = finalize(
            status: "succeeded", outputs: .object([("answer", .string(answer))]), error: nil, tokens: usage.total, price: usage.price,
            steps: 1)
        simulator.recorder.billed(sha256: plan.sha256, uploadFileID: plan.uploadFileID, tokens: usage.total, price: usage.price)
        out.yield(
            .event(
                messageEnvelope(
                    "message_end", [("metadata", .object([("usage", usageJSON), ("retriever_resources", .array([]))])), ("files", .null)]),
                isStart: false))
        return .message(run, answer: answer, usage: usageJSON)
    }
}
