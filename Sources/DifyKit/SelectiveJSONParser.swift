import Foundation

/// Which parts of a JSON object to build: everything, or only the listed keys (each with its own selection);
/// values under other keys are skipped at byte level without building strings, numbers or containers.
indirect enum JSONSelection: Sendable {
    case all
    case keys([String: JSONSelection])
}

/// A byte-level JSON reader that builds ``JSONValue`` only for the selected parts of a document.
///
/// Built values equal what `JSONValue.parse` (Foundation's `JSONDecoder`) gives for the same text: integers
/// as `.int(Int64)` when they fit, other numbers as `.number(Double)`, strings with every escape (including
/// surrogate pairs) decoded. Skipped values are checked for balanced structure and string syntax only. Any
/// syntax error makes the whole read fail (`nil`), as a full decode would. Issue 14: the SSE fast path.
struct SelectiveJSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// Parses one JSON value (surrounding whitespace allowed) keeping only `selection`; nil on a syntax error.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, selection: JSONSelection) -> JSONValue? {
        var parser = SelectiveJSONParser(bytes)
        parser.skipWhitespace()
        guard let value = parser.value(selection) else { return nil }
        parser.skipWhitespace()
        return parser.index == bytes.count ? value : nil
    }

    /// The top-level members of a JSON object as (key, byte range of the value), without building any value;
    /// nil when the text is not one well-formed JSON object.
    static func members(_ bytes: UnsafeBufferPointer<UInt8>) -> [(key: String, range: Range<Int>)]? {
        var parser = SelectiveJSONParser(bytes)
        parser.skipWhitespace()
        guard parser.peek == UInt8(ascii: "{") else { return nil }
        parser.index += 1
        var members: [(key: String, range: Range<Int>)] = []
        parser.skipWhitespace()
        if parser.peek == UInt8(ascii: "}") {
            parser.index += 1
        } else {
            while true {
                parser.skipWhitespace()
                guard let key = parser.string() else { return nil }
                parser.skipWhitespace()
                guard parser.consume(UInt8(ascii: ":")) else { return nil }
                parser.skipWhitespace()
                let start = parser.index
                guard parser.skipValue() else { return nil }
                members.append((key, start..<parser.index))
                parser.skipWhitespace()
                if parser.consume(UInt8(ascii: ",")) { continue }
                guard parser.consume(UInt8(ascii: "}")) else { return nil }
                break
            }
        }
        parser.skipWhitespace()
        return parser.index == bytes.count ? members : nil
    }

    // MARK: - Values

    private var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func consume(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func value(_ selection: JSONSelection) -> JSONValue? {
        guard let byte = peek else { return nil }
        switch byte {
        case UInt8(ascii: "{"): return object(selection)
        case UInt8(ascii: "["): return array()
        case UInt8(ascii: "\""): return string().map(JSONValue.string)
        case UInt8(ascii: "t"): return literal("true", .bool(true))
        case UInt8(ascii: "f"): return literal("false", .bool(false))
        case UInt8(ascii: "n"): return literal("null", .null)
        default: return number()
        }
    }

    private mutating func literal(_ text: StaticString, _ value: JSONValue) -> JSONValue? {
        let count = text.utf8CodeUnitCount
        guard index + count <= bytes.count else { return nil }
        let pointer = text.utf8Start
        for offset in 0..<count where bytes[index + offset] != pointer[offset] { return nil }
        index += count
        return value
    }

    private mutating func object(_ selection: JSONSelection) -> JSONValue? {
        index += 1  // {
        var object: [String: JSONValue] = [:]
        skipWhitespace()
        if consume(UInt8(ascii: "}")) { return .object(object) }
        while true {
            skipWhitespace()
            guard let key = string() else { return nil }
            skipWhitespace()
            guard consume(UInt8(ascii: ":")) else { return nil }
            skipWhitespace()
            switch selection {
            case .all:
                guard let member = value(.all) else { return nil }
                object[key] = member
            case .keys(let keys):
                if let inner = keys[key] {
                    guard let member = value(inner) else { return nil }
                    object[key] = member
                } else {
                    guard skipValue() else { return nil }
                }
            }
            skipWhitespace()
            if consume(UInt8(ascii: ",")) { continue }
            guard consume(UInt8(ascii: "}")) else { return nil }
            return .object(object)
        }
    }

    private mutating func array() -> JSONValue? {
        index += 1  // [
        var array: [JSONValue] = []
        skipWhitespace()
        if consume(UInt8(ascii: "]")) { return .array(array) }
        while true {
            skipWhitespace()
            guard let element = value(.all) else { return nil }
            array.append(element)
            skipWhitespace()
            if consume(UInt8(ascii: ",")) { continue }
            guard consume(UInt8(ascii: "]")) else { return nil }
            return .array(array)
        }
    }

    /// Reads a string at the cursor (which must be at `"`), decoding escapes.
    private mutating func string() -> String? {
        guard consume(UInt8(ascii: "\"")) else { return nil }
        let start = index
        // Fast path: no escapes.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { return nil }
            index += 1
        }
        var utf8 = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { return nil }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by an escaped low surrogate.
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                              bytes[index + 1] == UInt8(ascii: "u") else { return nil }
                        index += 2
                        guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        return nil
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { return nil }
                    utf8.append(contentsOf: UTF8.encode(unicode)!)
                default:
                    return nil
                }
            default:
                if byte < 0x20 { return nil }
                utf8.append(byte)
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt32? {
        guard index + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            index += 1
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: return nil
            }
            value = value << 4 | digit
        }
        return value
    }

    /// Reads a number: `.int` when it is an integer literal that fits Int64, else `.number`.
    private mutating func number() -> JSONValue? {
        let start = index
        guard scanNumber() else { return nil }
        let text = UnsafeBufferPointer(rebasing: bytes[start..<index])
        var integral = true
        for byte in text where byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            integral = false
            break
        }
        let string = String(decoding: text, as: UTF8.self)
        if integral, let value = Int64(string) { return .int(value) }
        guard let double = Double(string), double.isFinite else { return nil }
        // JSONDecoder reads an integral value written with a fraction or exponent (`5.0`, `1e2`) as Int64 too.
        if !integral, double.rounded() == double, abs(double) < 9.2e18, let exact = Int64(exactly: double) {
            return .int(exact)
        }
        return .number(double)
    }

    /// Moves past a JSON number (RFC 8259 grammar); false if there is none.
    private mutating func scanNumber() -> Bool {
        func digits() -> Int {
            let start = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                index += 1
            }
            return index - start
        }
        _ = consume(UInt8(ascii: "-"))
        if consume(UInt8(ascii: "0")) {
            // no leading zeros
        } else if digits() == 0 {
            return false
        }
        if consume(UInt8(ascii: ".")), digits() == 0 { return false }
        if consume(UInt8(ascii: "e")) || consume(UInt8(ascii: "E")) {
            if !consume(UInt8(ascii: "+")) { _ = consume(UInt8(ascii: "-")) }
            if digits() == 0 { return false }
        }
        return true
    }

    // MARK: - Skipping

    /// Moves past one value without building it.
    private mutating func skipValue() -> Bool {
        guard let byte = peek else { return false }
        switch byte {
        case UInt8(ascii: "\""): return skipString()
        case UInt8(ascii: "{"), UInt8(ascii: "["): return skipContainer()
        case UInt8(ascii: "t"): return literal("true", .null) != nil
        case UInt8(ascii: "f"): return literal("false", .null) != nil
        case UInt8(ascii: "n"): return literal("null", .null) != nil
        default: return scanNumber()
        }
    }

    private mutating func skipString() -> Bool {
        index += 1  // "
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "\"") { return true }
            if byte == UInt8(ascii: "\\") { index += 1 } else if byte < 0x20 { return false }
        }
        return false
    }

    /// Skips an object or array by bracket depth (strings skipped with their escapes).
    private mutating func skipContainer() -> Bool {
        var stack: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                guard skipString() else { return false }
                continue
            case UInt8(ascii: "{"): stack.append(UInt8(ascii: "}"))
            case UInt8(ascii: "["): stack.append(UInt8(ascii: "]"))
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard stack.popLast() == byte else { return false }
                if stack.isEmpty {
                    index += 1
                    return true
                }
            default: break
            }
            index += 1
        }
        return false
    }
}
