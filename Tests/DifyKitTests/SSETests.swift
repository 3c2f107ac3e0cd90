import Foundation
import Testing

@testable import DifyKit

@Suite("SSE parsing and event accumulation")
struct SSETests {
    static let streamCaptures = [
        "14_run_streaming_txt.sse", "15_run_streaming_pdf.sse", "36b_err_run_with_exe_streaming.sse",
        "39b_err_missing_required_input_streaming.sse", "39c_err_missing_input_streaming_until_close.sse",
        "61_completion_streaming_no_llm.sse", "71_template_streaming.sse", "71_template_streaming_no_sandbox.sse",
        "98_slow_streaming_pings.sse",
    ]

    static func parseWhole(_ bytes: [UInt8]) -> [SSEEvent] {
        var parser = SSEParser()
        return parser.feed(bytes) + parser.finish()
    }

    @Test("every captured stream gives identical events when split in two at every byte boundary",
          arguments: streamCaptures)
    func everyByteSplit(name: String) throws {
        let bytes = [UInt8](try Captures.data(name))
        let reference = Self.parseWhole(bytes)
        if name.hasPrefix("14") || name.hasPrefix("15") || name.hasPrefix("71") || name.hasPrefix("98") {
            #expect(reference.first == SSEEvent(event: "ping", data: ""))
            #expect(reference.count > 5)
        }
        var mismatches = 0
        for split in 0...bytes.count {
            var parser = SSEParser()
            var events = parser.feed(bytes[..<split])
            events += parser.feed(bytes[split...])
            events += parser.finish()
            if events != reference { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test("CRLF, CR, data without space, comments, ping without data, unknown fields")
    func syntaxVariants() {
        let text = ": keep-alive comment\r\nevent: ping\r\n\r\ndata:{\"event\":\"message\",\"answer\":\"a\"}\r\n\r\n"
            + "retry: 10\ndata: {\"event\":\"x\"}\nid: 7\n\n" + "data: line1\rdata: line2\r\r"
        let events = Self.parseWhole(Array(text.utf8))
        #expect(events == [
            SSEEvent(event: "ping", data: ""),
            SSEEvent(data: "{\"event\":\"message\",\"answer\":\"a\"}"),
            SSEEvent(data: "{\"event\":\"x\"}", id: "7"),
            SSEEvent(data: "line1\nline2", id: "7"),
        ])
        // Byte-by-byte gives the same.
        var parser = SSEParser()
        var incremental: [SSEEvent] = []
        for byte in Array(text.utf8) { incremental += parser.feed([byte]) }
        incremental += parser.finish()
        #expect(incremental == events)
    }

    @Test("multi-byte UTF-8 split across chunks is reassembled")
    func utf8Split() {
        let text = "data: {\"event\":\"message\",\"answer\":\"äöü € 🤖\"}\n\n"
        let bytes = Array(text.utf8)
        for split in 0...bytes.count {
            var parser = SSEParser()
            let events = parser.feed(bytes[..<split]) + parser.feed(bytes[split...]) + parser.finish()
            #expect(events.count == 1)
            if case .message(let message)? = events.first.flatMap(DifyStreamEvent.decode) {
                #expect(message.answer == "äöü € 🤖")
            } else {
                Issue.record("not a message event at split \(split)")
            }
        }
    }

    @Test("captured workflow stream folds into the same outputs as the blocking run")
    func workflowCaptureAccumulates() throws {
        let events = Self.parseWhole([UInt8](try Captures.data("14_run_streaming_txt.sse")))
        var accumulator = RunAccumulator(mode: .workflow)
        var startedIDs: [RunStarted] = []
        var finished = false
        for event in events.compactMap(DifyStreamEvent.decode) {
            let step = accumulator.apply(event)
            if let started = accumulator.takeStartedIfNew() { startedIDs.append(started) }
            if case .finished = step { finished = true }
        }
        #expect(finished)
        #expect(startedIDs == [RunStarted(workflowRunID: "1a53d805-0646-421f-a302-c8af30e429a7",
                                          taskID: "6a67c20d-aa41-47b2-92b6-97a9552a9947")])
        let result = accumulator.result()
        #expect(result.status == .succeeded)
        #expect(result.outputs["text"] == .string("Hello from the Dify oracle.\nSecond line: äöü €.\n"))
        #expect(result.usage.totalTokens == 0)
        #expect(result.usage.totalPrice == nil)
        #expect(result.workflowID == "015b452a-7533-407a-98be-3878833d191d")
    }

    @Test("all captured workflow streams are recognised with typed events")
    func typedEvents() throws {
        for name in ["15_run_streaming_pdf.sse", "71_template_streaming.sse", "98_slow_streaming_pings.sse"] {
            let events = Self.parseWhole([UInt8](try Captures.data(name))).compactMap(DifyStreamEvent.decode)
            let names = events.map(\.name)
            #expect(names.first == "ping")
            #expect(names.contains("workflow_started"))
            #expect(names.contains("node_started"))
            #expect(names.contains("node_finished"))
            #expect(names.contains("text_chunk"))
            #expect(names.last == "workflow_finished")
            #expect(!names.contains { $0.isEmpty })
        }
    }

    static func decode(_ json: String) throws -> DifyStreamEvent {
        try #require(DifyStreamEvent.decode(SSEEvent(data: json)))
    }

    @Test("workflow price sums top-level nodes and iteration/loop containers once, skipping inner nodes")
    func workflowPriceSum() throws {
        var accumulator = RunAccumulator(mode: .workflow)
        let lines = [
            #"{"event":"workflow_started","workflow_run_id":"r1","task_id":"t1","data":{"id":"r1","workflow_id":"w1"}}"#,
            #"{"event":"node_finished","workflow_run_id":"r1","task_id":"t1","data":{"id":"n1","node_id":"llm1","node_type":"llm","iteration_id":null,"loop_id":null,"execution_metadata":{"total_tokens":10,"total_price":"0.001","currency":"USD"}}}"#,
            #"{"event":"node_finished","workflow_run_id":"r1","task_id":"t1","data":{"id":"n2","node_id":"llm2","node_type":"llm","execution_metadata":{"total_price":0.002,"currency":"USD"}}}"#,
            #"{"event":"node_finished","workflow_run_id":"r1","task_id":"t1","data":{"id":"n3","node_id":"inner","node_type":"llm","iteration_id":"it1","loop_id":null,"execution_metadata":{"total_price":"0.5"}}}"#,
            #"{"event":"node_finished","workflow_run_id":"r1","task_id":"t1","data":{"id":"n4","node_id":"inner2","node_type":"llm","iteration_id":null,"loop_id":"lp1","execution_metadata":{"total_price":"0.25"}}}"#,
            #"{"event":"iteration_completed","workflow_run_id":"r1","task_id":"t1","data":{"id":"n5","node_id":"it1","execution_metadata":{"total_price":"0.7","currency":"USD"}}}"#,
            #"{"event":"node_finished","workflow_run_id":"r1","task_id":"t1","data":{"id":"n5","node_id":"it1","node_type":"iteration","execution_metadata":{"total_price":"0.7","currency":"USD"}}}"#,
            #"{"event":"loop_completed","workflow_run_id":"r1","task_id":"t1","data":{"id":"n6","node_id":"lp1","execution_metadata":{"total_price":"0.25"}}}"#,
            #"{"event":"some_future_event","workflow_run_id":"r1","data":{}}"#,
            #"{"event":"workflow_finished","workflow_run_id":"r1","task_id":"t1","data":{"id":"r1","status":"partial-succeeded","outputs":{"n":5},"total_tokens":42,"total_steps":7,"elapsed_time":1.5}}"#,
        ]
        var lastStep: RunAccumulator.Step = .proceed
        for line in lines { lastStep = accumulator.apply(try Self.decode(line)) }
        guard case .finished = lastStep else { Issue.record("not finished"); return }
        let result = accumulator.result()
        #expect(result.status == .partialSucceeded)
        #expect(result.usage.totalTokens == 42)
        #expect(result.usage.totalPrice == Decimal(string: "0.953"))
        #expect(result.usage.currency == "USD")
        #expect(result.outputs["n"] == .int(5))
        #expect(result.elapsedTime == 1.5)
    }

    @Test("a failed workflow is a result with status failed, not an error")
    func failedWorkflow() throws {
        var accumulator = RunAccumulator(mode: .workflow)
        _ = accumulator.apply(try Self.decode(#"{"event":"workflow_started","workflow_run_id":"r1","task_id":"t1","data":{"id":"r1"}}"#))
        let step = accumulator.apply(try Self.decode(#"{"event":"workflow_finished","workflow_run_id":"r1","task_id":"t1","data":{"id":"r1","status":"failed","error":"node x exploded","outputs":null}}"#))
        guard case .finished = step else { Issue.record("not finished"); return }
        #expect(accumulator.result().status == .failed)
        #expect(accumulator.result().error == "node x exploded")
    }

    @Test("message events append, message_replace replaces, message_end carries usage")
    func completionMessages() throws {
        var accumulator = RunAccumulator(mode: .completion)
        var started: [RunStarted] = []
        let lines = [
            #"{"event":"message","task_id":"t1","message_id":"m1","answer":"Hel"}"#,
            #"{"event":"message","task_id":"t1","message_id":"m1","answer":"lo"}"#,
            #"{"event":"message_replace","task_id":"t1","message_id":"m1","answer":"[moderated]","reason":"x"}"#,
            #"{"event":"message","task_id":"t1","message_id":"m1","answer":"!"}"#,
            #"{"event":"message_end","task_id":"t1","id":"m1","message_id":"m1","metadata":{"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"total_price":"0.0012890","currency":"USD","latency":0.5}}}"#,
        ]
        var lastStep: RunAccumulator.Step = .proceed
        for line in lines {
            lastStep = accumulator.apply(try Self.decode(line))
            if let ids = accumulator.takeStartedIfNew() { started.append(ids) }
        }
        guard case .finished = lastStep else { Issue.record("not finished"); return }
        #expect(started == [RunStarted(taskID: "t1", messageID: "m1")])
        let result = accumulator.result()
        #expect(result.answer == "[moderated]!")
        #expect(result.outputs == ["answer": "[moderated]!"])
        #expect(result.usage == Usage(promptTokens: 3, completionTokens: 4, totalTokens: 7,
                                      totalPrice: Decimal(string: "0.001289"), currency: "USD", latency: 0.5, source: .message))
        #expect(result.status == .succeeded)
    }

    @Test("advanced-chat continues past message_end to workflow_finished; error events fail the run")
    func advancedChatAndErrors() throws {
        var chat = RunAccumulator(mode: .advancedChat)
        _ = chat.apply(try Self.decode(#"{"event":"workflow_started","task_id":"t","workflow_run_id":"r","conversation_id":"c","message_id":"m","data":{"id":"r"}}"#))
        _ = chat.apply(try Self.decode(#"{"event":"message","task_id":"t","message_id":"m","conversation_id":"c","answer":"hi"}"#))
        guard case .proceed = chat.apply(try Self.decode(#"{"event":"message_end","task_id":"t","message_id":"m","conversation_id":"c","metadata":{"usage":{"total_tokens":5}}}"#)) else {
            Issue.record("message_end must not end an advanced-chat stream"); return
        }
        guard case .finished = chat.apply(try Self.decode(#"{"event":"workflow_finished","task_id":"t","workflow_run_id":"r","data":{"id":"r","status":"succeeded","outputs":{"answer":"hi"}}}"#)) else {
            Issue.record("workflow_finished must end it"); return
        }
        #expect(chat.result().conversationID == "c")
        #expect(chat.result().usage.totalTokens == 5)
        var workflow = RunAccumulator(mode: .workflow)
        guard case .failed(let error) = workflow.apply(try Self.decode(#"{"event":"error","workflow_run_id":"r","code":"completion_request_error","status":400,"message":"[openai] Rate Limit Error"}"#)) else {
            Issue.record("error event must fail"); return
        }
        #expect(error.code == "completion_request_error")
        #expect(error.status == 400)
    }

    @Test("workflow_paused ends the stream with status paused")
    func paused() throws {
        var accumulator = RunAccumulator(mode: .workflow)
        _ = accumulator.apply(try Self.decode(#"{"event":"workflow_started","workflow_run_id":"r","task_id":"t","data":{"id":"r"}}"#))
        guard case .finished = accumulator.apply(try Self.decode(#"{"event":"workflow_paused","workflow_run_id":"r","task_id":"t","data":{"workflow_run_id":"r","status":"paused","outputs":{},"total_tokens":4}}"#)) else {
            Issue.record("workflow_paused must end the stream"); return
        }
        #expect(accumulator.result().status == .paused)
        #expect(accumulator.result().usage.totalTokens == 4)
    }

    @Test("New Agent: agent_message chunks are replaced by the closing full message, not doubled")
    func agentAnswer() throws {
        var agent = RunAccumulator(mode: .agent)
        for line in [
            #"{"event":"agent_message","task_id":"t","message_id":"m","answer":"Hel"}"#,
            #"{"event":"agent_message","task_id":"t","message_id":"m","answer":"lo"}"#,
            #"{"event":"agent_thought","task_id":"t","message_id":"m","thought":"x"}"#,
            #"{"event":"message","task_id":"t","message_id":"m","answer":"Hello"}"#,
        ] { _ = agent.apply(try Self.decode(line)) }
        guard case .finished = agent.apply(try Self.decode(#"{"event":"message_end","task_id":"t","message_id":"m","metadata":{}}"#)) else {
            Issue.record("message_end must end an agent stream"); return
        }
        #expect(agent.result().answer == "Hello")
        var agentChat = RunAccumulator(mode: .agentChat)
        _ = agentChat.apply(try Self.decode(#"{"event":"agent_message","task_id":"t","message_id":"m","answer":"A"}"#))
        _ = agentChat.apply(try Self.decode(#"{"event":"agent_message","task_id":"t","message_id":"m","answer":"B"}"#))
        #expect(agentChat.result().answer == "AB")
    }

    @Test("non-JSON data lines and empty blocks are skipped, not fatal")
    func junkIgnored() {
        #expect(DifyStreamEvent.decode(SSEEvent(data: "[DONE]")) == nil)
        #expect(DifyStreamEvent.decode(SSEEvent(data: "")) == nil)
        #expect(DifyStreamEvent.decode(SSEEvent(event: "ping", data: "")) == .ping)
        #expect(DifyStreamEvent.decode(SSEEvent(data: #"{"event":"reasoning_chunk","data":{}}"#))?.name == "reasoning_chunk")
    }
}
