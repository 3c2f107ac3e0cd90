import DifySimulator
import Foundation
import Testing

@Suite("Fault injection: every FaultPlan mode")
struct FaultInjectionTests {
    static func config(_ edit: (inout FaultPlan) -> Void) -> SimulatorConfiguration {
        var c = SimulatorConfiguration()
        edit(&c.faults)
        return c
    }

    @Test func serverErrorRate_one_answers500JSONOnRunsAndUploads() async throws {
        try await withSimulator(Self.config { $0.serverErrorRate = 1 }) { simulator, client in
            let upload = try await client.upload(bytes: helloText)
            #expect(upload.status == 500)
            #expect(upload.json?["code"] == "internal_server_error")
            let run = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: UUID().uuidString.lowercased()))
            #expect(run.status == 500)
            #expect(run.json?.keys == ["code", "message", "status"])
            #expect(simulator.stats.requestsByEndpointAndStatus["POST /v1/workflows/run 500"] == 1)
            #expect(simulator.stats.uploads == 0)
        }
    }

    @Test func tooManyRequestsRate_one_answers429WithDifyMessage() async throws {
        try await withSimulator(Self.config { $0.tooManyRequestsRate = 1 }) { _, client in
            let id = try await client.uploadID(bytes: helloText)
            let run = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            #expect(run.status == 429)
            #expect(run.json?["code"] == "too_many_requests")
            #expect(run.json?["message"]?.stringValue?.hasPrefix("Too many requests. Please try again later. The current maximum concurrent requests allowed for simulated-workflow is") == true)
            #expect(run.header("Retry-After") == nil)
        }
    }

    @Test func rates_areReproducibleForASeed() async throws {
        func statuses(seed: UInt64) async throws -> [Int] {
            try await withSimulator(Self.config { $0.serverErrorRate = 0.5; $0.seed = seed }) { _, client in
                var result: [Int] = []
                for _ in 0..<12 { result.append(try await client.send(.POST, "/workflows/run", headers: [("Content-Type", "application/json")], body: Array(#"{"inputs":{},"user":"u"}"#.utf8)).status) }
                return result
            }
        }
        let a = try await statuses(seed: 7)
        let b = try await statuses(seed: 7)
        #expect(a == b)
        #expect(a.contains(500) && a.contains(400), "\(a)")
    }

    @Test func maxActive_capsConcurrentRunsWith429() async throws {
        // Runs last 8 s so the five requests overlap even on a starved machine (with 400 ms, a loaded 2-core run
        // admitted 4 of 5 one after the other).
        try await withSimulator(Self.config { $0.maxActive = 2; $0.latency = .seconds(8) }) { simulator, client in
            let id = try await client.uploadID(bytes: helloText)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<5 {
                    group.addTask { try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id)).status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 200 }.count == 2)
            #expect(statuses.filter { $0 == 429 }.count == 3)
            #expect(simulator.stats.peakConcurrentRuns == 2)
            #expect(simulator.stats.activeRuns == 0)
            let after = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            #expect(after.status == 200, "slots are released")
        }
    }

    @Test func badGatewayRate_one_answersHTML502() async throws {
        try await withSimulator(Self.config { $0.badGatewayRate = 1 }) { _, client in
            let r = try await client.upload(bytes: helloText)
            #expect(r.status == 502)
            #expect(r.header("Content-Type") == "text/html")
            #expect(r.text.contains("<title>502 Bad Gateway</title>"))
            #expect(r.json == nil)
        }
    }

    @Test func dropAfterStart_cutsStreamAfterWorkflowStartedButRunSucceedsServerSide() async throws {
        try await withSimulator(Self.config { $0.dropAfterStartRate = 1; $0.latency = .milliseconds(200) }) { simulator, client in
            let id = try await client.uploadID(bytes: helloText)
            var stream = try await client.openStream("/workflows/run", TestClient.runBody(fileID: id, mode: "streaming"))
            #expect(stream.status == 200)
            #expect(try await stream.next()?.event == "ping")
            let started = try #require(try await stream.next()?.data)
            #expect(started["event"] == "workflow_started")
            let runID = try #require(started["workflow_run_id"]?.stringValue)
            await #expect(throws: (any Error).self) {
                while try await stream.next() != nil {}
            }
            var status: JSONValue?
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                status = try await client.send(.GET, "/workflows/run/\(runID)").json?["status"]
                if status != "running" { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(status == "succeeded")
            let detail = try await client.send(.GET, "/workflows/run/\(runID)")
            let expected = SimulatedOutput.workflowOutputs(fileBytes: helloText, filename: "hello.txt")
            #expect(Dictionary(uniqueKeysWithValues: detail.json?["outputs"]?.objectValue ?? []) == expected)
            let logs = try await client.send(.GET, "/workflows/logs?created_by_end_user_session_id=test-user")
            #expect(logs.json?["data"]?.arrayValue?.first?["workflow_run"]?["status"] == "succeeded")
            #expect(simulator.stats.runsBySHA256.values.reduce(0, +) == 1)
        }
    }

    @Test func inStreamError_endsStreamWithErrorEventAndBlockingWithHTTPError() async throws {
        try await withSimulator(Self.config { $0.inStreamErrorRate = 1 }) { simulator, client in
            let id = try await client.uploadID(bytes: helloText)
            let streamed = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id, mode: "streaming"))
            #expect(streamed.status == 200)
            let last = try #require(streamed.events.last?.data)
            #expect(last["event"] == "error")
            #expect(last.keys == ["event", "workflow_run_id", "code", "status", "message"])
            #expect(["completion_request_error", "internal_server_error"].contains(last["code"]?.stringValue ?? ""))
            #expect(!streamed.events.contains { $0.event == "workflow_finished" })
            let blocking = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            #expect([400, 500].contains(blocking.status))
            #expect(["completion_request_error", "internal_server_error"].contains(blocking.json?["code"]?.stringValue ?? ""))
            #expect(simulator.stats.tokensServed == 0)
            let runID = try #require(streamed.events[1].data?["workflow_run_id"]?.stringValue)
            #expect(try await client.send(.GET, "/workflows/run/\(runID)").json?["status"] == "failed")
        }
    }

    @Test func failedWorkflow_answers200WithStatusFailedAndError() async throws {
        try await withSimulator(Self.config { $0.failedWorkflowRate = 1 }) { simulator, client in
            let id = try await client.uploadID(bytes: helloText)
            let blocking = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            #expect(blocking.status == 200)
            #expect(blocking.json?["data"]?["status"] == "failed")
            #expect(blocking.json?["data"]?["error"]?.stringValue?.isEmpty == false)
            let streamed = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id, mode: "streaming"))
            let names = streamed.events.map(\.event)
            #expect(names.suffix(2) == ["node_finished", "workflow_finished"])
            #expect(streamed.events.last?.data?["data"]?["status"] == "failed")
            #expect(streamed.events.dropLast().last?.data?["data"]?["status"] == "failed")
            #expect(simulator.stats.runsByStatus["failed"] == 2)
        }
    }

    @Test func slowHeaders_delaysResponseHead() async throws {
        try await withSimulator(Self.config { $0.slowHeaders = .milliseconds(300) }) { _, client in
            let clock = ContinuousClock()
            let start = clock.now
            let r = try await client.upload(bytes: helloText)
            #expect(r.status == 201)
            #expect(clock.now - start >= .milliseconds(290))
        }
    }

    @Test func latencyAndJitter_boundRunProcessingTime() async throws {
        try await withSimulator(Self.config { $0.latency = .milliseconds(200); $0.latencyJitter = .milliseconds(100) }) { _, client in
            let id = try await client.uploadID(bytes: helloText)
            let clock = ContinuousClock()
            let start = clock.now
            let r = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            let elapsed = clock.now - start
            #expect(r.status == 200)
            #expect(elapsed >= .milliseconds(195))
            // Both clocks are wall time (the simulator measures the run it executed), so only the lower end is exact;
            // the upper bounds only say it did not hang, loosely for a loaded machine.
            #expect(elapsed < .seconds(60))
            let reported = try #require(r.json?["data"]?["elapsed_time"]?.doubleValue)
            #expect(reported >= 0.19 && reported <= 60)
        }
    }
}

extension JSONValue {
    var doubleValue: Double? {
        switch self {
        case let .double(d): return d
        case let .int(i): return Double(i)
        default: return nil
        }
    }
}
