import DifyKit
import Foundation

/// Decides, before anything is sent, whether a table's header and each of its rows fit the app's input form
/// (`GET /parameters` → `user_input_form`; shape in captures `20_parameters_workflow.http` and
/// `24_parameters_completion.http`). Pure: no I/O but the optional check that a file column's path exists.
public struct RowValidator: Sendable {
    /// The app's input variables.
    public let form: [InputVariable]
    /// `dify.inputs`: values every row gets unless its own cell has one.
    public let defaults: [String: JSONValue]
    /// Whether the app is a chat app: the `query` column (or `dify.query`) is the message.
    public let isChat: Bool
    /// `dify.query` (chat apps: used when a row has no `query` cell).
    public let specQuery: String?
    /// Whether a file column's relative path names a file in the inbox (nil: not checked).
    public let fileExists: (@Sendable (String) -> Bool)?

    public init(form: [InputVariable], defaults: [String: JSONValue] = [:], isChat: Bool = false, specQuery: String? = nil,
                fileExists: (@Sendable (String) -> Bool)? = nil) {
        self.form = form
        self.defaults = defaults
        self.isChat = isChat
        self.specQuery = specQuery
        self.fileExists = fileExists
    }

    /// The header against the form.
    public struct HeaderCheck: Sendable, Equatable {
        /// Columns named for an input variable (and `query` for a chat app), in file order.
        public var matched: [String]
        /// Columns no variable takes: a warning, their cells are not sent.
        public var unknown: [String]
        /// Required variables with no column, no `dify.inputs` value and no default: the file is rejected.
        public var missingRequired: [String]
        /// Chat apps with neither a `query` column nor `dify.query`.
        public var missingQuery: Bool

        /// Why the whole file is rejected, or nil.
        public var rejection: String? {
            var reasons: [String] = []
            if !missingRequired.isEmpty {
                reasons.append("the app requires the input variable(s) \(missingRequired.joined(separator: ", ")) but the header has no such column (and dify.inputs gives none); add the column(s)")
            }
            if missingQuery { reasons.append("a chat app needs a message: add a \"query\" column or set dify.query") }
            return reasons.isEmpty ? nil : reasons.joined(separator: "; ")
        }
    }

    public func checkHeader(_ columns: [String]) -> HeaderCheck {
        let names = Set(form.map(\.variable))
        let present = Set(columns)
        let matched = columns.filter { names.contains($0) || (isChat && $0 == "query") }
        let unknown = columns.filter { !names.contains($0) && !(isChat && $0 == "query") }
        let missing = form.filter { $0.required && !present.contains($0.variable) && defaults[$0.variable] == nil && $0.default == nil }
            .map(\.variable)
        let missingQuery = isChat && !present.contains("query") && (specQuery ?? "").isEmpty
        return HeaderCheck(matched: matched, unknown: unknown, missingRequired: missing, missingQuery: missingQuery)
    }

    /// One row's inputs as they will be sent (typed: numbers as numbers, checkboxes as booleans, JSON objects
    /// parsed), or why the row is rejected. Empty cells are left out (Dify's default applies) unless required.
    public func validate(_ row: RowTable.Row) -> Result<RowPayload, RowRejection> {
        if let problem = row.problem { return .failure(RowRejection(code: "malformed_row", message: problem)) }
        var inputs: [String: JSONValue] = [:]
        var problems: [String] = []
        for variable in form {
            let cell = row.values[variable.variable].flatMap(Self.nonEmpty)
            guard let cell else {
                if variable.required && defaults[variable.variable] == nil && variable.default == nil {
                    problems.append("\(variable.variable) is required but empty")
                }
                continue
            }
            switch convert(cell, for: variable) {
            case .success(let value): inputs[variable.variable] = value
            case .failure(let problem): problems.append(problem.reason)
            }
        }
        var query: String?
        if isChat {
            query = row.values["query"].flatMap(Self.nonEmpty).map(Self.text) ?? specQuery
            if (query ?? "").isEmpty { problems.append("query is empty and dify.query is not set") }
        }
        if !problems.isEmpty {
            return .failure(RowRejection(code: "invalid_row", message: problems.joined(separator: "; ")))
        }
        return .success(RowPayload(inputs: inputs, query: query))
    }

    private static func nonEmpty(_ value: JSONValue) -> JSONValue? {
        switch value {
        case .null: return nil
        case .string(let text) where text.isEmpty: return nil
        default: return value
        }
    }

    /// A cell as text (JSON values other than strings as compact JSON).
    static func text(_ value: JSONValue) -> String {
        if case .string(let text) = value { return text }
        return value.jsonString()
    }

    private func convert(_ cell: JSONValue, for variable: InputVariable) -> Result<JSONValue, CellProblem> {
        let name = variable.variable
        switch variable.kind {
        case .number:
            switch cell {
            case .int, .number: return .success(cell)
            default:
                let text = Self.text(cell).trimmingCharacters(in: .whitespaces)
                if let whole = Int64(text) { return .success(.int(whole)) }
                if let number = Double(text), number.isFinite { return .success(.number(number)) }
                return .failure(CellProblem("\(name) must be a number, got \"\(Self.text(cell).prefix(40))\""))
            }
        case .select:
            let text = Self.text(cell)
            guard variable.options.isEmpty || variable.options.contains(text) else {
                return .failure(CellProblem("\(name) is \"\(text.prefix(40))\", which is not one of its options (\(variable.options.joined(separator: ", ")))"))
            }
            return .success(.string(text))
        case .checkbox:
            if case .bool = cell { return .success(cell) }
            switch Self.text(cell).lowercased() {
            case "true", "1", "yes": return .success(.bool(true))
            case "false", "0", "no": return .success(.bool(false))
            default: return .failure(CellProblem("\(name) must be true or false, got \"\(Self.text(cell).prefix(40))\""))
            }
        case .jsonObject:
            if case .object = cell { return .success(cell) }
            guard let parsed = try? JSONValue.parse(Self.text(cell)), case .object = parsed else {
                return .failure(CellProblem("\(name) must be a JSON object"))
            }
            return .success(parsed)
        case .file, .fileList:
            let references = variable.kind == .fileList ? Self.listItems(cell) : [Self.text(cell)]
            for reference in references {
                if let problem = fileProblem(reference, variable: name) { return .failure(CellProblem(problem)) }
            }
            return .success(variable.kind == .fileList ? .array(references.map(JSONValue.string)) : .string(references[0]))
        default:
            let text = Self.text(cell)
            if let limit = variable.maxLength, limit > 0, text.count > limit {
                return .failure(CellProblem("\(name) is \(text.count) characters, over its max_length of \(limit)"))
            }
            return .success(.string(text))
        }
    }

    /// A file-list cell: a JSON array, or paths/URLs one per line.
    private static func listItems(_ cell: JSONValue) -> [String] {
        if case .array(let items) = cell { return items.map(text) }
        return text(cell).split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    private func fileProblem(_ reference: String, variable: String) -> String? {
        if RowPayload.isRemoteURL(reference) { return nil }
        let parts = reference.split(separator: "/", omittingEmptySubsequences: false)
        if reference.hasPrefix("/") || parts.contains("..") || reference.contains("\0") || reference.contains("://") {
            return "\(variable): \"\(reference.prefix(80))\" is neither a path relative to the inbox nor an http(s) URL"
        }
        if let fileExists, !fileExists(reference) {
            return "\(variable): the file \"\(reference.prefix(80))\" is not in the inbox"
        }
        return nil
    }
}

/// Why one cell cannot be sent.
struct CellProblem: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Why one row is rejected (`invalid_row`, `malformed_row`).
public struct RowRejection: Sendable, Equatable, Error {
    public var code: String
    public var message: String
}

/// What one row sends: its inputs as validated (file variables still hold the path or URL from the cell) and,
/// for a chat app, its message. Stored as the row's `row_inputs` together with the cells as read; its
/// ``sha256`` decides which rows are the same run (issue 13 dedupe).
public struct RowPayload: Sendable, Equatable {
    public var inputs: [String: JSONValue]
    public var query: String?

    public init(inputs: [String: JSONValue], query: String? = nil) {
        self.inputs = inputs
        self.query = query
    }

    /// `{"inputs": {...}, "query": ...}` as compact JSON with sorted keys (query left out when nil).
    public var canonicalJSON: String {
        var object: [String: JSONValue] = ["inputs": .object(inputs)]
        if let query { object["query"] = .string(query) }
        return JSONValue.object(object).jsonString()
    }

    /// sha256 of ``canonicalJSON``'s UTF-8 bytes, lower-case hex.
    public var sha256: String { FileHasher.sha256(bytes: Array(canonicalJSON.utf8)) }

    /// The row's dedupe key: ``sha256`` for a row that names no inbox file; otherwise the sha256 of
    /// `{"files": {path: sha256 of its bytes}, "inputs": ..., "query": ...}` (compact, sorted keys), so a file
    /// replaced under the same path is another run, never `skipped` with the old file's result.
    public func sha256(fileDigests: [String: String]) -> String {
        guard !fileDigests.isEmpty else { return sha256 }
        var object: [String: JSONValue] = ["inputs": .object(inputs), "files": .object(fileDigests.mapValues(JSONValue.string))]
        if let query { object["query"] = .string(query) }
        return FileHasher.sha256(bytes: Array(JSONValue.object(object).jsonString().utf8))
    }

    static func isRemoteURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        return (lower.hasPrefix("http://") || lower.hasPrefix("https://")) && URL(string: text)?.host != nil
    }
}
