import Foundation
import Testing

@testable import DifySimulator

@Suite("Building blocks")
struct UnitTests {
    @Test(arguments: [1, 2, 7, 64, 100_000])
    func multipartScanner_findsPartsAtAnyChunkSize(chunkSize: Int) throws {
        let boundary = "XyZ"
        let payload = Array("line one\r\n--XyQ is not a boundary\r\n--Xy".utf8)
        let body = Array(
            ("--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nalice\r\n"
                + "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.txt\"\r\nContent-Type: text/plain\r\n\r\n").utf8)
            + payload + Array("\r\n--XyZ--\r\n".utf8)
        var scanner = try #require(MultipartScanner(contentType: "multipart/form-data; boundary=\"\(boundary)\""))
        var parts: [(MultipartPartHeaders, [UInt8])] = []
        var offset = 0
        while offset < body.count {
            let chunk = Array(body[offset..<min(body.count, offset + chunkSize)])
            try chunk.withUnsafeBytes { raw in
                try scanner.feed(raw) { event in
                    switch event {
                    case let .partStart(h): parts.append((h, []))
                    case let .data(d): parts[parts.count - 1].1 += Array(d)
                    case .partEnd: break
                    }
                }
            }
            offset += chunkSize
        }
        #expect(scanner.isComplete)
        #expect(parts.count == 2)
        #expect(parts[0].0 == MultipartPartHeaders(name: "user", filename: nil, contentType: nil))
        #expect(parts[0].1 == Array("alice".utf8))
        #expect(parts[1].0 == MultipartPartHeaders(name: "file", filename: "a b.txt", contentType: "text/plain"))
        #expect(parts[1].1 == payload)
    }

    @Test func jsonStyles_spellLikeFlaskPythonAndOrjson() {
        let value: JSONValue = .object([("a", "x/ä"), ("b", [1, 2.5, nil, true])])
        #expect(value.encoded(.flask) == #"{"a":"x\/\u00e4","b":[1,2.5,null,true]}"#)
        #expect(value.encoded(.python) == #"{"a": "x/\u00e4", "b": [1, 2.5, null, true]}"#)
        #expect(value.encoded(.stream) == #"{"a":"x/ä","b":[1,2.5,null,true]}"#)
        #expect(JSONValue.parse(value.encoded(.flask)) == value)
        #expect(JSONValue.parse(#"{"s":"\ud83e\udd16"}"#)?["s"] == "🤖")
        #expect(JSONValue.parse("{} x") == nil)
    }

    @Test func jsonStyles_escapeControlsQuotesDelAndAstralCharacters_betweenPlainRuns() {
        let value: JSONValue = .string("a\"b\\c\n\t\u{01}\u{08}\u{0C}\r\u{7F}é🤖/z plain run")
        #expect(value.encoded(.flask) == #""a\"b\\c\n\t\u0001\b\f\r\u007f\u00e9\ud83e\udd16\/z plain run""#)
        #expect(value.encoded(.python) == #""a\"b\\c\n\t\u0001\b\f\r\u007f\u00e9\ud83e\udd16/z plain run""#)
        #expect(value.encoded(.stream) == "\"a\\\"b\\\\c\\n\\t\\u0001\\b\\f\\r\u{7F}é🤖/z plain run\"")
        #expect(JSONValue.string("").encoded(.stream) == #""""#)
        #expect(JSONValue.string("only plain").encoded(.flask) == #""only plain""#)
        for style in [JSONStyle.flask, .python, .stream] {
            #expect(JSONValue.parse(value.encoded(style)) == value)
        }
    }

    @Test func pydanticRepr_truncatesLikePydanticCore() {
        let body: JSONValue = .object([("response_mode", "blocking"), ("user", "oracle-user")])
        #expect(body.pydanticRepr == "{'response_mode': 'blocki..., 'user': 'oracle-user'}")
    }

    @Test func simulatedOutput_definitionsAreExact() {
        let out = SimulatedOutput.workflowOutputs(fileBytes: Array(" a  b\tc\nd".utf8), filename: "f.txt", inputs: ["language": "fr"])
        #expect(out["words"] == 4)
        #expect(out["lines"] == 2)
        #expect(out["bytes"] == 9)
        #expect(out["language"] == "fr")
        #expect(SimulatedOutput.workflowOutputs(fileBytes: [], filename: "e")["lines"] == 0)
        let u = SimulatedOutput.usage(byteCount: 53, wordCount: 10)
        #expect(u.prompt == 32 + 14)
        #expect(u.completion == 16 + 2)
        #expect(u.price == Decimal(string: "0.000164")!)
        #expect(SimulatedOutput.priceString(u.price) == "0.0001640")
        #expect(SimulatedOutput.priceString(Decimal(string: "12.5")!) == "12.5000000")
    }

    @Test func fileTypeDetection_extensionFirstThenMIME() {
        #expect(FileTypes.detect(extension: "pdf", mimeType: "application/octet-stream") == "document")
        #expect(FileTypes.detect(extension: "png", mimeType: "text/plain") == "image")
        #expect(FileTypes.detect(extension: "exe", mimeType: "application/x-msdownload") == "custom")
        #expect(FileTypes.detect(extension: "", mimeType: "text/plain") == "document")
        #expect(FileTypes.detect(extension: "json", mimeType: "application/json") == "custom")
    }
}
