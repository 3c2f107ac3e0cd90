import CSV
import DifyKit
import Foundation

/// One table file of a `rows: true` job, read whole: its header and its data rows (issue 13).
///
/// CSV (RFC 4180: quoted fields with embedded delimiters, newlines and doubled quotes, `\r\n` or `\n` line ends,
/// an optional UTF-8 byte order mark) and TSV are read with yaslab/CSV.swift; JSONL/NDJSON (one JSON object per
/// line) with Foundation. Only UTF-8 is accepted. Blank lines are not rows. XLSX is not read (no XLSX library
/// is available to the build).
public struct RowTable: Sendable, Equatable {
    public enum Format: String, Sendable, Equatable, CaseIterable {
        case csv, tsv, jsonl
    }

    /// One data row.
    public struct Row: Sendable, Equatable {
        /// 1-based among the data rows (the header and blank lines are not counted).
        public var index: Int
        /// Column → value as read: strings for CSV/TSV (a missing trailing field is absent), any JSON for JSONL.
        public var values: [String: JSONValue]
        /// Why the row cannot be used as it stands (wrong number of fields, a line that is not a JSON object);
        /// nil when it was read.
        public var problem: String?

        public init(index: Int, values: [String: JSONValue], problem: String? = nil) {
            self.index = index
            self.values = values
            self.problem = problem
        }
    }

    public var format: Format
    /// The header's column names in file order (JSONL: keys in order of first appearance, sorted within a line).
    public var columns: [String]
    public var rows: [Row]

    public init(format: Format, columns: [String], rows: [Row]) {
        self.format = format
        self.columns = columns
        self.rows = rows
    }

    /// The table format a file name's extension selects (`.csv`, `.tsv`, `.jsonl`, `.ndjson`; case-insensitive).
    public static func format(forPath path: String) -> Format? {
        switch (path as NSString).pathExtension.lowercased() {
        case "csv": return .csv
        case "tsv", "tab": return .tsv
        case "jsonl", "ndjson": return .jsonl
        default: return nil
        }
    }

    /// Reads a table from the file's bytes.
    /// - Throws: ``RowTableError`` when the file as a whole cannot be read: not UTF-8 (`encoding_not_utf8`), no
    ///   header (`no_header`), an unnamed or repeated column (`bad_header`), a quoted field never closed
    ///   (`unterminated_quote`). A bad single row is not an error: it comes back with its ``Row/problem``.
    public static func parse(_ data: Data, format: Format) throws(RowTableError) -> RowTable {
        var text = try decodeUTF8(data)
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        switch format {
        case .csv: return try parseDelimited(text, delimiter: ",", format: format)
        case .tsv: return try parseDelimited(text, delimiter: "\t", format: format)
        case .jsonl: return try parseLines(text)
        }
    }

    /// The bytes as UTF-8 text, or an error naming the encoding problem and the first bad byte's offset.
    static func decodeUTF8(_ data: Data) throws(RowTableError) -> String {
        let bytes = [UInt8](data)
        if bytes.starts(with: [0xFF, 0xFE]) || bytes.starts(with: [0xFE, 0xFF]) {
            throw RowTableError("encoding_not_utf8", "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8 (in Excel: \"CSV UTF-8\")")
        }
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return String(decoding: bytes, as: UTF8.self)
            case .error(let length):
                throw RowTableError("encoding_not_utf8", "the file is not valid UTF-8 (byte 0x\(String(bytes[offset], radix: 16, uppercase: true)) at offset \(offset), \(length) byte(s)); save it as UTF-8 (in Excel: \"CSV UTF-8\"), other encodings are not read")
            }
        }
    }

    private static func parseDelimited(_ text: String, delimiter: UnicodeScalar, format: Format) throws(RowTableError) -> RowTable {
        // RFC 4180 quotes come in pairs (open, close, and "" for a quote inside): an odd count means a quoted field
        // runs to the end of the file, which the reader would silently accept as one huge field.
        if text.unicodeScalars.lazy.filter({ $0 == "\"" }).count % 2 != 0 {
            throw RowTableError("unterminated_quote", "a quoted field is never closed (the file has an odd number of \" characters); close the quote or double a quote inside a field (\"\")")
        }
        let reader: CSVReader
        do {
            reader = try CSVReader(string: text, hasHeaderRow: false, trimFields: false, delimiter: delimiter)
        } catch {
            throw RowTableError("unreadable_table", "the \(format.rawValue.uppercased()) file cannot be read: \(error)")
        }
        var header: [String]?
        var rows: [Row] = []
        while let fields = reader.next() {
            if fields.allSatisfy(\.isEmpty) { continue }
            guard let columns = header else {
                header = try checkedHeader(fields.map { $0.trimmingCharacters(in: .whitespaces) })
                continue
            }
            var values: [String: JSONValue] = [:]
            for (column, field) in zip(columns, fields) { values[column] = .string(field) }
            var problem: String?
            if fields.count != columns.count {
                problem = "the row has \(fields.count) field(s) but the header has \(columns.count) column(s); quote fields that contain \(delimiter == "," ? "commas" : "tabs") or line breaks"
            }
            rows.append(Row(index: rows.count + 1, values: values, problem: problem))
        }
        if let error = reader.error {
            throw RowTableError("unreadable_table", "the \(format.rawValue.uppercased()) file cannot be read: \(error)")
        }
        guard let columns = header else {
            throw RowTableError("no_header", "the file has no header row; its first line must name the app's input variables")
        }
        return RowTable(format: format, columns: columns, rows: rows)
    }

    private static func checkedHeader(_ names: [String]) throws(RowTableError) -> [String] {
        var seen: Set<String> = []
        for (position, name) in names.enumerated() {
            if name.isEmpty {
                throw RowTableError("bad_header", "column \(position + 1) of the header has no name; name it after the app's input variable or remove it")
            }
            if !seen.insert(name).inserted {
                throw RowTableError("bad_header", "the header names the column \"\(name)\" twice; each input variable is one column")
            }
        }
        return names
    }

    private static func parseLines(_ text: String) throws(RowTableError) -> RowTable {
        var columns: [String] = []
        var known: Set<String> = []
        var rows: [Row] = []
        var lineNumber = 0
        // "\r\n" is one Character in Swift: both line ends are separators.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            let trimmed = line
            if trimmed.allSatisfy(\.isWhitespace) { continue }
            let index = rows.count + 1
            guard let parsed = try? JSONValue.parse(String(trimmed)), case .object(let object) = parsed else {
                rows.append(Row(index: index, values: [:], problem: "line \(lineNumber) is not a JSON object; each line must be one object like {\"variable\": \"value\"}"))
                continue
            }
            for key in object.keys.sorted() where known.insert(key).inserted { columns.append(key) }
            rows.append(Row(index: index, values: object))
        }
        return RowTable(format: .jsonl, columns: columns, rows: rows)
    }
}

/// Why a table file cannot be read at all: the file is `rejected` with this code and message.
public struct RowTableError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `encoding_not_utf8`, `no_header`, `bad_header`, `unterminated_quote`, `unreadable_table`.
    public var code: String
    public var message: String

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
