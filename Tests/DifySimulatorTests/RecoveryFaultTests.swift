import AsyncHTTPClient
import DifySimulator
import Foundation
import Testing

/// The faults real deployments have that make "did my run happen?" hard (issue 10), asserted at the HTTP level.
@Suite("Recovery faults: clock offset, late logs, flaky lookups, drops, silence, gateway 429, paused runs")
struct RecoveryFaultTests {
    static func config(_ edit: (inout FaultPlan) -> Void) -> SimulatorConfiguration { FaultInjectionTests.config(edit) }

    /// Polls `condition` every 20 ms for up to `seconds` (a wait for server-side progress, not an assertion).
    static func eventually(_ seconds: Double = 10, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return try await condition()
    }

    static func httpDate(_ header: String?) -> Date? {
        guard let header else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: header)
    }

    /// True when `date` minus `offset` lies between `start` and now (±2 s for whole-second stamps): load-proof.
    static func isNear(_ date: Date?, _ offset: TimeInterval, since start: Date) -> Bool {
        guard let shifted = date?.addingTimeInterval(-offset) else { return false }
        return shifted >= start.addingTimeInterval(-2) && shifted <= Date().addingTimeInterval(2)
    }

    static func iso(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: date).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
    }

    @Test func dateHeader_isSentOnEveryResponse() async throws {
        try await withSimulator { _, client in
            for path in ["/info", "/parameters", "/workflows/logs", "/workflows/run/nope", "/no-such-route"] {
                let start = Date()
                let response = try await client.send(.GET, path)
                let date = try #require(Self.httpDate(response.header("Date")), "no Date on \(path)")
                #expect(Self.isNear(date, 0, since: start))
            }
        }
    }

    @Test func clockOffset_shiftsDateHeaderCreatedAtAndTheLogsWindow() async throws {
        let start = Date()
        try await withSimulator(Self.config { $0.clockOffset = .seconds(-600) }) { _, client in
            let upload = try await client.upload(bytes: helloText)
            let difyNow = try #require(Self.httpDate(upload.header("Date")))
            #expect(Self.isNear(difyNow, -600, since: start), "Date is 10 minutes behind the local clock")
            let uploadCreated = try #require(upload.json?["created_at"]?.intValue)
            #expect(Self.isNear(Date(timeIntervalSince1970: TimeInterval(uploadCreated)), -600, since: start))
            let id = try #require(upload.json?["id"]?.stringValue)
            let run = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            let runCreated = try #require(run.json?["data"]?["created_at"]?.intValue)
            #expect(Self.isNear(Date(timeIntervalSince1970: TimeInterval(runCreated)), -600, since: start))
            // A window in the local clock finds nothing; one in Dify's clock finds the run.
            let local = try await client.send(.GET, "/workflows/logs?created_at__after=\(Self.iso(Date().addingTimeInterval(-5)))")
            #expect(local.json?["total"] == 0)
            let dify = try await client.send(.GET, "/workflows/logs?created_at__after=\(Self.iso(difyNow.addingTimeInterval(-5)))")
            #expect(dify.json?["total"] == 1)
            let detail = try await client.send(.GET, "/workflows/run/\(run.json?["workflow_run_id"]?.stringValue ?? "")")
            #expect(Self.isNear(Self.httpDate(detail.header("Date")), -600, since: start))
        }
    }

    @Test func logsOnlyWhenFinished_hidesARunningRunThatRunDetailAlreadyShows() async throws {
        // The run would take a minute; it ends only when stopped, so "still running" holds however slow the machine.
        try await withSimulator(Self.config { $0.logsOnlyWhenFinished = true; $0.latency = .seconds(60) }) { _, client in
            let id = try await client.uploadID(bytes: helloText)
            var stream = try await client.openStream("/workflows/run", TestClient.runBody(fileID: id, mode: "streaming"))
            _ = try await stream.next()  // ping
            let started = try #require(try await stream.next()?.data)
            let runID = try #require(started["workflow_run_id"]?.stringValue)
            let taskID = try #require(started["task_id"]?.stringValue)
            let running = try await client.send(.GET, "/workflows/run/\(runID)")
            #expect(running.json?["status"] == "running")
            let hidden = try await client.send(.GET, "/workflows/logs")
            #expect(hidden.json?["total"] == 0, "a running run is not listed yet")
            _ = try await client.postJSON("/workflows/tasks/\(taskID)/stop", #"{"user":"test-user"}"#)
            while try await stream.next() != nil {}
            let listed = try await Self.eventually { try await client.send(.GET, "/workflows/logs").json?["total"] == 1 }
            #expect(listed, "listed once it has finished")
        }
    }

    @Test func runDetailAndLogs_answerNotFoundThenBadGatewayThenTheTruth() async throws {
        let config = Self.config {
            $0.runDetailNotFoundFirst = 1
            $0.runDetailBadGatewayFirst = 1
            $0.logsNotFoundFirst = 1
            $0.logsBadGatewayFirst = 2
        }
        try await withSimulator(config) { _, client in
            let id = try await client.uploadID(bytes: helloText)
            let run = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            let runID = try #require(run.json?["workflow_run_id"]?.stringValue)
            var detail: [Int] = []
            for _ in 0..<3 { detail.append(try await client.send(.GET, "/workflows/run/\(runID)").status) }
            #expect(detail == [404, 502, 200])
            let notFound = try await client.send(.GET, "/workflows/run/\(runID)-other")
            #expect(notFound.status == 404, "each run id sees its own first 404")
            var logs: [Int] = []
            for _ in 0..<4 { logs.append(try await client.send(.GET, "/workflows/logs").status) }
            #expect(logs == [404, 502, 502, 200])
        }
    }

    @Test func dropBeforeRun_closesTheConnectionWithoutARun() async throws {
        try await withSimulator(Self.config { $0.dropBeforeRunRate = 1 }) { simulator, client in
            let id = try await client.uploadID(bytes: helloText)
            await #expect(throws: (any Error).self) {
                _ = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            }
            await #expect(throws: (any Error).self) {
                _ = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id, mode: "streaming"))
            }
            let stats = simulator.stats
            #expect(stats.runRequestsReceived == 2)
            #expect(stats.runsStarted == 0)
            #expect(stats.runRequestsDroppedBeforeRun == 2)
            #expect(stats.requestsByEndpointAndStatus["POST /v1/workflows/run 0"] == 2)
            #expect(try await client.send(.GET, "/workflows/logs").json?["total"] == 0)
        }
    }

    @Test func dropBlockingAfterStart_losesTheResponseButTheRunFinishesAndIsBilled() async throws {
        try await withSimulator(Self.config { $0.dropBlockingAfterStartRate = 1; $0.latency = .milliseconds(100) }) { simulator, client in
            let id = try await client.uploadID(bytes: helloText)
            await #expect(throws: (any Error).self) {
                _ = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            }
            let finished = try await Self.eventually {
                try await client.send(.GET, "/workflows/logs?status=succeeded").json?["total"] == 1
            }
            #expect(finished)
            let runID = try #require(
                try await client.send(.GET, "/workflows/logs").json?["data"]?.arrayValue?.first?["workflow_run"]?["id"]?.stringValue)
            let detail = try await client.send(.GET, "/workflows/run/\(runID)")
            let tokens = try #require(detail.json?["total_tokens"]?.intValue)
            let sha = try #require(detail.json?["outputs"]?["sha256"]?.stringValue)
            let stats = simulator.stats
            #expect(stats.runsStarted == 1)
            #expect(stats.runsByUploadFileID[id] == 1)
            #expect(stats.billedBySHA256[sha] == BilledUsage(runs: 1, tokens: tokens, price: stats.billed.price))
            #expect(stats.billedByUploadFileID[id]?.tokens == tokens)
            #expect(tokens > 0)
        }
    }

    @Test func dropAfterStart_runDetailSaysRunningThenSucceededWithUsage() async throws {
        try await withSimulator(Self.config { $0.dropAfterStartRate = 1; $0.latency = .seconds(3) }) { simulator, client in
            let id = try await client.uploadID(bytes: helloText)
            var stream = try await client.openStream("/workflows/run", TestClient.runBody(fileID: id, mode: "streaming"))
            _ = try await stream.next()
            let runID = try #require(try await stream.next()?.data?["workflow_run_id"]?.stringValue)
            await #expect(throws: (any Error).self) { while try await stream.next() != nil {} }
            #expect(try await client.send(.GET, "/workflows/run/\(runID)").json?["status"] == "running")
            let done = try await Self.eventually {
                try await client.send(.GET, "/workflows/run/\(runID)").json?["status"] == "succeeded"
            }
            #expect(done)
            let tokens = try await client.send(.GET, "/workflows/run/\(runID)").json?["total_tokens"]?.intValue
            #expect(tokens == simulator.stats.billed.tokens)
            #expect((tokens ?? 0) > 0)
        }
    }

    @Test func silenceBeforeStart_holdsTheStreamWhileTheRunHappens() async throws {
        try await withSimulator(Self.config { $0.silenceBeforeStart = .seconds(2) }) { simulator, client in
            let id = try await client.uploadID(bytes: helloText)
            var stream = try await client.openStream("/workflows/run", TestClient.runBody(fileID: id, mode: "streaming"))
            #expect(try await stream.next()?.event == "ping")
            let clock = ContinuousClock()
            let afterPing = clock.now
            // The client has seen only a ping, yet the run exists and executes server-side.
            #expect(simulator.stats.runsStarted == 1)
            let next = try await stream.next()
            #expect(next?.data?["event"] == "workflow_started")
            // A lower bound only (load can only lengthen it): the silence held the events back.
            #expect(clock.now - afterPing >= .milliseconds(1500))
            var last: SSERecord?
            while let record = try await stream.next() { last = record }
            #expect(last?.data?["event"] == "workflow_finished")
            #expect(simulator.stats.runsStarted == 1)
            #expect(simulator.stats.runsByStatus["succeeded"] == 1)
        }
    }

    @Test func rateLimit429s_gatewayHTMLBeforeDify_andDifyJSONWithOptionalRetryAfter() async throws {
        let gateway = Self.config { $0.gatewayRateLimitRate = 1; $0.gatewayRetryAfter = .seconds(7) }
        try await withSimulator(gateway) { simulator, client in
            let id = try await client.uploadID(bytes: helloText)
            let run = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            #expect(run.status == 429)
            #expect(run.header("Content-Type") == "text/html; charset=UTF-8")
            #expect(run.header("Retry-After") == "7")
            #expect(run.text.contains("1015"))
            #expect(run.text.contains("You are being rate limited"))
            #expect(run.json == nil)
            #expect(simulator.stats.runsStarted == 0)
            #expect(simulator.stats.runRequestsReceived == 1)
        }
        let dify = Self.config { $0.tooManyRequestsRate = 1; $0.tooManyRequestsRetryAfter = .seconds(3) }
        try await withSimulator(dify) { _, client in
            let id = try await client.uploadID(bytes: helloText)
            let run = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            #expect(run.status == 429)
            #expect(run.json?["code"] == "too_many_requests")
            #expect(run.header("Retry-After") == "3")
        }
    }

    @Test func pausedRun_streamsWorkflowPausedAndWaitsForResumeThenSucceeds() async throws {
        var config = Self.config { $0.pausedRunRate = 1; $0.maxActive = 1 }
        config.pingInterval = .seconds(10)
        try await withSimulator(config) { simulator, client in
            let id = try await client.uploadID(bytes: helloText)
            let streamed = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id, mode: "streaming"))
            let names = streamed.events.compactMap { $0.data?["event"]?.stringValue }
            #expect(names.suffix(2) == ["human_input_required", "workflow_paused"])
            let paused = try #require(streamed.events.last?.data)
            let runID = try #require(paused["workflow_run_id"]?.stringValue)
            #expect(paused["data"]?["status"] == "paused")
            #expect(paused["data"]?["workflow_run_id"]?.stringValue == runID)
            #expect(paused["data"]?["paused_nodes"]?.arrayValue?.count == 1)
            #expect(paused["data"]?["reasons"]?.arrayValue?.first?["type"] == "human_input_required")
            let detail = try await client.send(.GET, "/workflows/run/\(runID)")
            #expect(detail.json?["status"] == "paused")
            #expect(detail.json?["outputs"] == .object([]))
            #expect(detail.json?["finished_at"] == .null)
            #expect(simulator.pausedRunIDs == [runID])
            // A paused run holds no concurrency slot: a blocking run gets through maxActive 1, and pauses too.
            let blocking = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            #expect(blocking.status == 200)
            #expect(blocking.json?["data"]?["status"] == "paused")
            #expect(blocking.json?["data"]?["finished_at"] == .null)
            #expect(blocking.json?["data"]?["paused_nodes"]?.arrayValue?.count == 1)
            #expect(simulator.pausedRunIDs.count == 2)

            #expect(simulator.resumePausedRun(id: runID))
            let succeeded = try await Self.eventually {
                try await client.send(.GET, "/workflows/run/\(runID)").json?["status"] == "succeeded"
            }
            #expect(succeeded)
            let final = try await client.send(.GET, "/workflows/run/\(runID)").json
            #expect(final?["outputs"]?["sha256"] != nil)
            #expect((final?["total_tokens"]?.intValue ?? 0) > 0)
            #expect(simulator.resumePausedRun(id: runID) == false, "only a paused run can be resumed")
            let stats = simulator.stats
            #expect(stats.runsPaused == 2)
            #expect(stats.runsResumed == 1)
            #expect(stats.runsStarted == 2)
            #expect(stats.billed.runs == 2, "both model calls were billed before the pause")
            #expect(simulator.pausedRunIDs.count == 1)
        }
    }

    @Test func pausedRunResumeAfter_resumesOnItsOwn() async throws {
        try await withSimulator(Self.config { $0.pausedRunRate = 1; $0.pausedRunResumeAfter = .milliseconds(200) }) { _, client in
            let id = try await client.uploadID(bytes: helloText)
            let run = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            #expect(run.json?["data"]?["status"] == "paused")
            let runID = try #require(run.json?["workflow_run_id"]?.stringValue)
            let succeeded = try await Self.eventually {
                try await client.send(.GET, "/workflows/run/\(runID)").json?["status"] == "succeeded"
            }
            #expect(succeeded)
        }
    }
}
