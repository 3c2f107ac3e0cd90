import DifySimulator
import Foundation
import Testing

/// The oracle app of the captures: one required `file` input allowing documents.
let oracleApp = SimulatedApp(apiKey: "app-EXTRACT-KEY", mode: "workflow", name: "oracle-extract", userInputForm: [.file("file")])

func oracleBody(fileID: String, type: String = "document", mode: String = "blocking", user: String = "oracle-user") -> String {
    #"{"inputs":{"file":{"type":"\#(type)","transfer_method":"local_file","upload_file_id":"\#(fileID)"}},"response_mode":"\#(mode)","user":"\#(user)"}"#
}

@Suite("Workflow runs: shapes, validation, detail, logs, stop")
struct WorkflowRunTests {
    @Test func blockingRun_matchesCapturedShapeAndDeterministicOutputs() async throws {
        try await withSimulator { simulator, client in
            let id = try await client.uploadID(bytes: helloText)
            let r = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id, extra: #","language":"de""#))
            let captured = try Captures.http("10_run_blocking_txt")
            #expect(r.status == 200)
            #expect(r.header("Content-Type") == "application/json; charset=utf-8")
            let json = try #require(r.json)
            #expect(json.keys == captured.json?.keys)
            #expect(json["data"]?.keys == captured.json?["data"]?.keys)
            #expect(json["data"]?["status"] == "succeeded")
            #expect(r.text.hasPrefix(#"{"task_id": ""#), "Python json.dumps separators")
            #expect(r.text.contains(#"\u00e4"#), "ensure_ascii escapes")
            let outputs = try #require(json["data"]?["outputs"]?.objectValue)
            let expected = SimulatedOutput.workflowOutputs(fileBytes: helloText, filename: "hello.txt", inputs: ["language": "de"])
            #expect(Dictionary(uniqueKeysWithValues: outputs) == expected)
            #expect(expected["words"] == 9)
            #expect(expected["lines"] == 2)
            #expect(expected["language"] == "de")
            let usage = SimulatedOutput.usage(byteCount: helloText.count, wordCount: 9)
            #expect(json["data"]?["total_tokens"] == .int(usage.total))
            let stats = simulator.stats
            #expect(stats.tokensServed == usage.total)
            #expect(stats.priceServed == usage.price)
            #expect(stats.runsBySHA256[expected["sha256"]!.stringValue!] == 1)
            #expect(stats.activeRuns == 0)
        }
    }

    @Test func omittedResponseMode_meansBlocking() async throws {
        try await withSimulator { _, client in
            let id = try await client.uploadID(bytes: helloText)
            let body = #"{"inputs":{"document":{"type":"document","transfer_method":"local_file","upload_file_id":"\#(id)"}},"user":"test-user"}"#
            let r = try await client.postJSON("/workflows/run", body)
            #expect(r.status == 200)
            #expect(r.json?["data"]?["status"] == "succeeded")
        }
    }

    @Test func streamingRun_matchesCapturedFramingEventOrderAndKeys() async throws {
        try await withSimulator { _, client in
            let id = try await client.uploadID(bytes: helloText)
            let r = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id, mode: "streaming"))
            let capturedHead = try String(contentsOf: Captures.directory.appendingPathComponent("14_run_streaming_txt.headers"), encoding: .utf8)
            #expect(r.status == 200)
            #expect(r.header("Content-Type") == "text/event-stream; charset=utf-8")
            #expect(capturedHead.contains("Transfer-Encoding: chunked"))
            #expect(r.header("Transfer-Encoding") == "chunked")
            #expect(r.text.hasPrefix("event: ping\n\ndata: {\"event\":\"workflow_started\""))
            let events = r.events
            let captured = try Captures.sse("14_run_streaming_txt")
            #expect(events.map(\.event) == [
                "ping", "workflow_started", "node_started", "node_finished", "node_started", "text_chunk", "node_finished",
                "node_started", "node_finished", "workflow_finished",
            ])
            // Same event set as Dify, and the same keys per event kind.
            #expect(Set(events.compactMap(\.event)) == Set(captured.compactMap(\.event)))
            for kind in ["workflow_started", "node_started", "node_finished", "text_chunk", "workflow_finished"] {
                let ours = try #require(events.first { $0.event == kind }?.data)
                let theirs = try #require(captured.first { $0.event == kind }?.data)
                #expect(ours.keys == theirs.keys, "\(kind) envelope")
                #expect(ours["data"]?.keys == theirs["data"]?.keys, "\(kind) data")
            }
            let started = try #require(events[1].data)
            #expect(started["data"]?["inputs"]?["document"]?.keys == captured[1].data?["data"]?["inputs"]?["file"]?.keys)
            let llm = try #require(events.first { $0.event == "node_finished" && $0.data?["data"]?["node_type"] == "llm" }?.data)
            let usage = SimulatedOutput.usage(byteCount: helloText.count, wordCount: 9)
            #expect(llm["data"]?["execution_metadata"]?["total_tokens"] == .int(usage.total))
            #expect(llm["data"]?["execution_metadata"]?["total_price"] == .string(SimulatedOutput.priceString(usage.price)))
            #expect(llm["data"]?["execution_metadata"]?["currency"] == "USD")
            #expect(Decimal(string: llm["data"]?["execution_metadata"]?["total_price"]?.stringValue ?? "") == usage.price)
            let finished = try #require(events.last?.data)
            #expect(finished["data"]?["total_tokens"] == .int(usage.total))
            #expect(finished["data"]?["outputs"]?["text"] == .string(String(decoding: helloText, as: UTF8.self)))
        }
    }

    @Test func streamingRun_pingsWhileProcessing() async throws {
        var config = SimulatorConfiguration(pingInterval: .milliseconds(100))
        config.faults.latency = .milliseconds(450)
        try await withSimulator(config) { _, client in
            let id = try await client.uploadID(bytes: helloText)
            let r = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id, mode: "streaming"))
            let names = r.events.map(\.event)
            let llmStart = try #require(names.lastIndex(of: "node_started").map { _ in names.firstIndex(of: "text_chunk")! })
            let pings = names[..<llmStart].filter { $0 == "ping" }.count
            #expect(pings >= 2, "the initial ping and keep-alives while the run works (about 4 when the machine is idle), got \(names)")
        }
    }

    @Test func runDetail_returnsInputsAsJSONStringLikeCapture() async throws {
        try await withSimulator { _, client in
            let id = try await client.uploadID(bytes: helloText)
            let run = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            let runID = try #require(run.json?["workflow_run_id"]?.stringValue)
            let r = try await client.send(.GET, "/workflows/run/\(runID)")
            let captured = try Captures.http("16_get_workflow_run_detail")
            #expect(r.status == 200)
            let json = try #require(r.json)
            #expect(json.keys == captured.json?.keys)
            #expect(json["status"] == "succeeded")
            let inputs = try #require(json["inputs"]?.stringValue)
            #expect(inputs.hasPrefix(#"{"document": {"dify_model_identity": "__dify__file__""#))
            #expect(JSONValue.parse(inputs)?["sys.user_id"] == "test-user")
            #expect(json["outputs"] == run.json?["data"]?["outputs"])
            let missing = try await client.send(.GET, "/workflows/run/\(UUID().uuidString.lowercased())")
            #expect(missing.status == 404)
            #expect(missing.json?["code"] == "not_found")
        }
    }

    @Test func logs_filterBySessionStatusAndTimeWithCapturedShape() async throws {
        try await withSimulator { _, client in
            let a = try await client.uploadID(bytes: helloText, user: "alice")
            let b = try await client.uploadID(bytes: helloText, user: "bob")
            _ = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: a, user: "alice"))
            _ = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: b, user: "bob"))
            _ = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: b, user: "bob"))
            let all = try await client.send(.GET, "/workflows/logs?limit=2")
            let captured = try Captures.http("94_workflow_logs")
            let json = try #require(all.json)
            #expect(json.keys == captured.json?.keys)
            #expect(json["total"] == 3)
            #expect(json["has_more"] == true)
            let item = try #require(json["data"]?.arrayValue?.first)
            let capturedItem = try #require(captured.json?["data"]?.arrayValue?.first)
            #expect(item.keys == capturedItem.keys)
            #expect(item["workflow_run"]?.keys == capturedItem["workflow_run"]?.keys)
            #expect(item["created_by_end_user"]?.keys == capturedItem["created_by_end_user"]?.keys)
            let bob = try await client.send(.GET, "/workflows/logs?created_by_end_user_session_id=bob&status=succeeded")
            #expect(bob.json?["total"] == 2)
            #expect(bob.json?["data"]?.arrayValue?.allSatisfy { $0["created_by_end_user"]?["session_id"] == "bob" } == true)
            let future = ISO8601DateFormatter().string(from: Date().addingTimeInterval(60))
            let none = try await client.send(.GET, "/workflows/logs?created_at__after=\(future)")
            #expect(none.json?["total"] == 0)
            let past = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-60))
            let some = try await client.send(.GET, "/workflows/logs?created_at__after=\(past)&created_at__before=\(future)")
            #expect(some.json?["total"] == 3)
            // Offsets must be percent-encoded (`+` means space, as in werkzeug); naive times are UTC.
            let offset = past.replacingOccurrences(of: "Z", with: "%2B00:00")
            #expect(try await client.send(.GET, "/workflows/logs?created_at__after=\(offset)").json?["total"] == 3)
            let naive = past.replacingOccurrences(of: "Z", with: "")
            #expect(try await client.send(.GET, "/workflows/logs?created_at__after=\(naive)").json?["total"] == 3)
            let unencoded = try await client.send(.GET, "/workflows/logs?created_at__after=\(past.replacingOccurrences(of: "Z", with: "+00:00"))")
            #expect(unencoded.status == 400)
        }
    }

    @Test func stop_unknownTaskAnswersSuccess() async throws {
        try await withSimulator { _, client in
            let r = try await client.postJSON("/workflows/tasks/\(UUID().uuidString.lowercased())/stop", #"{"user":"u"}"#)
            #expect(r.status == 200)
            #expect(r.text == (try Captures.http("93_stop_task_unknown").body))
        }
    }

    @Test func stop_endsStreamingRunWithStatusStopped() async throws {
        var config = SimulatorConfiguration()
        config.faults.latency = .seconds(20)
        try await withSimulator(config) { simulator, client in
            let id = try await client.uploadID(bytes: helloText)
            var stream = try await client.openStream("/workflows/run", TestClient.runBody(fileID: id, mode: "streaming"))
            #expect(stream.status == 200)
            #expect(try await stream.next()?.event == "ping")
            let started = try #require(try await stream.next()?.data)
            let taskID = try #require(started["task_id"]?.stringValue)
            let runID = try #require(started["workflow_run_id"]?.stringValue)
            let detail = try await client.send(.GET, "/workflows/run/\(runID)")
            #expect(detail.json?["status"] == "running")
            #expect(detail.json?["outputs"] == .object([]))
            #expect(detail.json?["finished_at"] == .null)
            #expect(simulator.stats.activeRuns == 1)
            let clock = ContinuousClock()
            let before = clock.now
            let stop = try await client.postJSON("/workflows/tasks/\(taskID)/stop", #"{"user":"test-user"}"#)
            #expect(stop.json?["result"] == "success")
            var last: SSERecord?
            while let record = try await stream.next() { last = record }
            // The run would take 20 s more; the bound is loose for a loaded machine.
            #expect(clock.now - before < .seconds(15))
            #expect(last?.event == "workflow_finished")
            #expect(last?.data?["data"]?["status"] == "stopped")
            let after = try await client.send(.GET, "/workflows/run/\(runID)")
            #expect(after.json?["status"] == "stopped")
            #expect(simulator.stats.activeRuns == 0)
        }
    }
}
