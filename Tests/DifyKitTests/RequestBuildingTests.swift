import Foundation
import Hummingbird
import NIOCore
import Testing

@testable import DifyKit

/// Issue 14, the HTTP side of a document: request bodies, dates and header checks without Foundation's
/// formatters and encoders, and every captured stream read through the client's event-loop delegate.
@Suite struct RequestBuildingTests {
    static func encoderBytes(_ value: JSONValue) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return [UInt8](try encoder.encode(value))
    }

    static let keys = ["a", "B", "_x", "a10", "a9", "Z", "inputs", "user", "response_mode", "files", "x y", "q\"k", "s/k", ""]
    static let strings = ["", "plain", "a/b/c", "quote \" and \\ backslash", "line\nbreak\ttab\rcr", "\u{01}\u{08}\u{0C}\u{1F}\u{7F}",
                          "unicode ä ß € 😀 \u{2028}", "https://example.com/a?b=c&d=e", "日本語"]

    static func randomValue(depth: Int, _ state: inout UInt64) -> JSONValue {
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        switch Int(next() % (depth > 3 ? 5 : 7)) {
        case 0: return .null
        case 1: return .bool(next() % 2 == 0)
        case 2: return .int([0, 1, -1, 42, Int64.max, Int64.min][Int(next() % 6)])
        case 3, 4: return .string(strings[Int(next() % UInt64(strings.count))])
        case 5: return .array((0..<Int(next() % 4)).map { _ in randomValue(depth: depth + 1, &state) })
        default:
            var object: [String: JSONValue] = [:]
            for _ in 0..<Int(next() % 5) { object[keys[Int(next() % UInt64(keys.count))]] = randomValue(depth: depth + 1, &state) }
            return .object(object)
        }
    }

    @Test func jsonBody_givesTheSameBytesAsJSONEncoder_forRunBodiesAndRandomValues() throws {
        var values: [JSONValue] = [
            ["inputs": ["file": ["type": "document", "transfer_method": "local_file", "upload_file_id": "f1"]],
             "user": "oracle-user", "response_mode": "streaming"],
            ["inputs": [:], "query": "Summarise / list", "user": "u", "response_mode": "blocking", "files": [],
             "conversation_id": "", "auto_generate_name": false],
            ["user": "u"], [:], [],
        ]
        var state: UInt64 = 14
        for _ in 0..<300 { values.append(.object(["inputs": Self.randomValue(depth: 0, &state)])) }
        for value in values {
            let expected = try Self.encoderBytes(value)
            #expect(Array(DifyClient.jsonBody(value).readableBytesView) == expected,
                    "\(String(decoding: expected, as: UTF8.self))")
            #expect(JSONText.bytes(value, pretty: false) == expected)
        }
        // Fractional numbers and non-ASCII keys take the one pass too, with JSONEncoder's bytes (issue 14).
        for value: JSONValue in [["ratio": .number(0.5)], ["é": "x", "e": 1, "z": .number(1e20)]] {
            #expect(JSONText.bytes(value, pretty: false) == (try Self.encoderBytes(value)))
            #expect(Array(DifyClient.jsonBody(value).readableBytesView) == (try Self.encoderBytes(value)))
        }
    }

    @Test func serverDate_readsTheDateHeaderWithSpacesAround() {
        #expect(DifyClient.serverDate(["Date": "  Sun, 06 Nov 1994 08:49:37 GMT "]) == Date(timeIntervalSince1970: 784_111_777))
        #expect(DifyClient.serverDate(["Date": "Sun, 06 Nov 1994 08:49:37 GMT"]) == Date(timeIntervalSince1970: 784_111_777))
        #expect(DifyClient.serverDate([:]) == nil)
    }

    @Test func asciiText_comparesMediaTypesCaseInsensitively() {
        #expect(ASCIIText.contains("Text/Event-Stream; charset=utf-8", caseInsensitive: "text/event-stream"))
        #expect(ASCIIText.contains("text/event-stream", caseInsensitive: "text/event-stream"))
        #expect(!ASCIIText.contains("application/json", caseInsensitive: "text/event-stream"))
        #expect(!ASCIIText.contains("text/event", caseInsensitive: "text/event-stream"))
        #expect(ASCIIText.trimmingSpaces(" \ta b\t ") == "a b")
        #expect(ASCIIText.trimmingSpaces("   ") == "")
    }

    @Test func randomBoundary_isThirtyTwoHexDigitsAfterThePrefix_andDiffers() {
        let boundaries = (0..<20).map { _ in MultipartUpload.randomBoundary() }
        for boundary in boundaries {
            #expect(boundary.hasPrefix("DifyKitBoundary"))
            let hex = boundary.dropFirst("DifyKitBoundary".count)
            #expect(hex.count == 32 && hex.allSatisfy { "0123456789abcdef".contains($0) }, "\(boundary)")
        }
        #expect(Set(boundaries).count == boundaries.count)
    }

    /// The delegate parses the stream on the event loop and pauses for `onStarted`: every captured stream, sent
    /// in 7-byte chunks (boundaries inside lines, UTF-8 sequences and CRLF), gives the offline fold's result,
    /// with `onStarted` called once per new set of ids.
    @Test func everyCapturedStream_throughTheClient_givesTheOfflineResult() async throws {
        let captures = try FastStreamDecodingTests.streamCaptures()
        var streams: [(name: String, bytes: [UInt8], expected: String?, starts: Int)] = []
        for capture in captures {
            let bytes = [UInt8](try Captures.data(capture))
            let events = FastStreamDecodingTests.sseEvents(bytes)
            var accumulator = RunAccumulator(mode: .workflow)
            var starts = 0
            var terminal = false
            for event in events.compactMap(DifyStreamEvent.decode) where !terminal {
                let step = accumulator.apply(event)
                if accumulator.takeStartedIfNew() != nil { starts += 1 }
                switch step {
                case .proceed: continue
                case .finished, .failed: terminal = true
                }
            }
            let expected = accumulator.hasResult ? FastStreamDecodingTests.summary(accumulator.result()) : nil
            if !events.isEmpty { streams.append((capture, bytes, expected, starts)) }
        }
        #expect(streams.count >= 10)
        let bytesByName = Dictionary(uniqueKeysWithValues: streams.map { ($0.name, $0.bytes) })
        let current = Recorder()
        let outcomes = try await TestServer.run({ router in
            router.post("/v1/workflows/run") { _, _ -> Response in
                let name = current.get("name").last ?? ""
                let bytes = bytesByName[name] ?? []
                return Response(status: .ok, headers: [.contentType: "text/event-stream"],
                                body: ResponseBody { writer in
                                    for start in stride(from: 0, to: bytes.count, by: 7) {
                                        try await writer.write(ByteBuffer(bytes: bytes[start..<min(start + 7, bytes.count)]))
                                    }
                                    try await writer.finish(nil)
                                })
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                var outcomes: [(String, String, Int)] = []
                for stream in streams {
                    current.add("name", stream.name)
                    let starts = Recorder()
                    var outcome: String
                    do {
                        let result = try await client.run(RunRequest(mode: .workflow, inputs: [:], user: "u")) { _ in
                            starts.bump("n")
                        }
                        outcome = FastStreamDecodingTests.summary(result)
                    } catch let error as DifyError {
                        outcome = "error \(error.code)"
                    }
                    outcomes.append((stream.name, outcome, starts.count("n")))
                }
                return outcomes
            }
        }
        for (stream, outcome) in zip(streams, outcomes) {
            if let expected = stream.expected {
                #expect(outcome.1 == expected, "\(stream.name)")
            } else {
                #expect(outcome.1.hasPrefix("error "), "\(stream.name): \(outcome.1)")
            }
            #expect(outcome.2 == stream.starts, "\(stream.name): onStarted calls")
        }
    }
}

extension RequestBuildingTests {
    /// `.int(1)` and `.number(1.0)` compare equal as JSONValues; this tells them apart (the outbox writes them
    /// differently).
    static func identical(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.number(x), .number(y)): return x == y || (x.isNaN && y.isNaN)
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x.count == y.count && zip(x, y).allSatisfy { identical($0, $1) }
        case let (.object(x), .object(y)):
            return x.count == y.count && x.allSatisfy { key, value in y[key].map { identical(value, $0) } ?? false }
        default: return false
        }
    }

    @Test func responseBodies_parseExactlyAsJSONDecoderDoes_forEveryCapturedJSONBody() throws {
        let root = Captures.directory
        let enumerator = FileManager.default.enumerator(atPath: root.path)
        var parsed = 0
        while let name = enumerator?.nextObject() as? String {
            guard name.hasSuffix(".http"), let capture = try? Captures.http(name),
                  let expected = try? JSONValue.parse(capture.body) else { continue }
            let actual = try DifyClient.parseJSON(ByteBuffer(data: capture.body))
            #expect(Self.identical(actual, expected), "\(name)")
            parsed += 1
        }
        #expect(parsed >= 60, "the captured JSON bodies (uploads, blocking runs, errors, parameters, logs)")
        for text in [#"{"a":1.0,"b":1e2,"c":-0,"d":12345678901234567890,"e":0.1,"f":"\ud83d\ude00\u00e9"}"#, "[]", "true", " 5 "] {
            #expect(Self.identical(try DifyClient.parseJSON(ByteBuffer(string: text)), try JSONValue.parse(text)), "\(text)")
        }
        #expect(throws: (any Error).self) { try DifyClient.parseJSON(ByteBuffer(string: "{\"a\":")) }
    }
}

extension RequestBuildingTests {
    @Test func decimalValue_readsPricesWithAndWithoutSurroundingSpaces() {
        #expect(JSONValue.string("0.0001234").decimalValue == Decimal(string: "0.0001234"))
        #expect(JSONValue.string(" 0.5 ").decimalValue == Decimal(string: "0.5"))
        #expect(JSONValue.string("-1.25").decimalValue == Decimal(string: "-1.25"))
        #expect(JSONValue.number(2.378).decimalValue == Decimal(string: "2.378"))
        #expect(JSONValue.string("  ").decimalValue == nil)
        #expect(JSONValue.string("").decimalValue == nil)
    }
}

extension RequestBuildingTests {
    @Test func sanitizedFilename_keepsPlainNamesAndCleansTheRest() {
        #expect(MultipartUpload.sanitizedFilename("report 2026.pdf") == "report 2026.pdf")
        #expect(MultipartUpload.sanitizedFilename("ä ß.txt") == "ä ß.txt")
        #expect(MultipartUpload.sanitizedFilename(" padded.txt\t") == "padded.txt")
        #expect(MultipartUpload.sanitizedFilename("a\r\n.txt") == "a.txt")
        #expect(MultipartUpload.sanitizedFilename("dir/sub\\name.md") == "name.md")
        #expect(MultipartUpload.sanitizedFilename("") == "file")
        #expect(MultipartUpload.sanitizedFilename("\u{00A0}nbsp.txt") == "nbsp.txt")
    }
}
