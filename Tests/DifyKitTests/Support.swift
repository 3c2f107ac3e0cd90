import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Testing

@testable import DifyKit

/// Captured exchanges, read from the project's fixture copy.
enum Captures {
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures/dify-captures")

    static func data(_ name: String) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent(name))
    }

    static func names(withSuffix suffix: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(suffix) }
            .sorted()
    }

    struct HTTPCapture: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: Data

        var json: JSONValue { get throws { try JSONValue.parse(body) } }
    }

    /// Parses `NAME.http`: status line, headers, body (skipping interim `100 Continue` blocks).
    static func http(_ name: String) throws -> HTTPCapture {
        let bytes = [UInt8](try data(name.hasSuffix(".http") ? name : name + ".http"))
        var offset = 0
        while true {
            let separator: [UInt8] = Array("\r\n\r\n".utf8)
            guard let end = find(separator, in: bytes, from: offset) else {
                throw LenientTestError("no header terminator in \(name)")
            }
            let head = String(decoding: bytes[offset..<end], as: UTF8.self)
            var lines = head.components(separatedBy: "\r\n")
            let statusLine = lines.removeFirst()
            let status = Int(statusLine.split(separator: " ")[1]) ?? 0
            offset = end + separator.count
            if status == 100 { continue }
            var headers = HTTPHeaders()
            for line in lines {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers.add(name: String(line[..<colon]),
                            value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            return HTTPCapture(status: status, headers: headers, body: Data(bytes[offset...]))
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = start
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0], Array(haystack[index..<index + needle.count]) == needle { return index }
            index += 1
        }
        return nil
    }
}

struct LenientTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A throwaway Hummingbird server on 127.0.0.1 with an ephemeral port.
enum TestServer {
    static func run<T>(
        _ configure: (Router<BasicRequestContext>) -> Void,
        _ body: (_ baseURL: String) async throws -> T
    ) async throws -> T {
        let router = Router()
        configure(router)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "DifyKitTests.server")
        logger.logLevel = .critical
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw LenientTestError("server did not start") }
            do {
                let result = try await body("http://127.0.0.1:\(port)/v1/")
                group.cancelAll()
                return result
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }
}

/// Runs `body` with a fresh HTTPClient that is always shut down.
func withHTTPClient<T>(timeouts: DifyClient.Timeouts = .init(),
                       _ body: (HTTPClient) async throws -> T) async throws -> T {
    let client = DifyClient.makeHTTPClient(timeouts: timeouts)
    do {
        let result = try await body(client)
        try await client.shutdown()
        return result
    } catch {
        try? await client.shutdown()
        throw error
    }
}

func withDifyClient<T>(baseURL: String, apiKey: String = "app-TEST-KEY-0123456789",
                       timeouts: DifyClient.Timeouts = .init(), logger: Logger? = nil,
                       _ body: (DifyClient) async throws -> T) async throws -> T {
    try await withHTTPClient(timeouts: timeouts) { http in
        var configuration = DifyClient.Configuration(baseURL: baseURL, apiKey: apiKey, timeouts: timeouts)
        if let logger { configuration.logger = logger }
        return try await body(DifyClient(configuration: configuration, httpClient: http))
    }
}

/// Collects log lines (all levels) for redaction checks.
final class CapturedLogs: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}

struct CapturingLogHandler: LogHandler {
    let sink: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = self.metadata.merging(event.metadata ?? [:]) { _, new in new }
        sink.append("\(event.level) \(event.message) \(merged) \(event.error.map { "\($0)" } ?? "")")
    }
}

extension Response {
    static func json(_ text: String, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Reads a request body fully (tests only).
func bodyJSON(_ request: Request) async throws -> JSONValue {
    var buffer = ByteBuffer()
    for try await var chunk in request.body { buffer.writeBuffer(&chunk) }
    return try JSONValue.parse(Data(buffer.readableBytesView))
}

func rssKB() -> (rss: Int, hwm: Int) {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
    func value(_ key: String) -> Int {
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
    return (value("VmRSS:"), value("VmHWM:"))
}

/// Runs `request` and returns the DifyError it threw (nil when it succeeded; other errors are rethrown).
func runError(_ client: DifyClient, _ request: RunRequest) async throws -> DifyError? {
    do {
        _ = try await client.run(request)
        return nil
    } catch let error as DifyError { return error }
}
