import AsyncHTTPClient
import DifySimulator
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The captured exchanges with a real Dify 1.14.1 (Tests/Fixtures/dify-captures).
enum Captures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/dify-captures")

    struct Exchange {
        var status: Int
        var headers: [String: String]
        var body: String
        var json: JSONValue? { try? TestJSON.parse(body) }
    }

    /// Parses `NAME.http` (last status line + headers, then the body).
    static func http(_ name: String) throws -> Exchange {
        let text = try String(contentsOf: directory.appendingPathComponent("\(name).http"), encoding: .utf8)
        var rest = Substring(text)
        // Skip interim responses such as "100 Continue".
        while rest.hasPrefix("HTTP/1.1 1"), let r = rest.range(of: "\r\n\r\n") { rest = rest[r.upperBound...] }
        let split = rest.range(of: "\r\n\r\n")!
        let head = rest[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = Int(head[0].split(separator: " ")[1])!
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return Exchange(status: status, headers: headers, body: String(rest[split.upperBound...]))
    }

    /// The `event:`/`data:` records of `NAME.sse`.
    static func sse(_ name: String) throws -> [SSERecord] {
        SSERecord.parse(try String(contentsOf: directory.appendingPathComponent("\(name).sse"), encoding: .utf8))
    }

    static func testFile(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: directory.appendingPathComponent("testfiles/\(name)")))
    }
}

/// JSON parsing for tests, via the simulator's ordered JSONValue.
enum TestJSON {
    struct Invalid: Error { let text: String }
    static func parse(_ text: String) throws -> JSONValue {
        guard let v = JSONValue.parse(Array(text.utf8)) else { throw Invalid(text: text) }
        return v
    }
}

/// One SSE record: `event: ping` or a `data:` JSON line.
struct SSERecord: Equatable {
    var isPing: Bool
    var data: JSONValue?

    var event: String? { isPing ? "ping" : data?["event"]?.stringValue }

    static func parse(_ text: String) -> [SSERecord] {
        var records: [SSERecord] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line == "event: ping" {
                records.append(SSERecord(isPing: true, data: nil))
            } else if line.hasPrefix("data: ") {
                records.append(SSERecord(isPing: false, data: JSONValue.parse(Array(line.dropFirst(6).utf8))))
            }
        }
        return records
    }
}

/// Reads SSE records one by one from a streamed response body.
struct SSEStream {
    var status: Int
    var headers: HTTPHeaders
    var iterator: HTTPClientResponse.Body.AsyncIterator
    var buffer: [UInt8] = []
    var finished = false

    /// The next record, or nil at the end of the stream. Throws if the connection breaks mid-body.
    mutating func next() async throws -> SSERecord? {
        while true {
            if let end = buffer.firstRange(of: [0x0A, 0x0A]) {
                let frame = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
                buffer.removeSubrange(..<end.upperBound)
                if let record = SSERecord.parse(frame).first { return record }
                continue
            }
            if finished { return nil }
            guard let chunk = try await iterator.next() else {
                finished = true
                continue
            }
            buffer += Array(chunk.readableBytesView)
        }
    }
}

struct HTTPResult {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: JSONValue? { JSONValue.parse(body) }
    var events: [SSERecord] { SSERecord.parse(text) }
    func header(_ name: String) -> String? { headers.first(name: name) }
}

/// A small HTTP driver over a real socket (AsyncHTTPClient), independent of DifyKit.
final class TestClient: Sendable {
    let http: HTTPClient
    let baseURL: String
    let key: String

    init(baseURL: String, key: String = SimulatedApp.defaultAPIKey) {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        configuration.timeout.connect = .seconds(5)
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.baseURL = baseURL
        self.key = key
    }

    func shutdown() async throws { try await http.shutdown() }

    func send(
        _ method: HTTPMethod, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil, key: String?? = .none,
        timeout: TimeAmount = .seconds(20)
    ) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        let useKey: String? = key ?? self.key
        if let useKey { request.headers.add(name: "Authorization", value: "Bearer \(useKey)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await http.execute(request, timeout: timeout)
        var bytes: [UInt8] = []
        for try await chunk in response.body { bytes += Array(chunk.readableBytesView) }
        return HTTPResult(status: Int(response.status.code), headers: response.headers, body: bytes)
    }

    /// Starts a JSON POST and returns a reader over its SSE records (the body is read as it arrives).
    func openStream(_ path: String, _ json: String, key: String?? = .none) async throws -> SSEStream {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        let useKey: String? = key ?? self.key
        if let useKey { request.headers.add(name: "Authorization", value: "Bearer \(useKey)") }
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await http.execute(request, timeout: .seconds(20))
        return SSEStream(status: Int(response.status.code), headers: response.headers, iterator: response.body.makeAsyncIterator())
    }

    func postJSON(_ path: String, _ json: String, key: String?? = .none) async throws -> HTTPResult {
        try await send(.POST, path, headers: [("Content-Type", "application/json")], body: Array(json.utf8), key: key)
    }

    /// Uploads `bytes` as the `file` part (curl -F style).
    func upload(
        filename: String = "hello.txt", contentType: String? = "text/plain", bytes: [UInt8], user: String? = "test-user",
        key: String?? = .none
    ) async throws -> HTTPResult {
        var parts: [Multipart.Part] = [.init(name: "file", filename: filename, contentType: contentType, body: bytes)]
        if let user { parts.append(.init(name: "user", body: Array(user.utf8))) }
        return try await sendMultipart(parts, key: key)
    }

    func sendMultipart(_ parts: [Multipart.Part], key: String?? = .none) async throws -> HTTPResult {
        let boundary = "------------------------simtest\(UInt32.random(in: 0...UInt32.max))"
        return try await send(
            .POST, "/files/upload", headers: [("Content-Type", "multipart/form-data; boundary=\(boundary)")],
            body: Multipart.encode(parts, boundary: boundary), key: key)
    }

    /// Uploads and returns the file id (expects 201).
    func uploadID(filename: String = "hello.txt", contentType: String = "text/plain", bytes: [UInt8], user: String = "test-user")
        async throws -> String
    {
        let r = try await upload(filename: filename, contentType: contentType, bytes: bytes, user: user)
        try #require(r.status == 201, "upload failed: \(r.status) \(r.text)")
        return try #require(r.json?["id"]?.stringValue)
    }

    /// A workflow run body with the standard `document` input.
    static func runBody(fileID: String, user: String = "test-user", mode: String = "blocking", type: String = "document", extra: String = "")
        -> String
    {
        #"{"inputs":{"document":{"type":"\#(type)","transfer_method":"local_file","upload_file_id":"\#(fileID)"}\#(extra)},"response_mode":"\#(mode)","user":"\#(user)"}"#
    }
}

enum Multipart {
    struct Part {
        var name: String
        var filename: String?
        var contentType: String?
        var body: [UInt8]
    }

    static func encode(_ parts: [Part], boundary: String) -> [UInt8] {
        var out: [UInt8] = []
        for part in parts {
            var head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(part.name)\""
            if let filename = part.filename { head += "; filename=\"\(filename)\"" }
            head += "\r\n"
            if let contentType = part.contentType { head += "Content-Type: \(contentType)\r\n" }
            head += "\r\n"
            out += Array(head.utf8) + part.body + Array("\r\n".utf8)
        }
        out += Array("--\(boundary)--\r\n".utf8)
        return out
    }
}

/// Runs `body` against a fresh simulator and client.
func withSimulator<T: Sendable>(
    _ configuration: SimulatorConfiguration = .init(), key: String = SimulatedApp.defaultAPIKey,
    _ body: @Sendable (DifySimulator, TestClient) async throws -> T
) async throws -> T {
    try await withDifySimulator(configuration) { simulator, baseURL in
        let client = TestClient(baseURL: baseURL, key: key)
        do {
            let result = try await body(simulator, client)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

extension JSONValue {
    /// Keys of an object, sorted.
    var sortedKeys: [String] { keys.sorted() }
}

let helloText: [UInt8] = Array("Hello from the Dify oracle.\nSecond line: äöü €.\n".utf8)
