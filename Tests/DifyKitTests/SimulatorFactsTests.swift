import DifySimulator
import Foundation
import Testing

@testable import DifyKit

/// DifyKit's spend facts against the simulator's recovery faults, over real sockets, asserting what the server saw.
@Suite("Spend facts against the simulator")
struct SimulatorFactsTests {
    static let user = "facts-user"

    /// A simulator with `faults`, a DifyKit client on it, and one uploaded text file.
    static func withUploaded<T: Sendable>(
        timeouts: DifyClient.Timeouts = .init(), _ edit: (inout FaultPlan) -> Void,
        _ body: @Sendable (DifySimulator, DifyClient, UploadedFile) async throws -> T
    ) async throws -> T {
        var configuration = SimulatorConfiguration()
        edit(&configuration.faults)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("facts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("memo.txt").path
        try Data("A memo about spending money only once.\n".utf8).write(to: URL(fileURLWithPath: path))
        return try await withDifySimulator(configuration) { simulator, baseURL in
            try await withDifyClient(baseURL: baseURL, apiKey: SimulatedApp.defaultAPIKey, timeouts: timeouts) { client in
                let file = try await client.upload(fileAt: path, user: user)
                return try await body(simulator, client, file)
            }
        }
    }

    static func request(_ file: UploadedFile, _ mode: ResponseMode) -> RunRequest {
        RunRequest(mode: .workflow, inputs: ["document": FileReference.localFile(uploadFileID: file.id, kind: .document)],
                   user: user, responseMode: mode)
    }

    /// True when `date` minus `offset` lies between `start` and now (±2 s for whole-second stamps): load-proof.
    static func isNear(_ date: Date?, _ offset: TimeInterval, since start: Date) -> Bool {
        guard let shifted = date?.addingTimeInterval(-offset) else { return false }
        return shifted >= start.addingTimeInterval(-2) && shifted <= Date().addingTimeInterval(2)
    }

    static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    @Test("serverDate_onUploadRunDetailLogsAndErrors_isDifysClockNotTheLocalOne")
    func serverDates() async throws {
        let start = Date()
        try await Self.withUploaded({ $0.clockOffset = .seconds(3600) }) { _, client, file in
            #expect(Self.isNear(file.serverDate, 3600, since: start))
            #expect(Self.isNear(file.createdAt.map { Date(timeIntervalSince1970: TimeInterval($0)) }, 3600, since: start))
            let result = try await client.run(Self.request(file, .blocking))
            #expect(Self.isNear(result.serverDate, 3600, since: start))
            #expect(Self.isNear(result.createdAt, 3600, since: start))
            let runID = try #require(result.workflowRunID)
            let detail = try await client.workflowRunDetail(id: runID)
            #expect(Self.isNear(detail.serverDate, 3600, since: start))
            let difyNow = try #require(result.serverDate)
            let window = WorkflowLogsQuery(createdAfter: difyNow.addingTimeInterval(-900),
                                           createdBefore: difyNow.addingTimeInterval(900), endUserSessionID: Self.user)
            let page = try await client.workflowLogs(window)
            #expect(Self.isNear(page.serverDate, 3600, since: start))
            #expect(page.data.map { $0.workflowRun?.id } == [runID])
            let local = WorkflowLogsQuery(createdAfter: Date().addingTimeInterval(-60), createdBefore: Date().addingTimeInterval(60))
            #expect(try await client.workflowLogs(local).data.isEmpty, "a window in the local clock misses the run")
            let missing = await #expect(throws: DifyError.self) { try await client.workflowRunDetail(id: "no-such-run") }
            #expect(missing?.httpStatus == 404)
            #expect(Self.isNear(missing?.serverDate, 3600, since: start))
            #expect(missing?.runMayHaveStarted == false)
        }
    }

    @Test("run_whenAProxyHoldsTheStreamBeforeWorkflowStarted_throwsStalledOnceAndTheLogsFindTheRun")
    func bufferingProxy() async throws {
        let timeouts = DifyClient.Timeouts(streamIdle: .milliseconds(500), total: .seconds(20))
        try await Self.withUploaded(timeouts: timeouts, { $0.silenceBeforeStart = .seconds(8) }) { simulator, client, file in
            let error = try #require(try await runError(client, Self.request(file, .streaming)))
            #expect(error.code == .streamStalled)
            #expect(error.runMayHaveStarted)
            #expect(error.runStarted == nil)
            let difyNow = try #require(error.serverDate)
            #expect(simulator.stats.runRequestsReceived == 1, "DifyKit sent the run once and did not repeat it")
            let query = WorkflowLogsQuery(createdAfter: difyNow.addingTimeInterval(-900),
                                          createdBefore: difyNow.addingTimeInterval(900), endUserSessionID: Self.user)
            let found = try await Self.eventually {
                try await client.allWorkflowLogs(query).contains { $0.workflowRun?.status == .succeeded }
            }
            #expect(found, "the run happened although the client saw only a ping")
            #expect(simulator.stats.runsStarted == 1)
        }
    }

    @Test("run_whenTheConnectionDropsBeforeAnyRun_runMayHaveStartedButTheServerStartedNone")
    func dropBeforeRun() async throws {
        try await Self.withUploaded({ $0.dropBeforeRunRate = 1 }) { simulator, client, file in
            let error = try #require(try await runError(client, Self.request(file, .blocking)))
            #expect(error.runMayHaveStarted, "from the client's side a dropped connection proves nothing")
            #expect(error.classification == .ambiguous)
            #expect(simulator.stats.runRequestsReceived == 1)
            #expect(simulator.stats.runsStarted == 0)
        }
    }

    @Test("run_whenTheWorkflowPauses_returnsAPausedResultInBothModesAndDetailFollowsTheResume")
    func pausedRuns() async throws {
        try await Self.withUploaded({ $0.pausedRunRate = 1 }) { simulator, client, file in
            let streamed = try await client.run(Self.request(file, .streaming))
            let blocking = try await client.run(Self.request(file, .blocking))
            for result in [streamed, blocking] {
                #expect(result.isPaused)
                #expect(result.workflowRunID != nil)
                #expect(result.pausedNodes.count == 1)
            }
            #expect(simulator.stats.runRequestsReceived == 2)
            let runID = try #require(streamed.workflowRunID)
            #expect(try await client.workflowRunDetail(id: runID).status == .paused)
            #expect(simulator.resumePausedRun(id: runID))
            let done = try await Self.eventually { try await client.workflowRunDetail(id: runID).status == .succeeded }
            #expect(done)
            #expect((try await client.workflowRunDetail(id: runID).totalTokens ?? 0) > 0)
        }
    }

    @Test("run_when429s_tellsAGatewayRateLimitFromDifysConcurrencyCap")
    func rateLimits() async throws {
        try await Self.withUploaded({ $0.gatewayRateLimitRate = 1; $0.gatewayRetryAfter = .seconds(9) }) { _, client, file in
            let error = try #require(try await runError(client, Self.request(file, .streaming)))
            #expect(error.backpressureSource == .gatewayRateLimit)
            #expect(error.retryAfter == .seconds(9))
            #expect(error.bodySnippet?.hasPrefix("<!DOCTYPE html>") == true)
            #expect(error.runMayHaveStarted == false)
            #expect(!error.message.contains("concurrent"))
        }
        try await Self.withUploaded({ $0.tooManyRequestsRate = 1 }) { _, client, file in
            let error = try #require(try await runError(client, Self.request(file, .blocking)))
            #expect(error.backpressureSource == .difyConcurrencyLimit)
            #expect(error.runMayHaveStarted == false)
            #expect(error.bodySnippet == nil)
        }
    }

    @Test("allWorkflowLogs_followsHasMoreAcrossPages")
    func paging() async throws {
        try await Self.withUploaded({ _ in }) { simulator, client, file in
            for _ in 0..<5 { _ = try await client.run(Self.request(file, .blocking)) }
            let before = simulator.stats.requestsByEndpoint["GET /v1/workflows/logs"] ?? 0
            let entries = try await client.allWorkflowLogs(WorkflowLogsQuery(endUserSessionID: Self.user, limit: 2))
            #expect(entries.count == 5)
            #expect(Set(entries.compactMap { $0.workflowRun?.id }).count == 5)
            #expect((simulator.stats.requestsByEndpoint["GET /v1/workflows/logs"] ?? 0) - before == 3)
        }
    }
}
