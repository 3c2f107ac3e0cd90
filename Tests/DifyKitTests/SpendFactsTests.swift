import AsyncHTTPClient
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import Testing

@testable import DifyKit

/// The facts DifyKit hands to the spend-once policy (issue 10): whether a run may have started, who answered a 429,
/// Dify's clock, paused runs. DifyKit classifies; it never decides or re-sends.
@Suite("Spend facts: runMayHaveStarted, 429 source, Dify's clock, paused runs")
struct SpendFactsTests {
    static let key = "app-SECRETKEY-0123456789abcdef"

    static func error(status: Int, body: String, headers: HTTPHeaders = [:], isRun: Bool = true) -> DifyError {
        DifyClient.httpError(status: status, headers: headers, body: ByteBuffer(string: body),
                             endpoint: isRun ? "POST /workflows/run" : "GET /workflows/run/x", isRun: isRun,
                             apiKey: key)
    }

    @Test("httpError_whenDifyAnswersJSON429TooManyRequests_isDifyConcurrencyLimitAndProvesNoRun")
    func difyConcurrency429() {
        let error = Self.error(
            status: 429,
            body: #"{"code":"too_many_requests","message":"Too many requests. Please try again later. The current maximum concurrent requests allowed for app is 1.","status":429}"#,
            headers: ["Content-Type": "application/json"])
        #expect(error.backpressureSource == .difyConcurrencyLimit)
        #expect(error.classification == .backpressure)
        #expect(error.runMayHaveStarted == false)
        #expect(error.bodySnippet == nil)
        #expect(error.message.contains("concurrent-request cap"))
    }

    @Test("httpError_whenA429BodyIsCloudflareHTML_isGatewayRateLimitWithRedactedSnippetAndRetryAfterDate")
    func gateway429() {
        // The key sits across the 200-character cut: redacting before cutting must leave no prefix of it.
        let padding = String(repeating: "x", count: 180)
        let html = "<!DOCTYPE html><title>Access denied | api.example.com used Cloudflare to restrict access</title>"
            + "<h1>Error 1015</h1><p>You are being rate limited \(padding) Bearer \(Self.key) more text</p>"
        let error = Self.error(
            status: 429, body: html,
            headers: ["Content-Type": "text/html; charset=UTF-8", "Date": "Mon, 30 Nov 2026 12:00:00 GMT",
                      "Retry-After": "Mon, 30 Nov 2026 12:00:30 GMT"])
        #expect(error.backpressureSource == .gatewayRateLimit)
        #expect(error.classification == .backpressure)
        #expect(error.runMayHaveStarted == false)
        let snippet = error.bodySnippet ?? ""
        #expect(snippet.count <= 200)
        #expect(snippet.hasPrefix("<!DOCTYPE html><title>Access denied"))
        #expect(!snippet.contains("SECRETKEY"))
        #expect(!snippet.contains("app-SECR"))
        #expect(!error.message.contains("SECRETKEY"))
        #expect(!error.message.contains("concurrency limit"))
        #expect(error.message.contains("gateway or CDN"))
        #expect(error.retryAfter == .seconds(30), "an HTTP-date Retry-After is measured against the response's Date")
        #expect(error.serverDate == Date(timeIntervalSince1970: 1_796_040_000))
    }

    @Test("httpError_whenA429BodyIsNotDifyJSON_isGatewayEvenIfJSON")
    func gatewayJSON429() {
        let error = Self.error(status: 429, body: #"{"error":"rate limited"}"#, headers: ["Retry-After": "12"])
        #expect(error.backpressureSource == .gatewayRateLimit)
        #expect(error.retryAfter == .seconds(12))
        #expect(error.bodySnippet == #"{"error":"rate limited"}"#)
    }

    @Test("httpError_whenDifyAnswersRateLimitErrorQuota_hasNoBackpressureSource")
    func quota429() {
        let error = Self.error(status: 429, body: #"{"code":"rate_limit_error","message":"Rate Limit Error","status":429}"#)
        #expect(error.backpressureSource == nil)
        #expect(error.classification == .quota)
        #expect(error.runMayHaveStarted == false)
    }

    struct Row: Sendable, CustomTestStringConvertible {
        var status: Int
        var body: String
        var isRun: Bool
        var mayHaveStarted: Bool
        var testDescription: String { "\(isRun ? "run" : "GET") HTTP \(status) → \(mayHaveStarted)" }
    }

    @Test("runMayHaveStarted follows the status of a run POST's answer", arguments: [
        Row(status: 400, body: #"{"code":"invalid_param","message":"file is required in input form","status":400}"#, isRun: true,
            mayHaveStarted: false),
        Row(status: 401, body: #"{"code":"unauthorized","message":"Access token is invalid","status":401}"#, isRun: true,
            mayHaveStarted: false),
        Row(status: 404, body: "<html><title>404 Not Found</title></html>", isRun: true, mayHaveStarted: false),
        Row(status: 413, body: "<html><title>413 Request Entity Too Large</title></html>", isRun: true, mayHaveStarted: false),
        Row(status: 500, body: #"{"code":"internal_server_error","message":"x","status":500}"#, isRun: true, mayHaveStarted: true),
        Row(status: 502, body: "<html><title>502 Bad Gateway</title></html>", isRun: true, mayHaveStarted: true),
        Row(status: 504, body: "", isRun: true, mayHaveStarted: true),
        Row(status: 524, body: "<html>A timeout occurred</html>", isRun: true, mayHaveStarted: true),
        Row(status: 502, body: "<html><title>502 Bad Gateway</title></html>", isRun: false, mayHaveStarted: false),
    ])
    func runMayHaveStartedTable(_ row: Row) {
        #expect(Self.error(status: row.status, body: row.body, isRun: row.isRun).runMayHaveStarted == row.mayHaveStarted)
    }

    @Test("run_whenNothingListens_isNotSentAndProvesNoRun")
    func connectionRefused() async throws {
        // Bind a port, then close it, so the connect is refused.
        let port = try await TestServer.run({ _ in }) { baseURL in
            Int(baseURL.split(separator: ":").last!.split(separator: "/").first!)!
        }
        // AHC keeps retrying a refused connect until the connect timeout: keep it short.
        let timeouts = DifyClient.Timeouts(connect: .milliseconds(300), responseHead: .seconds(5), total: .seconds(5))
        let error = try await withDifyClient(baseURL: "http://127.0.0.1:\(port)/v1", timeouts: timeouts) { client in
            try await runError(client, RunRequest(mode: .workflow, inputs: [:], user: "u", responseMode: .blocking))
        }
        #expect(error?.requestSent == false)
        #expect(error?.runMayHaveStarted == false)
    }

    @Test("run_whenTheConnectionDropsAfterTheRequest_runMayHaveStarted")
    func droppedAfterSend() async throws {
        let error = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { _, _ -> Response in
                Response(status: .ok, headers: [.contentType: "text/event-stream"],
                         body: ResponseBody { writer in
                             try await writer.write(ByteBuffer(string: pingChunk + startedChunk))
                             throw CancellationError()
                         })
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                try await runError(client, RunRequest(mode: .workflow, inputs: [:], user: "u"))
            }
        }
        let dropped = try #require(error)
        #expect(dropped.runMayHaveStarted)
        #expect(dropped.classification == .ambiguous)
        #expect(dropped.runStarted == RunStarted(workflowRunID: "r1", taskID: "t1"))
        #expect(dropped.serverDate != nil)
    }

    // Shape from Dify's WorkflowPauseStreamResponse (data carries workflow_run_id, paused_nodes, reasons).
    static let pausedChunk = #"data: {"event":"workflow_paused","task_id":"t1","workflow_run_id":"r1","data":{"workflow_run_id":"r1","paused_nodes":["1700000000004"],"outputs":{},"reasons":[{"type":"human_input_required","form_id":"f1","node_id":"1700000000004","expiration_time":1796040000}],"status":"paused","created_at":1796039000,"elapsed_time":0.2,"total_tokens":7,"total_steps":2}}"# + "\n\n"

    @Test("run_whenTheStreamEndsWithWorkflowPaused_returnsAPausedResultWithTheRunID")
    func pausedStream() async throws {
        let result = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { _, _ -> Response in streamResponse([pingChunk, startedChunk, Self.pausedChunk]) }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u"))
            }
        }
        #expect(result.status == .paused)
        #expect(result.isPaused)
        #expect(!result.status.isTerminal)
        #expect(result.workflowRunID == "r1")
        #expect(result.taskID == "t1")
        #expect(result.pausedNodes == ["1700000000004"])
        #expect(result.usage.totalTokens == 7)
        #expect(result.serverDate != nil)
    }

    @Test("run_whenABlockingRunAnswersStatusPaused_returnsAPausedResult")
    func pausedBlocking() async throws {
        let body = #"{"task_id": "t1", "workflow_run_id": "r1", "data": {"id": "r1", "workflow_id": "w1", "status": "paused", "outputs": {}, "error": null, "elapsed_time": 0.5, "total_tokens": 3, "total_steps": 2, "created_at": 1796039000, "finished_at": null, "paused_nodes": ["n1"], "reasons": [{"type": "human_input_required", "form_id": "f1"}]}}"#
        let result = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { _, _ -> Response in .json(body) }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u", responseMode: .blocking))
            }
        }
        #expect(result.status == .paused)
        #expect(result.workflowRunID == "r1")
        #expect(result.pausedNodes == ["n1"])
        #expect(result.createdAt == Date(timeIntervalSince1970: 1_796_039_000))
    }

    @Test("workflowLogsQuery_sendsBeforeAfterSessionStatusPageAndLimit")
    func logsQueryItems() {
        let query = WorkflowLogsQuery(
            keyword: "k", status: "succeeded", createdAfter: Date(timeIntervalSince1970: 1_796_040_000),
            createdBefore: Date(timeIntervalSince1970: 1_796_041_800), endUserSessionID: "job-user", page: 3, limit: 100)
        let items = Dictionary(uniqueKeysWithValues: query.queryItems)
        #expect(items["created_at__after"] == "2026-11-30T12:00:00Z")
        #expect(items["created_at__before"] == "2026-11-30T12:30:00Z")
        #expect(items["created_by_end_user_session_id"] == "job-user")
        #expect(items["status"] == "succeeded")
        #expect(items["keyword"] == "k")
        #expect(items["page"] == "3")
        #expect(items["limit"] == "100")
    }
}
