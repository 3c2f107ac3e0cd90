import CSV
import DifyKit
import Foundation

/// The outbox files of one table (issue 13), rendered from its rows once they have all ended. Pure.
///
/// - `<path>.jsonl`: one line per data row in input order,
///   `{"row": n, "status", "inputs", "outputs", "usage", "dify": {...}, "error": {...}|null}` in that key order
///   (`inputs` are the row's cells as read; `outputs`, `usage` null when the row did not run).
/// - `<path>.csv` (RFC 4180, `\r\n`, written with CSV.swift's writer): the table's columns, then one column per
///   output key (sorted; values that are not text as compact JSON), then `status` and `error`.
public struct RowsOutput: Sendable, Equatable {
    /// One row's outcome.
    public struct Line: Sendable, Equatable {
        public var row: Int
        public var status: String
        public var cells: [String: JSONValue]
        public var outputs: [String: JSONValue]?
        public var usage: JSONValue?
        public var dify: [String: JSONValue]
        public var error: RecordedError?

        public init(row: Int, status: String, cells: [String: JSONValue], outputs: [String: JSONValue]? = nil,
                    usage: JSONValue? = nil, dify: [String: JSONValue] = [:], error: RecordedError? = nil) {
            self.row = row
            self.status = status
            self.cells = cells
            self.outputs = outputs
            self.usage = usage
            self.dify = dify
            self.error = error
        }
    }

    public var columns: [String]
    public let lines: [Line]

    public init(columns: [String], lines: [Line]) {
        self.columns = columns
        // As in a file's outbox document: an answer that holds JSON is also given as `answer_json`.
        self.lines = lines.sorted { $0.row < $1.row }.map { line in
            var line = line
            line.outputs = line.outputs.map(AnswerJSON.addingAnswerJSON)
            return line
        }
    }

    public func jsonl() -> Data {
        var text = ""
        for line in lines {
            let error: JSONValue = line.error.map { error in
                .object(["code": error.code.map(JSONValue.string) ?? .null, "message": .string(error.message)])
            } ?? .null
            let parts: [(String, JSONValue)] = [
                ("row", .int(Int64(line.row))), ("status", .string(line.status)), ("inputs", .object(line.cells)),
                ("outputs", line.outputs.map(JSONValue.object) ?? .null), ("usage", line.usage ?? .null),
                ("dify", .object(line.dify)), ("error", error),
            ]
            text += "{" + parts.map { "\(JSONValue.string($0.0).jsonString()):\($0.1.jsonString())" }.joined(separator: ",") + "}\n"
        }
        return Data(text.utf8)
    }

    /// Output keys over all rows, sorted.
    public var outputKeys: [String] {
        Array(Set(lines.flatMap { $0.outputs?.keys.map { $0 } ?? [] })).sorted()
    }

    public func csv() throws -> Data {
        let stream = OutputStream(toMemory: ())
        let writer = try CSVWriter(stream: stream, delimiter: ",", newline: .crlf)
        let keys = outputKeys
        try writer.write(row: columns + keys.map { columns.contains($0) ? "output." + $0 : $0 } + ["status", "error"])
        for line in lines {
            var fields = columns.map { line.cells[$0].map(Self.cell) ?? "" }
            fields += keys.map { key in line.outputs?[key].map(Self.cell) ?? "" }
            fields += [line.status, line.error?.message ?? ""]
            try writer.write(row: fields)
        }
        stream.close()
        var data = stream.property(forKey: .dataWrittenToMemoryStreamKey) as? Data ?? Data()
        data.append(contentsOf: Array("\r\n".utf8))
        return data
    }

    /// Text as is, null as empty, anything else as compact JSON.
    static func cell(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): return text
        case .null: return ""
        default: return value.jsonString()
        }
    }
}
