import Foundation

/// Decodes SSE events for a run, building only what ``RunAccumulator`` and the typed events read.
///
/// The event name is read first; the top-level members except `data` are built in full (ids, `created_at`,
/// `answer`, `metadata`, error fields: all small), and `data` only in the parts its event type uses. Large
/// members nobody reads (`inputs`, node `outputs` other than `usage`, `process_data` other than `usage`,
/// `files`, …) are skipped at byte level. The typed fields and the folded ``RunResult`` equal those of
/// ``DifyStreamEvent/decode(_:)``; only ``EventEnvelope/raw`` holds less (test: every capture in
/// `Fixtures/dify-captures`). Issue 14.
enum StreamEventFastDecoder {
    /// Node events: the scalar fields of ``NodeEvent`` and, when finished, `outputs.usage`/`process_data.usage`.
    private static let nodeData: JSONSelection = .keys([
        "id": .all, "node_id": .all, "node_type": .all, "title": .all, "status": .all, "error": .all,
        "iteration_id": .all, "loop_id": .all, "execution_metadata": .all, "metadata": .all, "total_tokens": .all,
        "outputs": .keys(["usage": .all]), "process_data": .keys(["usage": .all]),
    ])
    private static let workflowStartedData: JSONSelection = .keys([
        "id": .all, "workflow_id": .all, "created_at": .all,
    ])
    private static let workflowFinishedData: JSONSelection = .keys([
        "id": .all, "workflow_run_id": .all, "workflow_id": .all, "status": .all, "outputs": .all, "error": .all,
        "elapsed_time": .all, "total_tokens": .all, "total_steps": .all, "created_at": .all, "paused_nodes": .all,
    ])
    private static let textChunkData: JSONSelection = .keys(["text": .all])

    /// The selection for `data` of an event name; nil: skip `data`.
    private static func dataSelection(for name: String) -> JSONSelection? {
        switch name {
        case "node_started", "node_finished", "iteration_completed", "loop_completed": return nodeData
        case "workflow_started": return workflowStartedData
        case "workflow_finished", "workflow_paused": return workflowFinishedData
        case "text_chunk": return textChunkData
        case "message", "agent_message", "message_replace", "message_end", "error": return .all
        default: return nil
        }
    }

    private enum Body {
        case empty
        case invalid
        case json(JSONValue)
    }

    /// Same contract as ``DifyStreamEvent/decode(_:)``: nil for blocks that are not Dify events.
    static func decode(_ sse: SSEEvent) -> DifyStreamEvent? {
        var data = sse.data
        let body = data.withUTF8 { buffer -> Body in
            var start = 0
            while start < buffer.count, isWhitespace(buffer[start]) { start += 1 }
            if start == buffer.count { return .empty }
            return envelope(buffer, eventField: sse.event).map(Body.json) ?? .invalid
        }
        switch body {
        case .empty: return sse.event == "ping" ? .ping : nil
        case .invalid: return nil
        case .json(let json): return DifyStreamEvent.typed(json, eventField: sse.event)
        }
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 || byte == 0x0B || byte == 0x0C
    }

    /// The selected envelope; nil when the data is not one well-formed JSON object.
    private static func envelope(_ buffer: UnsafeBufferPointer<UInt8>, eventField: String?) -> JSONValue? {
        guard let members = SelectiveJSONParser.members(buffer) else { return nil }
        var name: String?
        for member in members where member.key == "event" {
            name = SelectiveJSONParser.parse(UnsafeBufferPointer(rebasing: buffer[member.range]), selection: .all)?
                .stringValue
        }
        let dataSelection = dataSelection(for: name ?? eventField ?? "")
        var object: [String: JSONValue] = [:]
        object.reserveCapacity(members.count)
        for member in members {
            let selection: JSONSelection
            if member.key == "data" {
                guard let dataSelection else { continue }
                selection = dataSelection
            } else {
                selection = .all
            }
            guard let value = SelectiveJSONParser.parse(UnsafeBufferPointer(rebasing: buffer[member.range]),
                                                        selection: selection) else { return nil }
            object[member.key] = value
        }
        return .object(object)
    }
}
