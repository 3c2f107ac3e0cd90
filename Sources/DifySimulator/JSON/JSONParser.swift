/// A small strict JSON parser that keeps object key order (RFC 8259; rejects trailing garbage).
struct JSONParser {
    struct Failure: Error {}

    private let bytes: [UInt8]
    private var index = 0
    private var depth = 0

    static func parse(_ bytes: [UInt8]) throws(Failure) -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw Failure() }
        return value
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func expect(_ literal: String) throws(Failure) {
        for b in literal.utf8 {
            guard peek() == b else { throw Failure() }
            index += 1
        }
    }

    private mutating func parseValue() throws(Failure) -> JSONValue {
        guard let c = peek() else { throw Failure() }
        switch c {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default: return try parseNumber()
        }
    }

    private mutating func parseObject() throws(Failure) -> JSONValue {
        depth += 1
        guard depth < 512 else { throw Failure() }
        defer { depth -= 1 }
        index += 1
        var pairs: [(String, JSONValue)] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { index += 1; return .object(pairs) }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw Failure() }
            let key = try parseString()
            skipWhitespace()
            try expect(":")
            skipWhitespace()
            let value = try parseValue()
            if let existing = pairs.firstIndex(where: { $0.0 == key }) {
                pairs[existing].1 = value  // last duplicate wins, like Python's json
            } else {
                pairs.append((key, value))
            }
            skipWhitespace()
            guard let c = peek() else { throw Failure() }
            index += 1
            if c == UInt8(ascii: "}") { return .object(pairs) }
            guard c == UInt8(ascii: ",") else { throw Failure() }
        }
    }

    private mutating func parseArray() throws(Failure) -> JSONValue {
        depth += 1
        guard depth < 512 else { throw Failure() }
        defer { depth -= 1 }
        index += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") { index += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue())
            skipWhitespace()
            guard let c = peek() else { throw Failure() }
            index += 1
            if c == UInt8(ascii: "]") { return .array(items) }
            guard c == UInt8(ascii: ",") else { throw Failure() }
        }
    }

    private mutating func parseHex4() throws(Failure) -> UInt16 {
        guard index + 4 <= bytes.count else { throw Failure() }
        var v: UInt16 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            index += 1
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw Failure()
            }
            v = v << 4 | UInt16(d)
        }
        return v
    }

    private mutating func parseString() throws(Failure) -> String {
        index += 1
        var utf8: [UInt8] = []
        while true {
            guard let c = peek() else { throw Failure() }
            index += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = String(validating: utf8, as: UTF8.self) else { throw Failure() }
                return s
            case UInt8(ascii: "\\"):
                guard let e = peek() else { throw Failure() }
                index += 1
                switch e {
                case UInt8(ascii: "\""): utf8.append(0x22)
                case UInt8(ascii: "\\"): utf8.append(0x5C)
                case UInt8(ascii: "/"): utf8.append(0x2F)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var units = [try parseHex4()]
                    if UTF16.isLeadSurrogate(units[0]), peek() == UInt8(ascii: "\\"),
                        index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u")
                    {
                        index += 2
                        units.append(try parseHex4())
                    }
                    utf8.append(contentsOf: String(decoding: units, as: UTF16.self).utf8)
                default: throw Failure()
                }
            default:
                guard c >= 0x20 else { throw Failure() }
                utf8.append(c)
            }
        }
    }

    private mutating func parseNumber() throws(Failure) -> JSONValue {
        let start = index
        var isInteger = true
        if peek() == UInt8(ascii: "-") { index += 1 }
        var digits = 0
        while let c = peek(), c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { index += 1; digits += 1 }
        guard digits > 0 else { throw Failure() }
        if peek() == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            var frac = 0
            while let c = peek(), c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { index += 1; frac += 1 }
            guard frac > 0 else { throw Failure() }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            var exp = 0
            while let c = peek(), c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { index += 1; exp += 1 }
            guard exp > 0 else { throw Failure() }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if isInteger, let i = Int(text) { return .int(i) }
        guard let d = Double(text) else { throw Failure() }
        return .double(d)
    }
}

extension JSONValue {
    /// Parses a JSON text (UTF-8), keeping object key order; nil if it is not valid JSON.
    public static func parse(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONParser.parse(bytes)
    }

    /// Parses a JSON text, keeping object key order; nil if it is not valid JSON.
    public static func parse(_ text: String) -> JSONValue? {
        parse(Array(text.utf8))
    }
}
