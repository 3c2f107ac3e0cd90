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

    /// Result and failure documents written member by member (no tree) are the bytes `JSONEncoder` writes of their
    /// ``SuccessRecord/jsonDocument`` / ``FailureRecord/jsonDocument`` (issue 14): every app mode, usage present,
    /// partial and absent, ids present and absent, a copy's `duplicate_of`, unicode and control characters in paths
    /// and messages, random outputs with doubles, empty and nested containers.
    @Test func outboxBytes_ofEveryRecord_areJSONEncodersBytesOfItsDocument() throws {
        var random = SeededRandom(seed: 1415)
        let paths = ["a.pdf", "invoices/2026/ü ß/a.pdf", "q\"uote/back\\slash\ttab.txt", "日本/😀.txt", "x/\u{2028}\u{01}.txt"]
        let usages: [UsageAmounts?] = [nil, UsageAmounts(totalTokens: 5),
                                       UsageAmounts(promptTokens: 120, completionTokens: 30, totalTokens: 150,
                                                    totalPrice: Decimal(string: "0.0012890"), currency: "USD", latencyMilliseconds: 900),
                                       UsageAmounts(promptTokens: 0, completionTokens: nil, totalTokens: Int(Int32.max),
                                                    totalPrice: Decimal(string: "12.5"), currency: "RMB", latencyMilliseconds: nil)]
        var checked = 0
        for index in 0..<240 {
            let path = paths[index % paths.count]
            let source = SourceInfo(path: path, sha256: index % 7 == 0 ? nil : "abc\(index)", bytes: Int64(index) * 1_000_003)
            let mode = ["workflow", "completion", "chat", "advanced-chat"][index % 4]
            var outputs: [String: JSONValue] = [:]
            switch index % 5 {
            case 0: outputs = ["answer": .string("```json\n{\"total\": \(index), \"ratio\": 0.\(index), \"list\": [1, 2.5, \"a/b\"]}\n```")]
            case 1: outputs = ["answer": .string("plain / text \(index)")]
            case 2: outputs = [:]
            default: outputs = (Self.randomValue(depth: 0, &random).objectValue ?? [:]).merging(["n": .number(Double(index) / 8)]) { $1 }
            }
            let ids: [String?] = index % 3 == 0 ? [nil, nil, nil, nil] : ["file-\(index)", "run-\(index)", "msg-\(index)", "task-\(index)"]
            let success = SuccessRecord(status: index % 6 == 0 ? "partial-succeeded" : "succeeded", job: "job \(index % 3)", source: source,
                                        appMode: mode, outputs: outputs, usage: usages[index % usages.count],
                                        uploadFileID: ids[0], workflowRunID: ids[1], messageID: ids[2], taskID: ids[3],
                                        attempts: index % 4, elapsedMilliseconds: Int64(index) * 977, finishedAt: OutboxWriterTests.finished,
                                        duplicateOf: index % 4 == 1 ? "first/\(path)" : nil)
            let failure = FailureRecord(status: ["dead", "rejected", "unresolved"][index % 3], job: "j", source: source,
                                        errorCode: index % 2 == 0 ? nil : "run_failed",
                                        errorMessage: "node \"LLM\" said:\n\tquota / \u{1F}\(path)", httpStatus: index % 3 == 0 ? nil : 400 + index,
                                        difyCode: index % 5 == 0 ? nil : "invalid_param", attempts: index % 4, finishedAt: OutboxWriterTests.finished)
            for (bytes, document) in [(success.outboxBytes(), success.jsonDocument), (failure.outboxBytes(), failure.jsonDocument)] {
                let expected = try OutboxWriter.encodeWithJSONEncoder(document)
                let actual = OutboxWriter.document(try #require(bytes))
                #expect(actual == expected, "\(String(decoding: expected, as: UTF8.self))\n≠\n\(String(decoding: actual, as: UTF8.self))")
                checked += 1
            }
        }
        #expect(checked == 480)
        var infinite = OutboxWriterTests.workflowRecord()
        infinite.outputs["x"] = .number(.infinity)
        #expect(infinite.outboxBytes() == nil, "a number JSON cannot hold is left to JSONEncoder, which refuses it")
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
