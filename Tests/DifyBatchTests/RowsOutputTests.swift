import DifyBatch
import DifyKit
import Foundation
import Testing

/// Issue 13: the bytes of a table's outbox files.
@Suite struct RowsOutputTests {
    @Test func jsonlAndCSV_inInputOrder_withOutputsStatusAndError() throws {
        let output = RowsOutput(columns: ["text", "tone"], lines: [
            RowsOutput.Line(row: 2, status: "rejected", cells: ["text": .string(""), "tone": .string("x")],
                            error: RecordedError(errorClass: "rejected", code: "invalid_row", message: "row 2: text is required but empty")),
            RowsOutput.Line(row: 1, status: "succeeded", cells: ["text": .string("a \"b\"\nc"), "tone": .string("calm")],
                            outputs: ["answer": .string("ok, fine"), "meta": .object(["n": .int(1)])],
                            usage: .object(["total_tokens": .int(5)]), dify: ["message_id": .string("m1")]),
        ])
        let jsonl = String(decoding: output.jsonl(), as: UTF8.self)
        #expect(jsonl == """
            {"row":1,"status":"succeeded","inputs":{"text":"a \\"b\\"\\nc","tone":"calm"},"outputs":{"answer":"ok, fine","meta":{"n":1}},"usage":{"total_tokens":5},"dify":{"message_id":"m1"},"error":null}
            {"row":2,"status":"rejected","inputs":{"text":"","tone":"x"},"outputs":null,"usage":null,"dify":{},"error":{"code":"invalid_row","message":"row 2: text is required but empty"}}

            """)
        let csv = String(decoding: try output.csv(), as: UTF8.self)
        #expect(csv == "text,tone,answer,meta,status,error\r\n"
            + "\"a \"\"b\"\"\nc\",calm,\"ok, fine\",\"{\"\"n\"\":1}\",succeeded,\r\n"
            + ",x,,,rejected,row 2: text is required but empty\r\n")
        // What we write, the reader reads back.
        let back = try RowTable.parse(try output.csv(), format: .csv)
        #expect(back.rows.first?.values["text"] == .string("a \"b\"\nc"))
        #expect(back.rows.first?.values["meta"] == .string("{\"n\":1}"))
    }

    @Test func anAnswerThatIsJSON_isAlsoGivenAsAnswerJSON_asForFiles() throws {
        let output = RowsOutput(columns: ["text"], lines: [
            RowsOutput.Line(row: 1, status: "succeeded", cells: ["text": .string("a")], outputs: ["answer": .string("{\"score\": 3}")]),
        ])
        let line = try #require(String(decoding: output.jsonl(), as: UTF8.self).split(separator: "\n").first)
        #expect(line.contains(#""answer_json":{"score":3}"#), "\(line)")
        #expect(String(decoding: try output.csv(), as: UTF8.self).hasPrefix("text,answer,answer_json,status,error\r\n"))
    }

    @Test func anOutputKeyNamedLikeAnInputColumn_isPrefixed() throws {
        let output = RowsOutput(columns: ["text"], lines: [RowsOutput.Line(row: 1, status: "succeeded", cells: ["text": .string("a")], outputs: ["text": .string("b")])])
        #expect(String(decoding: try output.csv(), as: UTF8.self) == "text,output.text,status,error\r\na,b,succeeded,\r\n")
    }
}
