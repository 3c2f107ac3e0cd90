import DifySimulator
import Foundation
import Testing

/// The text of `helloText`, as a completion app's `text` input.
let helloString = String(decoding: helloText, as: UTF8.self)

/// A completion/chat request whose `text` input holds the document.
func textBody(_ text: String = helloString, mode: String = "blocking", extra: String = "") -> String {
    let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    return #"{"inputs":{"text":"\#(escaped)"},"response_mode":"\#(mode)","user":"test-user"\#(extra)}"#
}

@Suite("Completion and chat apps")
struct MessageAppTests {
    @Test func completionBlocking_answersJSONSummaryWithUsage() async throws {
        try await withSimulator(.init(apps: [.completion(apiKey: "c")]), key: "c") { simulator, client in
            let r = try await client.postJSON("/completion-messages", textBody())
            #expect(r.status == 200)
            let json = try #require(r.json)
            #expect(json.keys == ["event", "task_id", "id", "message_id", "mode", "answer", "metadata", "created_at"])
            #expect(json["mode"] == "completion")
            let answer = try #require(json["answer"]?.stringValue)
            #expect(answer == SimulatedOutput.completionAnswer(text: helloString))
            let parsed = try #require(JSONValue.parse(answer)?.objectValue)
            #expect(Dictionary(uniqueKeysWithValues: parsed) == SimulatedOutput.workflowOutputs(fileBytes: helloText, filename: ""))
            let usage = try #require(json["metadata"]?["usage"])
            let expected = SimulatedOutput.usage(byteCount: helloText.count, wordCount: 9)
            #expect(usage["total_tokens"] == .int(expected.total))
            #expect(usage["prompt_tokens"] == .int(expected.prompt))
            #expect(Decimal(string: usage["total_price"]?.stringValue ?? "") == expected.price)
            #expect(usage["currency"] == "USD")
            #expect(simulator.stats.priceServed == expected.price)
        }
    }

    @Test func completionApp_declaresOnlyARequiredParagraph_likeRealDify_andRejectsAMissingText() async throws {
        try await withSimulator(.init(apps: [.completion(apiKey: "c")]), key: "c") { _, client in
            let parameters = try #require(try await client.send(.GET, "/parameters").json)
            let form = try #require(parameters["user_input_form"]?.arrayValue)
            #expect(form.count == 1)
            let text = try #require(form.first?["paragraph"])
            #expect(text["variable"] == "text" && text["type"] == "paragraph" && text["required"] == true)
            #expect(parameters["file_upload"]?["enabled"] == true)
            let missing = try await client.postJSON("/completion-messages", #"{"inputs":{},"response_mode":"blocking","user":"u"}"#)
            #expect(missing.status == 400)
            #expect(missing.json?["message"] == "text is required in input form")  // capture llm/13
        }
        #expect(SimulatedApp.completion(apiKey: "c").unfaithfulVariables.isEmpty)
        #expect(SimulatedApp.chat(apiKey: "c").unfaithfulVariables.isEmpty)
    }

    @Test func completion_takesDocumentFromTopLevelFiles() async throws {
        let app = SimulatedApp(apiKey: "c", mode: "completion", name: "files-only", userInputForm: [.paragraph("text", required: false)])
        try await withSimulator(.init(apps: [app]), key: "c") { _, client in
            let id = try await client.uploadID(bytes: helloText)
            let body = #"{"inputs":{},"files":[{"type":"document","transfer_method":"local_file","upload_file_id":"\#(id)"}],"response_mode":"blocking","user":"test-user"}"#
            let r = try await client.postJSON("/completion-messages", body)
            #expect(r.status == 200)
            #expect(r.json?["answer"]?.stringValue == SimulatedOutput.completionAnswer(fileBytes: helloText, filename: "hello.txt"))
            let wrongType = body.replacingOccurrences(of: #""type":"document""#, with: #""type":"image""#)
            let bad = try await client.postJSON("/completion-messages", wrongType)
            #expect(bad.status == 400)
            #expect(bad.json?["message"] == "Detected file type does not match the specified type. Please verify the file.")
        }
    }

    @Test func completionStreaming_sendsMessageChunksThenMessageEnd() async throws {
        try await withSimulator(.init(apps: [.completion(apiKey: "c")]), key: "c") { _, client in
            let r = try await client.postJSON("/completion-messages", textBody(mode: "streaming"))
            #expect(r.status == 200)
            let events = r.events
            // As captured (llm/11): no initial ping, an empty message right before message_end.
            #expect(events.first?.event == "message")
            #expect(events.last?.event == "message_end")
            let chunks = events.filter { $0.event == "message" }
            #expect(chunks.count >= 2)
            #expect(chunks.last?.data?["answer"] == "")
            let answer = chunks.compactMap { $0.data?["answer"]?.stringValue }.joined()
            #expect(answer == SimulatedOutput.completionAnswer(text: helloString))
            let usage = try #require(events.last?.data?["metadata"]?["usage"]?.objectValue).map(\.0)
            #expect(usage == ["prompt_tokens", "prompt_unit_price", "prompt_price_unit", "prompt_price", "completion_tokens",
                              "completion_unit_price", "completion_price_unit", "completion_price", "total_tokens", "total_price",
                              "currency", "latency", "time_to_first_token", "time_to_generate"])
            let end = try #require(events.last?.data)
            #expect(end["metadata"]?["usage"]?["total_price"]?.stringValue != nil, "prices are strings")
            #expect(end["task_id"] != nil)
        }
    }

    @Test func chatBlocking_fencesTheJSONAnswer() async throws {
        try await withSimulator(.init(apps: [.chat(apiKey: "h")]), key: "h") { _, client in
            let body = textBody(extra: #","query":"summarize""#)
            let r = try await client.postJSON("/chat-messages", body)
            #expect(r.status == 200)
            #expect(r.json?["mode"] == "chat")
            #expect(r.json?["conversation_id"]?.stringValue != nil)
            let answer = try #require(r.json?["answer"]?.stringValue)
            #expect(answer.hasPrefix("```json\n") && answer.hasSuffix("\n```"))
            #expect(answer == SimulatedOutput.chatAnswer(SimulatedOutput.completionAnswer(text: helloString)))
            let conversation = try #require(r.json?["conversation_id"]?.stringValue)
            let followUp = try await client.postJSON("/chat-messages", body.replacingOccurrences(of: #""query""#, with: #""conversation_id":"\#(conversation)","query""#))
            #expect(followUp.json?["conversation_id"] == .string(conversation))
            let unknown = try await client.postJSON("/chat-messages", body.replacingOccurrences(of: #""query""#, with: #""conversation_id":"\#(UUID().uuidString)","query""#))
            #expect(unknown.status == 404)
            #expect(unknown.json?["message"] == "Conversation Not Exists.")
            let noQuery = try await client.postJSON("/chat-messages", #"{"inputs":{},"user":"u"}"#)
            #expect(noQuery.status == 400)
            #expect(noQuery.json?["message"]?.stringValue?.hasPrefix("1 validation error for ChatRequestPayload\nquery\n  Field required") == true)
        }
    }

    @Test func completionStop_byTaskIDFromFirstChunkEndsStreamingRun() async throws {
        var config = SimulatorConfiguration(apps: [.completion(apiKey: "c")], pingInterval: .milliseconds(50))
        config.faults.latency = .seconds(20)
        try await withSimulator(config, key: "c") { simulator, client in
            var stream = try await client.openStream("/completion-messages", textBody(mode: "streaming"))
            let first = try #require(try await stream.next()?.data)
            #expect(first["event"] == "message")
            let taskID = try #require(first["task_id"]?.stringValue)
            #expect(try await stream.next()?.event == "ping", "keep-alive while processing")
            // A stop from another user is ignored (but answers success), like Dify.
            let foreign = try await client.postJSON("/completion-messages/\(taskID)/stop", #"{"user":"mallory"}"#)
            #expect(foreign.json?["result"] == "success")
            #expect(simulator.stats.activeRuns == 1)
            let clock = ContinuousClock()
            let before = clock.now
            let stop = try await client.postJSON("/completion-messages/\(taskID)/stop", #"{"user":"test-user"}"#)
            #expect(stop.json?["result"] == "success")
            var last: SSERecord?
            while let record = try await stream.next() { last = record }
            #expect(last?.event == "message_end")
            // The run would take 20 s more; the bound is loose for a loaded machine.
            #expect(clock.now - before < .seconds(15))
            #expect(simulator.stats.runsByStatus["stopped"] == 1)
        }
    }
}

@Suite("Completion faults")
struct MessageFaultTests {
    @Test func completionInStreamError_sendsErrorEventWithoutTaskID() async throws {
        var config = SimulatorConfiguration(apps: [.completion(apiKey: "c")])
        config.faults.inStreamErrorRate = 1
        try await withSimulator(config, key: "c") { simulator, client in
            let r = try await client.postJSON("/completion-messages", textBody(mode: "streaming"))
            #expect(r.status == 200)
            let last = try #require(r.events.last?.data)
            #expect(last["event"] == "error")
            #expect(last["task_id"] == nil)
            #expect(last["message_id"]?.stringValue != nil)
            #expect(last["code"]?.stringValue != nil && last["status"]?.intValue != nil && last["message"]?.stringValue != nil)
            #expect(!r.events.contains { $0.event == "message_end" })
            #expect(simulator.stats.tokensServed == 0)
        }
    }

    @Test func completionDropAfterStart_cutsAfterFirstMessageAndStillCountsTheRun() async throws {
        var config = SimulatorConfiguration(apps: [.completion(apiKey: "c")])
        config.faults.dropAfterStartRate = 1
        try await withSimulator(config, key: "c") { simulator, client in
            var stream = try await client.openStream("/completion-messages", textBody(mode: "streaming"))
            #expect(try await stream.next()?.event == "message")
            await #expect(throws: (any Error).self) {
                while try await stream.next() != nil {}
            }
            let deadline = ContinuousClock.now + .seconds(30)
            while simulator.stats.runsByStatus["succeeded"] != 1 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(simulator.stats.runsByStatus["succeeded"] == 1)
            #expect(simulator.stats.tokensServed == SimulatedOutput.usage(byteCount: helloText.count, wordCount: 9).total)
        }
    }
}
