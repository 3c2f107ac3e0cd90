/// How a JSON text is spelled. Dify uses three spellings (captures README §6):
/// Flask `jsonify` (compact, `\/`, `\uXXXX`), Python `json.dumps` (`", "` separators, `\uXXXX`)
/// and orjson for stream lines (compact raw UTF-8).
public struct JSONStyle: Sendable {
    public var spacedSeparators: Bool
    public var escapeSlash: Bool
    public var asciiOnly: Bool
    /// Flask's `jsonify` ends the body with a newline.
    public var trailingNewline: Bool = false

    /// Errors, uploads, run detail, info, parameters, logs.
    public static let flask = JSONStyle(spacedSeparators: false, escapeSlash: true, asciiOnly: true, trailingNewline: true)
    /// Blocking run bodies and the run-detail `inputs` string.
    public static let python = JSONStyle(spacedSeparators: true, escapeSlash: false, asciiOnly: true)
    /// SSE `data:` lines.
    public static let stream = JSONStyle(spacedSeparators: false, escapeSlash: false, asciiOnly: false)
}

extension JSONValue {
    /// Serializes this value in `style`.
    public func encoded(_ style: JSONStyle = .stream) -> String {
        var out = ""
        out.reserveCapacity(256)
        write(to: &out, style: style)
        return out
    }

    private func write(to out: inout String, style: JSONStyle) {
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .double(d):
            if d.isFinite {
                out += d == d.rounded() && abs(d) < 1e15 ? String(format1: d) : "\(d)"
            } else {
                out += "null"
            }
        case let .string(s): Self.writeString(s, to: &out, style: style)
        case let .array(items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += style.spacedSeparators ? ", " : "," }
                item.write(to: &out, style: style)
            }
            out += "]"
        case let .object(pairs):
            out += "{"
            for (i, (key, value)) in pairs.enumerated() {
                if i > 0 { out += style.spacedSeparators ? ", " : "," }
                Self.writeString(key, to: &out, style: style)
                out += style.spacedSeparators ? ": " : ":"
                value.write(to: &out, style: style)
            }
            out += "}"
        }
    }

    private static let hex: [Character] = Array("0123456789abcdef")

    private static func appendEscape(_ unit: UInt16, to out: inout String) {
        out += "\\u"
        out.append(hex[Int(unit >> 12) & 0xF])
        out.append(hex[Int(unit >> 8) & 0xF])
        out.append(hex[Int(unit >> 4) & 0xF])
        out.append(hex[Int(unit) & 0xF])
    }

    /// Runs of characters that need no escape are appended whole (a copy of bytes), not scalar by scalar: the
    /// simulator spends its CPU here on every SSE line (issue 14's c/L bench runs the simulator on the same two cores).
    private static func writeString(_ s: String, to out: inout String, style: JSONStyle) {
        out += "\""
        let utf8 = s.utf8
        var runStart = utf8.startIndex
        var index = utf8.startIndex
        while index < utf8.endIndex {
            let byte = utf8[index]
            let plain = byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
                && !(style.escapeSlash && byte == UInt8(ascii: "/")) && !(style.asciiOnly && byte > 0x7E)
            if plain {
                index = utf8.index(after: index)
                continue
            }
            out += s[runStart..<index]
            if byte > 0x7E {
                // asciiOnly: every byte before was ASCII, so `index` starts a scalar; it goes as UTF-16 escapes.
                let scalar = s.unicodeScalars[index]
                for unit in String(scalar).utf16 { appendEscape(unit, to: &out) }
                index = s.unicodeScalars.index(after: index)
            } else {
                switch byte {
                case UInt8(ascii: "\""): out += "\\\""
                case UInt8(ascii: "\\"): out += "\\\\"
                case UInt8(ascii: "\n"): out += "\\n"
                case UInt8(ascii: "\r"): out += "\\r"
                case UInt8(ascii: "\t"): out += "\\t"
                case 0x08: out += "\\b"
                case 0x0C: out += "\\f"
                case UInt8(ascii: "/"): out += "\\/"
                default: appendEscape(UInt16(byte), to: &out)
                }
                index = utf8.index(after: index)
            }
            runStart = index
        }
        out += s[runStart..<index]
        out += "\""
    }
}

extension String {
    /// Python-like float spelling for whole numbers (`1.0`).
    fileprivate init(format1 d: Double) {
        self = "\(Int(d)).0"
    }
}

extension JSONValue {
    /// Python `repr()` of the value, as pydantic shows it in `input_value=`.
    var pythonRepr: String {
        switch self {
        case .null: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .double(d): return "\(d)"
        case let .string(s):
            let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
            var out = String(quote)
            for ch in s {
                switch ch {
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case quote: out += "\\\(quote)"
                default: out.append(ch)
                }
            }
            out.append(quote)
            return out
        case let .array(items):
            return "[" + items.map(\.pythonRepr).joined(separator: ", ") + "]"
        case let .object(pairs):
            return "{" + pairs.map { JSONValue.string($0.0).pythonRepr + ": " + $0.1.pythonRepr }.joined(separator: ", ") + "}"
        }
    }

    /// Python type name, as pydantic shows it in `input_type=`.
    var pythonTypeName: String {
        switch self {
        case .null: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .array: return "list"
        case .object: return "dict"
        }
    }

    /// pydantic-core's truncated repr: at most 50 characters, as `first25...last24`.
    var pydanticRepr: String {
        let full = Array(pythonRepr)
        guard full.count > 50 else { return String(full) }
        return String(full[0..<25]) + "..." + String(full[(full.count - 24)...])
    }
}
