import DifyKit
import Foundation

/// What the ledger keeps of one row in `documents.row_inputs` (issue 13): the table's columns, the row's cells as
/// read, and, for a row that passed validation, what it sends (``RowPayload``). A restarted process sends exactly
/// these inputs without reading the table again.
///
/// Stored as `{"columns": [...], "cells": {...}, "inputs": {...}, "query": "..."}` (`inputs` absent for a
/// rejected row, `query` absent unless the app is a chat app).
public struct RowRecord: Sendable, Equatable {
    public var columns: [String]
    public var cells: [String: JSONValue]
    public var payload: RowPayload?

    public init(columns: [String], cells: [String: JSONValue], payload: RowPayload?) {
        self.columns = columns
        self.cells = cells
        self.payload = payload
    }

    public var json: String {
        var object: [String: JSONValue] = ["columns": .array(columns.map(JSONValue.string)), "cells": .object(cells)]
        if let payload {
            object["inputs"] = .object(payload.inputs)
            if let query = payload.query { object["query"] = .string(query) }
        }
        return JSONValue.object(object).jsonString()
    }

    /// Reads a stored record; nil when the text is not one.
    public static func decode(_ text: String) -> RowRecord? {
        guard let object = (try? JSONValue.parse(text))?.objectValue else { return nil }
        let columns = object["columns"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let cells = object["cells"]?.objectValue ?? [:]
        let payload = object["inputs"]?.objectValue.map { RowPayload(inputs: $0, query: object["query"]?.stringValue) }
        return RowRecord(columns: columns, cells: cells, payload: payload)
    }
}
