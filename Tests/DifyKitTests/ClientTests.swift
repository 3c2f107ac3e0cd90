import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import Testing

@testable import DifyKit

/// A small thread-safe recorder for server-side observations.
final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String: [String]] = [:]
    private var counters: [String: Int] = [:]
    private var bytes: [UInt8] = []

    func add(_ key: String, _ value: String) { lock.withLock { values[key, default: []].append(value) } }
    func get(_ key: String) -> [String] { lock.withLock { values[key] ?? [] } }
    func bump(_ key: String, by amount: Int = 1) { lock.withLock { counters[key, default: 0] += amount } }
    func count(_ key: String) -> Int { lock.withLock { counters[key] ?? 0 } }
    func appendBytes(_ buffer: ByteBuffer) { lock.withLock { bytes.append(contentsOf: buffer.readableBytesView) } }
    var body: [UInt8] { lock.withLock { bytes } }
}

func sse(_ lines: [String]) -> [ByteBuffer] { lines.map { ByteBuffer(string: $0) } }

let pingChunk = "event: ping\n\n"
let startedChunk = #"data: {"event":"workflow_started","workflow_run_id":"r1","task_id":"t1","data":{"id":"r1","workflow_id":"w1"}}"# + "\n\n"
let finishedChunk = #"data: {"event":"workflow_finished","workflow_run_id":"r1","task_id":"t1","data":{"id":"r1","status":"succeeded","outputs":{"text":"ok"},"total_tokens":3,"elapsed_time":0.5}}"# + "\n\n"

/// An SSE response that writes `chunks`, sleeping `delay` before each, then optionally stalls, then closes.
func streamResponse(_ chunks: [String], delay: Duration = .zero, stallAfter: Duration? = nil) -> Response {
    Response(
        status: .ok, headers: [.contentType: "text/event-stream; charset=utf-8"],
        body: ResponseBody { writer in
            for chunk in chunks {
                if delay > .zero { try await Task.sleep(for: delay) }
                try await writer.write(ByteBuffer(string: chunk))
            }
            if let stallAfter { try? await Task.sleep(for: stallAfter) }
            try await writer.finish(nil)
        })
}

@Suite("DifyClient against local servers")
struct ClientTests {
    @Test("upload sends the exact multipart body with Content-Length, filename and MIME type")
    func goldenMultipart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("difykit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("hello.txt").path
        try Data("Hello, Dify!\näöü\n".utf8).write(to: URL(fileURLWithPath: path))
        let recorder = Recorder()
        let uploadBody = try Captures.http("01_upload_txt").body
        let file = try await TestServer.run({ router in
            router.post("/v1/files/upload") { request, _ -> Response in
                recorder.add("content-type", request.headers[.contentType] ?? "")
                recorder.add("content-length", request.headers[.contentLength] ?? "")
                recorder.add("transfer-encoding", request.headers[.transferEncoding] ?? "")
                recorder.add("authorization", request.headers[.authorization] ?? "")
                for try await chunk in request.body { recorder.appendBytes(chunk) }
                return Response(status: .created, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(data: uploadBody)))
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL, apiKey: "app-EXTRACT-KEY") { client in
                try await client.upload(fileAt: path, filename: "sub/dir\\hello.txt", user: "oracle-user",
                                        boundary: "----DifyKitTestBoundary")
            }
        }
        let expected = "------DifyKitTestBoundary\r\n"
            + "Content-Disposition: form-data; name=\"user\"\r\n\r\n"
            + "oracle-user\r\n"
            + "------DifyKitTestBoundary\r\n"
            + "Content-Disposition: form-data; name=\"file\"; filename=\"hello.txt\"\r\n"
            + "Content-Type: text/plain\r\n\r\n"
            + "Hello, Dify!\näöü\n\r\n"
            + "------DifyKitTestBoundary--\r\n"
        #expect(recorder.body == Array(expected.utf8))
        #expect(recorder.get("content-length") == [String(expected.utf8.count)])
        #expect(recorder.get("transfer-encoding") == [""])
        #expect(recorder.get("content-type") == ["multipart/form-data; boundary=----DifyKitTestBoundary"])
        #expect(recorder.get("authorization") == ["Bearer app-EXTRACT-KEY"])
        #expect(file.id == "b69aafd0-68c6-4ec1-a2ee-6f606b474c1d")
        #expect(MultipartUpload.sanitizedFilename("a/b\\c.pdf") == "c.pdf")
        #expect(MultipartUpload.sanitizedFilename("///") == "file")
    }

    @Test("a 160 MB upload is streamed from disk in many chunks with flat memory")
    func largeUploadStreams() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("difykit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // DIFYKIT_BIG_UPLOAD_MB lets a developer try other sizes by hand. The suite uses 160 MB: the peak is the whole
        // test process's (VmHWM), and other suites running beside this one on a loaded machine added 46–52 MB to a
        // 50 MB upload that holds nothing; a file held in memory adds its size or more.
        let megabytes = ProcessInfo.processInfo.environment["DIFYKIT_BIG_UPLOAD_MB"].flatMap(Int.init) ?? 160
        let size = megabytes * 1024 * 1024
        let path = directory.appendingPathComponent("big.pdf").path
        let small = directory.appendingPathComponent("small.pdf").path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        let block = Data(repeating: 0x41, count: 1024 * 1024)
        for _ in 0..<megabytes { try handle.write(contentsOf: block) }
        try handle.close()
        try Data(repeating: 0x42, count: 1024).write(to: URL(fileURLWithPath: small))

        let recorder = Recorder()
        let (file, before, after) = try await TestServer.run({ router in
            router.post("/v1/files/upload") { request, _ -> Response in
                recorder.add("content-length", request.headers[.contentLength] ?? "")
                var bytes = 0
                for try await chunk in request.body {
                    recorder.bump("chunks")
                    bytes += chunk.readableBytes
                }
                recorder.bump("bytes", by: bytes)
                return .json(#"{"id":"big-1","name":"big.pdf","size":\#(bytes),"extension":"pdf","mime_type":"application/pdf","created_by":"u","created_at":1}"#,
                             status: .created)
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                // Warm up server, client and connection so the measurement covers the upload itself.
                _ = try await client.upload(fileAt: small, user: "u")
                let before = rssKB()
                let file = try await client.upload(fileAt: path, user: "u")
                return (file, before, rssKB())
            }
        }
        let growthMB = Double(after.hwm - max(before.rss, before.hwm)) / 1024
        let chunks = recorder.count("chunks")
        print("DifyKit large upload: \(megabytes) MB file, VmRSS before \(before.rss / 1024) MB (VmHWM \(before.hwm / 1024) MB), VmRSS after \(after.rss / 1024) MB, VmHWM after \(after.hwm / 1024) MB, peak growth during upload \(String(format: "%.1f", max(0, growthMB))) MB, server saw \(chunks) chunks (both uploads)")
        #expect(file.size > Int64(size))
        #expect(recorder.get("content-length").last == String(file.size))
        #expect(chunks >= megabytes, "body must arrive in many chunks, not one buffer")
        // Other suites run in parallel in this process, so allow noise; holding the file would add >= its size.
        #expect(growthMB < Double(megabytes) * 0.6, "upload must not hold the file in memory")
    }

    @Test("an early 413 (HTML, body not read) during a large upload surfaces as the HTTP error")
    func earlyRejection() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("difykit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("big.txt").path
        try Data(repeating: 0x41, count: 8 * 1024 * 1024).write(to: URL(fileURLWithPath: path))
        let error = try await TestServer.run({ router in
            router.post("/v1/files/upload") { _, _ -> Response in
                Response(status: .contentTooLarge, headers: [.contentType: "text/html", .connection: "close"],
                         body: .init(byteBuffer: ByteBuffer(string: "<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>")))
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                do { _ = try await client.upload(fileAt: path, user: "u"); return DifyError?.none } catch let error as DifyError { return error }
            }
        }
        let rejected = try #require(error)
        #expect(rejected.code == .http)
        #expect(rejected.httpStatus == 413)
        #expect(rejected.difyCode == nil)
        #expect(rejected.classification == .permanent)
        #expect(rejected.message.contains("413 Request Entity Too Large"))
    }

    @Test("streaming a captured workflow run yields the result and reports ids first; request body is Dify's shape")
    func streamingCapture() async throws {
        let capture = try Captures.data("14_run_streaming_txt.sse")
        let recorder = Recorder()
        let result = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { request, _ -> Response in
                recorder.add("body", try await bodyJSON(request).jsonString())
                // Replay in 97-byte pieces so events straddle chunk boundaries.
                let pieces = stride(from: 0, to: capture.count, by: 97).map {
                    String(decoding: capture[$0..<min($0 + 97, capture.count)], as: UTF8.self)
                }
                return Response(status: .ok, headers: [.contentType: "text/event-stream; charset=utf-8"],
                                body: ResponseBody { writer in
                                    for start in stride(from: 0, to: capture.count, by: 97) {
                                        try await writer.write(ByteBuffer(bytes: capture[start..<min(start + 97, capture.count)]))
                                    }
                                    _ = pieces
                                    try await writer.finish(nil)
                                })
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                let request = RunRequest(mode: .workflow,
                                         inputs: ["file": FileReference.localFile(uploadFileID: "f1", kind: .document)],
                                         user: "oracle-user")
                return try await client.run(request) { started in
                    recorder.add("started", "\(started.workflowRunID ?? "-")/\(started.taskID ?? "-")")
                }
            }
        }
        #expect(recorder.get("started") == ["1a53d805-0646-421f-a302-c8af30e429a7/6a67c20d-aa41-47b2-92b6-97a9552a9947"])
        #expect(result.status == .succeeded)
        #expect(result.outputs["text"] == .string("Hello from the Dify oracle.\nSecond line: äöü €.\n"))
        #expect(result.workflowRunID == "1a53d805-0646-421f-a302-c8af30e429a7")
        let body = try JSONValue.parse(try #require(recorder.get("body").first))
        #expect(body == ["inputs": ["file": ["type": "document", "transfer_method": "local_file", "upload_file_id": "f1"]],
                         "user": "oracle-user", "response_mode": "streaming"])
    }

    @Test("run_whenStreamGoesSilentBeforeWorkflowStarted_throwsStalledRunMayHaveStartedAndSendsOnce")
    func stallBeforeStartIsNotRepeated() async throws {
        let recorder = Recorder()
        let clock = ContinuousClock()
        let timeouts = DifyClient.Timeouts(streamIdle: .milliseconds(300), total: .seconds(10))
        let (error, elapsed) = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { request, _ -> Response in
                let body = try await bodyJSON(request)
                recorder.bump(body["response_mode"]?.stringValue ?? "none")
                return streamResponse([pingChunk], stallAfter: .seconds(60))
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL, timeouts: timeouts) { client in
                let start = clock.now
                do {
                    _ = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u"))
                    return (DifyError?.none, clock.now - start)
                } catch let error as DifyError { return (error, clock.now - start) }
            }
        }
        let stalled = try #require(error)
        #expect(stalled.code == .streamStalled)
        #expect(stalled.classification == .ambiguous)
        #expect(stalled.runMayHaveStarted)
        #expect(stalled.runStarted == nil)
        #expect(stalled.serverDate != nil, "the stream's head carried a Date header")
        #expect(stalled.message.contains("outcome is unknown"))
        #expect(recorder.count("streaming") == 1)
        #expect(recorder.count("blocking") == 0, "DifyKit never repeats a run request by itself")
        // streamStalled (not streamEndedEarly, which the server's close after its 60 s stall would give) shows the
        // idle deadline fired; the bound only catches a wait for the whole stall, loosely for a loaded machine.
        #expect(elapsed < .seconds(45), "idle detection must not wait for the server's 60 s stall")
    }

    @Test("a stream that closes after only a ping is streamEndedEarly (ambiguous), without a blocking repeat")
    func closedAfterPing() async throws {
        let recorder = Recorder()
        let error = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { request, _ -> Response in
                let body = try await bodyJSON(request)
                recorder.bump(body["response_mode"]?.stringValue ?? "none")
                return streamResponse([pingChunk])
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                do {
                    _ = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u"))
                    return DifyError?.none
                } catch let error as DifyError { return error }
            }
        }
        #expect(error?.code == .streamEndedEarly)
        #expect(error?.classification == .ambiguous)
        #expect(error?.runStarted == nil)
        #expect(recorder.count("blocking") == 0)
    }

    @Test("a stall after workflow_started is streamStalled, ambiguous, with the run ids and no repeat")
    func stallAfterStart() async throws {
        let recorder = Recorder()
        let timeouts = DifyClient.Timeouts(streamIdle: .milliseconds(300), total: .seconds(10))
        let error = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { request, _ -> Response in
                recorder.bump(try await bodyJSON(request)["response_mode"]?.stringValue ?? "none")
                return streamResponse([pingChunk, startedChunk], stallAfter: .seconds(60))
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL, timeouts: timeouts) { client in
                do {
                    _ = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u")) { _ in
                        recorder.bump("onStarted")
                    }
                    return DifyError?.none
                } catch let error as DifyError { return error }
            }
        }
        let stalled = try #require(error)
        #expect(stalled.code == .streamStalled)
        #expect(stalled.classification == .ambiguous)
        #expect(stalled.runStarted == RunStarted(workflowRunID: "r1", taskID: "t1"))
        #expect(recorder.count("blocking") == 0)
        #expect(recorder.count("onStarted") == 1)
    }

    /// The ratio, not the speed, is the point: a ping every second keeps a 12 s idle timeout from firing over a
    /// 14 s stream, with room for a starved test process (CI saw 11 s scheduling gaps).
    @Test("pings every second keep a 12 s idle timeout from firing over a 14 s stream")
    func pingsResetIdle() async throws {
        let timeouts = DifyClient.Timeouts(streamIdle: .seconds(12), total: .seconds(120))
        let result = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { _, _ -> Response in
                streamResponse([pingChunk, startedChunk] + Array(repeating: pingChunk, count: 13) + [finishedChunk],
                               delay: .seconds(1))
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL, timeouts: timeouts) { client in
                try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u"))
            }
        }
        #expect(result.status == .succeeded)
        #expect(result.outputs == ["text": "ok"])
        #expect(result.usage.totalTokens == 3)
    }

    struct CallerError: Error, Equatable {}

    @Test("time spent in onStarted is not counted as stream silence; its errors pass through unchanged")
    func onStartedBehaviour() async throws {
        // A 10 s callback against a 4 s idle deadline: the margin after the callback is for a starved process.
        let timeouts = DifyClient.Timeouts(streamIdle: .seconds(4), total: .seconds(120))
        let (result, thrown) = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { _, _ -> Response in
                streamResponse([pingChunk, startedChunk, finishedChunk])
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL, timeouts: timeouts) { client in
                let result = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u")) { _ in
                    try await Task.sleep(for: .seconds(10))
                }
                var thrown: (any Error)?
                do {
                    _ = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u")) { _ in
                        throw CallerError()
                    }
                } catch { thrown = error }
                return (result, thrown)
            }
        }
        #expect(result.status == .succeeded)
        #expect(thrown is CallerError)
    }

    @Test("a missing local file fails the upload as fileAccess without sending anything")
    func missingFile() async throws {
        try await withDifyClient(baseURL: "http://127.0.0.1:1/v1") { client in
            do {
                _ = try await client.upload(fileAt: "/nonexistent/difykit/none.pdf", user: "u")
                Issue.record("expected an error")
            } catch let error as DifyError {
                #expect(error.code == .fileAccess)
                #expect(error.requestSent == false)
                #expect(error.classification == .permanent)
                #expect(error.endpoint == "POST /files/upload")
            }
        }
    }

    @Test("the total deadline bounds a slow GET and a stream that keeps pinging")
    func totalDeadline() async throws {
        let clock = ContinuousClock()
        // 12 s: under a full suite on a loaded machine the stream's first event once came more than 3 s after the
        // request started, so the deadline fired before the run's ids were known.
        let timeouts = DifyClient.Timeouts(responseHead: .seconds(30), streamIdle: .seconds(5),
                                           total: .seconds(12))
        let (getError, runError, elapsed) = try await TestServer.run({ router in
            router.get("/v1/info") { _, _ -> Response in
                try? await Task.sleep(for: .seconds(60))
                return .json(#"{"name":"x","mode":"workflow"}"#)
            }
            router.post("/v1/workflows/run") { _, _ -> Response in
                streamResponse([startedChunk] + Array(repeating: pingChunk, count: 600),
                               delay: .milliseconds(100))
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL, timeouts: timeouts) { client in
                let start = clock.now
                var getError: DifyError?
                var runError: DifyError?
                do { _ = try await client.info() } catch let error as DifyError { getError = error }
                do { _ = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u")) } catch let error as DifyError { runError = error }
                return (getError, runError, clock.now - start)
            }
        }
        #expect(getError?.code == .timeout)
        #expect(getError?.message.contains("total deadline") == true, "\(String(describing: getError))")
        #expect(getError?.classification == .retryable)
        #expect(runError?.code == .timeout)
        #expect(runError?.message.contains("total deadline") == true, "\(String(describing: runError))")
        #expect(runError?.classification == .ambiguous)
        #expect(runError?.runStarted?.workflowRunID == "r1")
        // Without the deadline the GET alone would take 60 s and the stream 60 s more (the bound is loose for a
        // loaded machine; the messages above say which deadline fired).
        #expect(elapsed < .seconds(100))
    }

    @Test("the response-head timeout fires for a server that never answers")
    func headTimeout() async throws {
        let timeouts = DifyClient.Timeouts(responseHead: .milliseconds(250), total: .seconds(120))
        let clock = ContinuousClock()
        let (error, elapsed) = try await TestServer.run({ router in
            router.get("/v1/parameters") { _, _ -> Response in
                try? await Task.sleep(for: .seconds(60))
                return .json("{}")
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL, timeouts: timeouts) { client in
                let start = clock.now
                do { _ = try await client.parameters(); return (DifyError?.none, clock.now - start) } catch let error as DifyError { return (error, clock.now - start) }
            }
        }
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("no response head") == true, "\(String(describing: error))")
        #expect(error?.classification == .retryable)
        // The message names the head deadline (the total one is 120 s); the bound is loose for a loaded machine.
        #expect(elapsed < .seconds(45), "the server answers only after 60 s")
    }

    @Test("a stream closing without a terminal event is streamEndedEarly with ids; error events are thrown typed")
    func endedEarlyAndInStreamError() async throws {
        let (early, inStream) = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { _, _ -> Response in
                streamResponse([pingChunk, startedChunk,
                                #"data: {"event":"node_started","workflow_run_id":"r1","task_id":"t1","data":{"id":"n1"}}"# + "\n\n"])
            }
            router.post("/v1/chat-messages") { _, _ -> Response in
                streamResponse([pingChunk,
                                #"data: {"event":"message","task_id":"t9","message_id":"m9","conversation_id":"c9","answer":"a"}"# + "\n\n",
                                #"data: {"event":"error","message_id":"m9","conversation_id":"c9","code":"provider_quota_exceeded","status":400,"message":"quota exhausted"}"# + "\n\n"])
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                var early: DifyError?
                var inStream: DifyError?
                do { _ = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u")) } catch let error as DifyError { early = error }
                do { _ = try await client.run(RunRequest(mode: .chat, inputs: [:], user: "u", query: "q")) } catch let error as DifyError { inStream = error }
                return (early, inStream)
            }
        }
        #expect(early?.code == .streamEndedEarly)
        #expect(early?.classification == .ambiguous)
        #expect(early?.runStarted == RunStarted(workflowRunID: "r1", taskID: "t1"))
        #expect(inStream?.code == .inStreamError)
        #expect(inStream?.difyCode == "provider_quota_exceeded")
        #expect(inStream?.classification == .quota)
        #expect(inStream?.runStarted?.messageID == "m9")
    }

    @Test("HTTP errors before the stream: 429 with Retry-After, HTML 502 on a run vs a GET")
    func httpErrorsBeforeStream() async throws {
        let (tooMany, gatewayRun, gatewayGet) = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { _, _ -> Response in
                .json(#"{"code":"too_many_requests","message":"Too many requests. Please try again later.","status":429}"#,
                      status: .tooManyRequests, headers: [.retryAfter: "3"])
            }
            router.post("/v1/completion-messages") { _, _ -> Response in
                Response(status: .badGateway, headers: [.contentType: "text/html"],
                         body: .init(byteBuffer: ByteBuffer(string: "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")))
            }
            router.get("/v1/info") { _, _ -> Response in
                Response(status: .badGateway, headers: [.contentType: "text/html"],
                         body: .init(byteBuffer: ByteBuffer(string: "<html><head><title>502 Bad Gateway</title></head></html>")))
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                var errors: [DifyError] = []
                do { _ = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u")) } catch let error as DifyError { errors.append(error) }
                do { _ = try await client.run(RunRequest(mode: .completion, inputs: [:], user: "u", responseMode: .blocking)) } catch let error as DifyError { errors.append(error) }
                do { _ = try await client.info() } catch let error as DifyError { errors.append(error) }
                return (errors[0], errors[1], errors[2])
            }
        }
        #expect(tooMany.classification == .backpressure)
        #expect(tooMany.retryAfter == .seconds(3))
        #expect(tooMany.endpoint == "POST /workflows/run")
        #expect(gatewayRun.classification == .ambiguous)
        #expect(gatewayRun.difyCode == nil)
        #expect(gatewayRun.message.contains("502 Bad Gateway"))
        #expect(gatewayGet.classification == .retryable)
    }

    @Test("connection refused: the request never left, so even a run is retryable")
    func connectionRefused() async throws {
        // AHC retries refused connects until the head deadline, then reports the connect error; keep that deadline
        // well inside the total so a loaded machine still sees the connect error, not the total deadline.
        let timeouts = DifyClient.Timeouts(connect: .seconds(1), responseHead: .seconds(1), total: .seconds(180))
        try await withDifyClient(baseURL: "http://127.0.0.1:1/v1", timeouts: timeouts) { client in
            do {
                _ = try await client.info()
                Issue.record("expected an error")
            } catch let error as DifyError {
                #expect(error.code == .transport || error.code == .timeout, "\(error)")
                #expect(error.requestSent == false, "\(error)")
                #expect(error.classification == .retryable)
            }
            do {
                _ = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u"))
                Issue.record("expected an error")
            } catch let error as DifyError {
                #expect(error.requestSent == false, "\(error)")
                #expect(error.classification == .retryable, "\(error)")
            }
        }
    }

    @Test("a malformed base URL is a configuration error and nothing is sent")
    func badBaseURL() async throws {
        try await withDifyClient(baseURL: "not a url") { client in
            do {
                _ = try await client.info()
                Issue.record("expected an error")
            } catch let error as DifyError {
                #expect(error.requestSent == false)
                #expect(error.classification == .configuration, "\(error)")
            }
        }
    }

    @Test("cancelling the calling task cancels a streaming run promptly")
    func cancellation() async throws {
        let clock = ContinuousClock()
        let elapsed = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { _, _ -> Response in
                streamResponse([pingChunk, startedChunk] + Array(repeating: pingChunk, count: 600), delay: .milliseconds(100))
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                let start = clock.now
                let outcome = await withTaskGroup(of: String.self) { group in
                    group.addTask {
                        do {
                            _ = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u"))
                            return "finished"
                        } catch let error as DifyError {
                            return error.code == .cancelled ? "cancelled" : "other: \(error)"
                        } catch {
                            return "foreign: \(error)"
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(300))
                    group.cancelAll()
                    return await group.next() ?? "none"
                }
                #expect(outcome == "cancelled")
                return clock.now - start
            }
        }
        #expect(elapsed < .seconds(45), "the stream would run for 60 s (the bound is loose for a loaded machine)")
    }

    @Test("blocking completion and chat requests: body shape, usage, and onStarted before return")
    func blockingMessages() async throws {
        let recorder = Recorder()
        let (completion, chat) = try await TestServer.run({ router in
            router.post("/v1/completion-messages") { request, _ -> Response in
                recorder.add("completion", try await bodyJSON(request).jsonString())
                return .json(#"{"event":"message","task_id":"t1","id":"m1","message_id":"m1","mode":"completion","answer":"Hi","metadata":{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"total_price":"0.0000300","currency":"USD","latency":0.1}},"created_at":1}"#)
            }
            router.post("/v1/chat-messages") { request, _ -> Response in
                recorder.add("chat", try await bodyJSON(request).jsonString())
                return .json(#"{"event":"message","task_id":"t2","id":"m2","message_id":"m2","conversation_id":"c2","mode":"chat","answer":"Yo","metadata":{"usage":{"total_tokens":9,"total_price":0.5}}}"#)
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                let completion = try await client.run(
                    RunRequest(mode: .completion, inputs: ["query": "x"], user: "u", responseMode: .blocking)) { ids in
                        recorder.add("started", ids.messageID ?? "-")
                    }
                let chat = try await client.run(
                    RunRequest(mode: .advancedChat, inputs: [:], user: "u", responseMode: .blocking, query: "hello",
                               workflowID: "wf-7"))
                return (completion, chat)
            }
        }
        #expect(completion.answer == "Hi")
        #expect(completion.outputs == ["answer": "Hi"])
        #expect(completion.usage.totalPrice == Decimal(string: "0.00003"))
        #expect(completion.messageID == "m1")
        #expect(recorder.get("started") == ["m1"])
        #expect(chat.conversationID == "c2")
        #expect(chat.usage.totalPrice == Decimal(string: "0.5"))
        let chatBody = try JSONValue.parse(try #require(recorder.get("chat").first))
        #expect(chatBody == ["inputs": [:], "user": "u", "response_mode": "blocking", "query": "hello",
                             "conversation_id": "", "auto_generate_name": false, "workflow_id": "wf-7"])
        let completionBody = try JSONValue.parse(try #require(recorder.get("completion").first))
        #expect(completionBody == ["inputs": ["query": "x"], "user": "u", "response_mode": "blocking"])
    }

    @Test("run detail, logs query, stop and pinned-version endpoints hit Dify's paths")
    func otherEndpoints() async throws {
        let recorder = Recorder()
        let detailBody = try Captures.http("16_get_workflow_run_detail").body
        let logsBody = try Captures.http("94_workflow_logs").body
        let (detail, logs, pinned) = try await TestServer.run({ router in
            router.get("/v1/workflows/run/:id") { request, context -> Response in
                recorder.add("detail", context.parameters.get("id") ?? "")
                return Response(status: .ok, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(data: detailBody)))
            }
            router.get("/v1/workflows/logs") { request, _ -> Response in
                recorder.add("logs", request.uri.query ?? "")
                return Response(status: .ok, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(data: logsBody)))
            }
            router.post("/v1/workflows/tasks/:task/stop") { request, context -> Response in
                recorder.add("stop", "\(context.parameters.get("task") ?? "") \(try await bodyJSON(request).jsonString())")
                return .json(#"{"result":"success"}"#)
            }
            router.post("/v1/completion-messages/:task/stop") { _, context -> Response in
                recorder.add("stopCompletion", context.parameters.get("task") ?? "")
                return .json(#"{"result":"success"}"#)
            }
            router.post("/v1/workflows/:wf/run") { _, context -> Response in
                recorder.add("pinned", context.parameters.get("wf") ?? "")
                return .json(#"{"task_id":"t","workflow_run_id":"r","data":{"id":"r","workflow_id":"wf","status":"failed","outputs":{},"error":"boom","elapsed_time":0.1,"total_tokens":0,"total_steps":1,"created_at":1,"finished_at":2}}"#)
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                let detail = try await client.workflowRunDetail(id: "000ce553-6a43-4176-bca3-73857b6a47a6")
                let logs = try await client.workflowLogs(WorkflowLogsQuery(keyword: "a&b", status: .failed,
                                                                           endUserSessionID: "job 1", limit: 2))
                try await client.stopWorkflowTask(taskID: "task-1", user: "u")
                try await client.stopCompletionTask(taskID: "task-2", user: "u")
                let pinned = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u",
                                                             responseMode: .blocking, workflowID: "wf-3"))
                return (detail, logs, pinned)
            }
        }
        #expect(detail.status == .succeeded)
        #expect(recorder.get("detail") == ["000ce553-6a43-4176-bca3-73857b6a47a6"])
        #expect(logs.total == 12)
        #expect(recorder.get("logs") == ["keyword=a%26b&status=failed&created_by_end_user_session_id=job%201&page=1&limit=2"])
        #expect(recorder.get("stop") == [#"task-1 {"user":"u"}"#])
        #expect(recorder.get("stopCompletion") == ["task-2"])
        #expect(recorder.get("pinned") == ["wf-3"])
        #expect(pinned.status == .failed, "a failed workflow is returned, not thrown")
        #expect(pinned.error == "boom")
    }

    @Test("the API key never appears in errors or logs, even when the server echoes it")
    func keyNeverLeaks() async throws {
        let key = "app-SUPERSECRET-0123456789abcdef"
        let logs = CapturedLogs()
        let logger = Logger(label: "test") { _ in CapturingLogHandler(sink: logs) }
        let errors: [DifyError] = try await TestServer.run({ router in
            router.get("/v1/info") { request, _ -> Response in
                let auth = request.headers[.authorization] ?? ""
                return .json(#"{"code":"unauthorized","message":"token \#(auth) is invalid","status":401}"#,
                             status: .unauthorized)
            }
            router.post("/v1/workflows/run") { request, _ -> Response in
                let auth = request.headers[.authorization] ?? ""
                return streamResponse([pingChunk, #"data: {"event":"error","code":"invalid_param","status":400,"message":"bad \#(auth)"}"# + "\n\n"])
            }
        }) { baseURL in
            var errors: [DifyError] = []
            try await withDifyClient(baseURL: baseURL, apiKey: key, logger: logger) { client in
                do { _ = try await client.info() } catch let error as DifyError { errors.append(error) }
                do { _ = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u")) } catch let error as DifyError { errors.append(error) }
                #expect(!String(describing: client).contains(key))
            }
            try await withDifyClient(baseURL: "http://127.0.0.1:1/v1", apiKey: key, logger: logger) { client in
                do { _ = try await client.parameters() } catch let error as DifyError { errors.append(error) }
            }
            return errors
        }
        #expect(errors.count == 3)
        for error in errors {
            #expect(!error.message.contains(key))
            #expect(!error.description.contains(key))
            #expect(!String(reflecting: error).contains(key))
        }
        #expect(errors[0].message.contains("app-***"))
        #expect(errors[1].code == .inStreamError)
        #expect(!logs.all.isEmpty, "debug logging should have produced lines")
        #expect(!logs.all.contains { $0.contains(key) })
    }
}
