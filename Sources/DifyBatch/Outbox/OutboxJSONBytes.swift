import DifyKit

/// The outbox's JSON text written straight to bytes in one pass (issue 14), byte for byte what `JSONEncoder`
/// writes with `[.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]` (two-space indent, `"key" : value`,
/// keys in byte order, an empty array or object as `[` `\n\n` `]`, `/` and non-ASCII characters unescaped, other
/// control characters as `\b \f \n \r \t` or `\u00xx`). `OutboxJSONBytesTests` compares both over varied documents.
///
/// A value holding a fractional number (`.number`) or a non-ASCII object key returns nil: the caller then uses
/// `JSONEncoder`, whose number formatting and key order for those are not reproduced here.
enum OutboxJSONBytes {
    /// The encoded value (no trailing newline), or nil for a value this encoder leaves to `JSONEncoder`.
    static func encode(_ value: JSONValue) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(1024)
        guard write(value, indent: 0, into: &bytes) else { return nil }
        return bytes
    }

    private static func write(_ value: JSONValue, indent: Int, into bytes: inout [UInt8]) -> Bool {
        switch value {
        case .null: bytes.append(contentsOf: "null".utf8)
        case .bool(let flag): bytes.append(contentsOf: (flag ? "true" : "false").utf8)
        case .int(let number): bytes.append(contentsOf: String(number).utf8)
        case .number: return false
        case .string(let text): writeString(text, into: &bytes)
        case .array(let items):
            return writeContainer(UInt8(ascii: "["), UInt8(ascii: "]"), count: items.count, indent: indent, into: &bytes) { index, bytes in
                write(items[index], indent: indent + 2, into: &bytes)
            }
        case .object(let members):
            for key in members.keys where !key.utf8.allSatisfy({ $0 < 0x80 }) { return false }
            let keys = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            return writeContainer(UInt8(ascii: "{"), UInt8(ascii: "}"), count: keys.count, indent: indent, into: &bytes) { index, bytes in
                writeString(keys[index], into: &bytes)
                bytes.append(contentsOf: " : ".utf8)
                return write(members[keys[index]]!, indent: indent + 2, into: &bytes)
            }
        }
        return true
    }

    /// `open`, then element 0..<count (written by `element`) one per line at `indent + 2`, separated by `,`, then
    /// `close` at `indent`; an empty container is `open`, a blank line, `close` (JSONEncoder's layout).
    private static func writeContainer(_ open: UInt8, _ close: UInt8, count: Int, indent: Int, into bytes: inout [UInt8],
                                       element: (Int, inout [UInt8]) -> Bool) -> Bool {
        bytes.append(open)
        bytes.append(newline)
        if count == 0 { bytes.append(newline) }
        for index in 0..<count {
            if index > 0 {
                bytes.append(UInt8(ascii: ","))
                bytes.append(newline)
            }
            pad(indent + 2, &bytes)
            guard element(index, &bytes) else { return false }
        }
        if count > 0 { bytes.append(newline) }
        pad(indent, &bytes)
        bytes.append(close)
        return true
    }

    private static let newline = UInt8(ascii: "\n")
    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private static func pad(_ count: Int, _ bytes: inout [UInt8]) {
        for _ in 0..<count { bytes.append(UInt8(ascii: " ")) }
    }

    private static func writeString(_ text: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0..<0x20:
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
