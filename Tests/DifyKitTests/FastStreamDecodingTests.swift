import Foundation
import Testing

@testable import DifyKit

/// The run's SSE fast path (`StreamEventFastDecoder`, issue 14) against the full decode
/// (`DifyStreamEvent.decode`): same typed events, same folded result, on every captured stream.
@Suite struct FastStreamDecodingTests {
    /// Every `.sse` capture, also in subfolders (`llm/`).
    static func streamCaptures() throws -> [String] {
        let root = Captures.directory
        let enumerator = FileManager.default.enumerator(atPath: root.path)
        var names: [String] = []
        while let name = enumerator?.nextObject() as? String {
            if name.hasSuffix(".sse") { names.append(name) }
        }
        return names.sorted()
    }

    /// The event with `envelope.raw` blanked (the one field the fast path builds partially).
    static func withoutRaw(_ event: DifyStreamEvent) -> DifyStreamEvent {
        func blank(_ envelope: EventEnvelope) -> EventEnvelope {
            var envelope = envelope
            envelope.raw = .null
            return envelope
        }
        func blank(_ node: NodeEvent) -> NodeEvent {
            var node = node
            node.envelope = blank(node.envelope)
            return node
        }
        switch event {
        case .ping: return .ping
        case .workflowStarted(var value): value.envelope = blank(value.envelope); return .workflowStarted(value)
        case .nodeStarted(let node): return .nodeStarted(blank(node))
        case .nodeFinished(let node): return .nodeFinished(blank(node))
        case .iterationCompleted(let node): return .iterationCompleted(blank(node))
        case .loopCompleted(let node): return .loopCompleted(blank(node))
        case .textChunk(let text, let envelope): return .textChunk(text, blank(envelope))
        case .workflowFinished(var value): value.envelope = blank(value.envelope); return .workflowFinished(value)
        case .workflowPaused(var value): value.envelope = blank(value.envelope); return .workflowPaused(value)
        case .message(var value): value.envelope = blank(value.envelope); return .message(value)
        case .agentMessage(var value): value.envelope = blank(value.envelope); return .agentMessage(value)
        case .messageReplace(var value): value.envelope = blank(value.envelope); return .messageReplace(value)
        case .messageEnd(var value): value.envelope = blank(value.envelope); return .messageEnd(value)
        case .error(var value): value.envelope = blank(value.envelope); return .error(value)
        case .other(let name, let envelope): return .other(name: name, blank(envelope))
        }
    }

    /// A comparable rendering of everything a ``RunResult`` carries.
    static func summary(_ result: RunResult) -> String {
        [
            result.mode.rawValue, result.status.description, JSONValue.object(result.outputs).jsonString(),
            result.answer ?? "-", result.error ?? "-", result.workflowRunID ?? "-", result.taskID ?? "-",
            result.messageID ?? "-", result.conversationID ?? "-", "\(result.usage)",
            result.elapsedTime.map { "\($0)" } ?? "-", result.totalSteps.map { "\($0)" } ?? "-",
            result.workflowID ?? "-", result.createdAt.map { "\($0.timeIntervalSince1970)" } ?? "-",
            result.pausedNodes.joined(separator: ","),
        ].joined(separator: "|")
    }

    static func sseEvents(_ bytes: [UInt8]) -> [SSEEvent] {
        var parser = SSEParser()
        return parser.feed(bytes) + parser.finish()
    }

    @Test func everyCapturedStream_decodesToTheSameEventsAndResult_asTheFullDecode() throws {
        let captures = try Self.streamCaptures()
        #expect(captures.count >= 12, "expected the 12 captured streams in Fixtures/dify-captures")
        var nodeFinishedWithUsage = 0
        var streamsWithEvents = 0
        for capture in captures {
            let events = Self.sseEvents([UInt8](try Captures.data(capture)))
            if !events.isEmpty { streamsWithEvents += 1 }  // two captures are JSON error bodies, not streams
            let full = events.map(DifyStreamEvent.decode)
            let fast = events.map(StreamEventFastDecoder.decode)
            #expect(full.count == fast.count)
            for (index, (a, b)) in zip(full, fast).enumerated() {
                #expect(a.map(Self.withoutRaw) == b.map(Self.withoutRaw), "\(capture) event \(index)")
                if case .nodeFinished(let node) = b, node.llmUsage != nil { nodeFinishedWithUsage += 1 }
            }
            for mode in [AppMode.workflow, .completion, .chat, .advancedChat, .agentChat, .agent] {
                var fullAccumulator = RunAccumulator(mode: mode)
                var fastAccumulator = RunAccumulator(mode: mode)
                for event in full.compactMap({ $0 }) { _ = fullAccumulator.apply(event) }
                for event in fast.compactMap({ $0 }) { _ = fastAccumulator.apply(event) }
                #expect(Self.summary(fullAccumulator.result()) == Self.summary(fastAccumulator.result()),
                        "\(capture) as \(mode)")
            }
        }
        #expect(streamsWithEvents >= 10)
        #expect(nodeFinishedWithUsage > 0, "the LLM capture's node usage must come through the fast path")
    }

    @Test func workflowFinished_keepsOutputsAndDropsInputs_whileNodeStartedSkipsItsData() throws {
        let finished = SSEEvent(data: #"""
            {"event":"workflow_finished","workflow_run_id":"r1","task_id":"t1","data":{"id":"r1","status":"succeeded",
             "inputs":{"big":"\#(String(repeating: "x", count: 1000))"},"outputs":{"a":[1,2.5,"\u00e9\ud83d\ude00"]},
             "total_tokens":7,"elapsed_time":"1.5","created_at":1795757339}}
            """#)
        guard case .workflowFinished(let event) = StreamEventFastDecoder.decode(finished) else {
            Issue.record("not workflow_finished")
            return
        }
        #expect(event.outputs == ["a": [1, 2.5, "é😀"]])
        #expect(event.envelope.data["inputs"] == nil)
        #expect(event.totalTokens == 7)
        #expect(event.elapsedTime == 1.5)
        #expect(event.envelope.workflowRunID == "r1")
        #expect(StreamEventFastDecoder.decode(finished).map(Self.withoutRaw) == DifyStreamEvent.decode(finished).map(Self.withoutRaw))

        let started = SSEEvent(data: #"{"data":{"id":"n1","inputs":{"x":[{"y":null}]}},"event":"node_started","task_id":"t"}"#)
        guard case .nodeStarted(let node) = StreamEventFastDecoder.decode(started) else {
            Issue.record("not node_started (event key after data)")
            return
        }
        #expect(node.id == "n1")
        #expect(node.envelope.data["inputs"] == nil)
        #expect(node.envelope.taskID == "t")
    }

    @Test func malformedOrEmptyData_isRejectedLikeTheFullDecode() {
        let cases: [SSEEvent] = [
            SSEEvent(event: "ping", data: ""),
            SSEEvent(event: "ping", data: "  \n "),
            SSEEvent(event: "ping", data: "[1]"),
            SSEEvent(data: ""),
            SSEEvent(data: "not json"),
            SSEEvent(data: #"{"event":"node_started","data":{"inputs":{"x":[1}}}"#),
            SSEEvent(data: #"{"event":"message","answer":"a"} trailing"#),
            SSEEvent(data: #"{"event":"message","answer":"bad \q escape"}"#),
            SSEEvent(data: "\"just a string\""),
            SSEEvent(event: "message", data: #" {"answer":"from the event field","id":-0,"n":1e2,"m":12345678901234567890} "#),
        ]
        for sse in cases {
            #expect(StreamEventFastDecoder.decode(sse).map(Self.withoutRaw) == DifyStreamEvent.decode(sse).map(Self.withoutRaw),
                    "\(sse.data)")
        }
        #expect(StreamEventFastDecoder.decode(cases[0]) == .ping)
        #expect(StreamEventFastDecoder.decode(cases[5]) == nil)
        // A message event keeps every member: numbers and escapes read as the full decode reads them.
        guard case .message(let fast) = StreamEventFastDecoder.decode(cases[9]),
              case .message(let full) = DifyStreamEvent.decode(cases[9]) else {
            Issue.record("not a message")
            return
        }
        #expect(fast.envelope.raw == full.envelope.raw)
        #expect(fast.envelope.raw["m"]?.doubleValue == Double("12345678901234567890"))
    }
}
