import DifyKit
import Foundation
import Testing
@testable import DifyBatch

/// Issue 14: the one-pass outbox encoder writes exactly the bytes `JSONEncoder` wrote before.
@Suite struct OutboxJSONBytesTests {
    @Test func encode_givesTheSameBytesAsJSONEncoder_forSuccessAndFailureDocuments() throws {
        var documents: [JSONValue] = [
            OutboxWriterTests.completionRecord(answer: "plain answer / with a slash").jsonDocument,
            OutboxWriterTests.completionRecord(answer: "```json\n{\"total\": 12, \"lines\": [{\"sku\": \"A/1\", \"qty\": 2}], \"note\": null}\n```").jsonDocument,
            OutboxWriterTests.completionRecord(answer: "{\"nested\": {\"empty\": {}, \"list\": [], \"deep\": [[[]]]}, \"flag\": false}").jsonDocument,
            FailureRecord(status: "dead", job: "invoices", source: OutboxWriterTests.source(), errorCode: "run_failed",
                          errorMessage: "the run ended failed: node \"LLM\" said \"quota\"\n\tline 2", httpStatus: 400,
                          difyCode: "invalid_param", attempts: 3, finishedAt: OutboxWriterTests.finished).jsonDocument,
            FailureRecord(status: "rejected", job: "j", source: SourceInfo(path: "ü/ß.txt", sha256: nil, bytes: 0), errorCode: nil,
                          errorMessage: "", attempts: 0, finishedAt: OutboxWriterTests.finished).jsonDocument,
        ]
        var workflow = OutboxWriterTests.workflowRecord()
        workflow.outputs["ratio"] = nil
        documents.append(workflow.jsonDocument)
        workflow.duplicateOf = "invoices/first.pdf"
        workflow.usage = UsageAmounts(totalTokens: 5)
        documents.append(workflow.jsonDocument)
        var random = SeededRandom(seed: 14)
        for _ in 0..<300 { documents.append(.object(["outputs": Self.randomValue(depth: 0, &random)])) }
        var fastPathUsed = 0
        for document in documents {
            let expected = try OutboxWriter.encodeWithJSONEncoder(document)
            let actual = try OutboxWriter.encode(document)
            #expect(actual == expected, "\(String(decoding: expected, as: UTF8.self))\n≠\n\(String(decoding: actual, as: UTF8.self))")
            if OutboxJSONBytes.encode(document) != nil { fastPathUsed += 1 }
        }
        #expect(fastPathUsed >= documents.count / 2, "most documents take the one-pass path")
    }

    @Test func encode_writesFractionalNumbersAndNonASCIIKeysInOnePass_withJSONEncodersBytes() throws {
        for document: JSONValue in [
            OutboxWriterTests.workflowRecord().jsonDocument,          // "ratio": 0.5
            .object(["é": .string("x"), "e": .int(1), "f": .object([:]), "日本": .array([])]),
            .object(["n": .number(1e20), "m": .number(-0.0), "k": .number(0.1), "big": .number(1.7976931348623157e308)]),
        ] {
            #expect(OutboxJSONBytes.encode(document) != nil)
            #expect(try OutboxWriter.encode(document) == OutboxWriter.encodeWithJSONEncoder(document))
        }
    }

    @Test func encode_leavesNumbersThatAreNotFiniteToJSONEncoder_whichRefusesThem() {
        for number in [Double.nan, .infinity, -.infinity] {
            let document = JSONValue.object(["outputs": .object(["x": .number(number)])])
            #expect(OutboxJSONBytes.encode(document) == nil)
            #expect(throws: EncodingError.self) { try OutboxWriter.encode(document) }
        }
    }

    static let keys = ["a", "B", "_x", "a10", "a9", "Z", "answer", "answer_json", "text", "rows", "x y", "q\"k", "slash/key", "",
                       "é", "e\u{0301}x", "Ä", "\u{212B}", "日本", "😀", "\u{FF45}", "tab\tkey"]
    static let strings = ["", "plain", "a/b/c", "quote \" and \\ backslash", "line\nbreak\ttab\rcr", "\u{01}\u{08}\u{0C}\u{1F}\u{7F}",
                          "unicode ä ß € 😀 \u{2028}", "https://example.com/a?b=c&d=e", "{\"looks\": \"like json\"}", "日本語のテキスト"]

    static func randomValue(depth: Int, _ random: inout SeededRandom) -> JSONValue {
        switch Int(random.next() % (depth > 3 ? 5 : 7)) {
        case 0: return .null
        case 1: return .bool(random.next() % 2 == 0)
        case 2:
            if random.next() % 2 == 0 { return .number(JSONTextNumberTests.randomDouble(&random)) }
            return .int([0, 1, -1, 42, Int64.max, Int64.min, 1_795_763_600_000][Int(random.next() % 7)])
        case 3, 4: return .string(strings[Int(random.next() % UInt64(strings.count))])
        case 5: return .array((0..<Int(random.next() % 4)).map { _ in randomValue(depth: depth + 1, &random) })
        default:
            var object: [String: JSONValue] = [:]
            for _ in 0..<Int(random.next() % 5) { object[keys[Int(random.next() % UInt64(keys.count))]] = randomValue(depth: depth + 1, &random) }
            return .object(object)
        }
    }
}
