/// JSON text of a ``JSONValue`` written straight to bytes in one pass (issue 14), byte for byte what `JSONEncoder`
/// writes with `[.sortedKeys, .withoutEscapingSlashes]` (compact: no spaces, `[]`/`{}` when empty) or with
/// `.prettyPrinted` added (two-space indent, `"key" : value`, an empty array or object as `[` `\n\n` `]`). Keys in
/// UTF-8 byte order (as written, not normalized), `/` and non-ASCII characters unescaped, other control characters
/// as `\b \f \n \r \t` or `\u00xx`; a fractional number as Swift's shortest round-trip `description` without a
/// trailing `.0` (`0.5`, `1e+20`, `-0`, `5e-324`).
///
/// A value holding a number that is not finite gives nil: `JSONEncoder` refuses it too (the caller then uses it for
/// its error). Tests compare both over seeded random trees (`OutboxJSONBytesTests` pretty, `RequestBuildingTests`
/// compact) and random doubles (`JSONTextNumberTests`).
public enum JSONText {
    /// The encoded value (no trailing newline), or nil for a value holding a number that is not finite.
    public static func bytes(_ value: JSONValue, pretty: Bool) -> [UInt8]? {
        var writer = Writer(pretty: pretty)
        writer.bytes.reserveCapacity(pretty ? 1024 : 256)
        guard writer.write(value, indent: 0) else { return nil }
        return writer.bytes
    }

    /// An object written member by member, for a document whose keys are known in advance (the outbox's result and
    /// failure documents): no ``JSONValue`` tree, no dictionary, no sort. The caller gives the keys of each object
    /// in UTF-8 byte order (as ``bytes(_:pretty:)`` sorts them); the layout is exactly that of ``bytes(_:pretty:)``.
    public struct ObjectWriter {
        private var writer: Writer
        /// Members written so far in each open object, innermost last.
        private var counts: [Int] = []
        /// False once a value could not be written (a number that is not finite): ``bytes`` is then nil.
        private var valid = true

        public init(pretty: Bool, capacity: Int = 1024) {
            writer = Writer(pretty: pretty)
            writer.bytes.reserveCapacity(capacity)
        }

        /// The text written, or nil when a value could not be written. Every object must be closed.
        public var bytes: [UInt8]? {
            precondition(counts.isEmpty, "an object is still open")
            return valid ? writer.bytes : nil
        }

        /// `{`, as the whole document or as the value of the key just written.
        public mutating func openObject() {
            writer.bytes.append(UInt8(ascii: "{"))
            if writer.pretty { writer.bytes.append(Writer.newline) }
            counts.append(0)
        }

        /// `}` of the innermost open object (`{` `\n\n` `}` when pretty and empty, as ``bytes(_:pretty:)``).
        public mutating func closeObject() {
            counts.removeLast()
            if writer.pretty {
                writer.bytes.append(Writer.newline)
                writer.pad(counts.count * 2)
            }
            writer.bytes.append(UInt8(ascii: "}"))
        }

        /// The next member's key; its value follows.
        public mutating func key(_ key: String) {
            if counts[counts.count - 1] > 0 {
                writer.bytes.append(UInt8(ascii: ","))
                if writer.pretty { writer.bytes.append(Writer.newline) }
            }
            counts[counts.count - 1] += 1
            if writer.pretty { writer.pad(counts.count * 2) }
            writer.writeString(key)
            if writer.pretty {
                writer.bytes.append(contentsOf: " : ".utf8)
            } else {
                writer.bytes.append(UInt8(ascii: ":"))
            }
        }

        public mutating func string(_ text: String) { writer.writeString(text) }

        /// The text, or `null` for nil.
        public mutating func string(_ text: String?) {
            if let text { writer.writeString(text) } else { null() }
        }

        public mutating func int(_ number: Int64) { writer.bytes.append(contentsOf: String(number).utf8) }

        /// The number, or `null` for nil.
        public mutating func int(_ number: Int?) {
            if let number { int(Int64(number)) } else { null() }
        }

        public mutating func null() { writer.bytes.append(contentsOf: "null".utf8) }

        /// Any value, laid out at this depth as ``bytes(_:pretty:)`` lays it out.
        public mutating func value(_ value: JSONValue) {
            if !writer.write(value, indent: counts.count * 2) { valid = false }
        }
    }

    fileprivate struct Writer {
        let pretty: Bool
        var bytes: [UInt8] = []

        init(pretty: Bool) { self.pretty = pretty }

        mutating func write(_ value: JSONValue, indent: Int) -> Bool {
            switch value {
            case .null: bytes.append(contentsOf: "null".utf8)
            case .bool(let flag): bytes.append(contentsOf: (flag ? "true" : "false").utf8)
            case .int(let number): bytes.append(contentsOf: String(number).utf8)
            case .number(let number):
                guard number.isFinite else { return false }
                writeNumber(number)
            case .string(let text): writeString(text)
            case .array(let items):
                return writeContainer(UInt8(ascii: "["), UInt8(ascii: "]"), count: items.count, indent: indent) { index, writer in
                    writer.write(items[index], indent: indent + 2)
                }
            case .object(let members):
                let keys = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
                return writeContainer(UInt8(ascii: "{"), UInt8(ascii: "}"), count: keys.count, indent: indent) { index, writer in
                    writer.writeString(keys[index])
                    if writer.pretty {
                        writer.bytes.append(contentsOf: " : ".utf8)
                    } else {
                        writer.bytes.append(UInt8(ascii: ":"))
                    }
                    return writer.write(members[keys[index]]!, indent: indent + 2)
                }
            }
            return true
        }

        /// `open`, then element 0..<count (written by `element`) separated by `,`, then `close`. Pretty: one element
        /// per line at `indent + 2`, `close` at `indent`, an empty container as `open`, a blank line, `close`.
        mutating func writeContainer(_ open: UInt8, _ close: UInt8, count: Int, indent: Int,
                                     element: (Int, inout Writer) -> Bool) -> Bool {
            bytes.append(open)
            if pretty {
                bytes.append(Self.newline)
                if count == 0 { bytes.append(Self.newline) }
            }
            for index in 0..<count {
                if index > 0 {
                    bytes.append(UInt8(ascii: ","))
                    if pretty { bytes.append(Self.newline) }
                }
                if pretty { pad(indent + 2) }
                guard element(index, &self) else { return false }
            }
            if pretty {
                if count > 0 { bytes.append(Self.newline) }
                pad(indent)
            }
            bytes.append(close)
            return true
        }

        static let newline = UInt8(ascii: "\n")
        static let hex: [UInt8] = Array("0123456789abcdef".utf8)

        /// `JSONEncoder`'s spelling of a finite `Double`: its `description` without a trailing `.0`.
        mutating func writeNumber(_ number: Double) {
            let text = number.description
            if text.utf8.count > 2, text.hasSuffix(".0") {
                bytes.append(contentsOf: text.utf8.dropLast(2))
            } else {
                bytes.append(contentsOf: text.utf8)
            }
        }

        mutating func pad(_ count: Int) {
            for _ in 0..<count { bytes.append(UInt8(ascii: " ")) }
        }

        /// `"text"`: the runs of bytes that need no escape appended whole, each escape between them.
        mutating func writeString(_ text: String) {
            bytes.append(UInt8(ascii: "\""))
            var text = text
            text.withUTF8 { utf8 in
                var runStart = 0
                for index in 0..<utf8.count {
                    let byte = utf8[index]
                    guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                    if runStart < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
                    writeEscape(byte)
                    runStart = index + 1
                }
                if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
            }
            bytes.append(UInt8(ascii: "\""))
        }

        /// `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, or `\u00xx` for the other control characters.
        mutating func writeEscape(_ byte: UInt8) {
            bytes.append(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
            case 0x0A: bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            case 0x08: bytes.append(UInt8(ascii: "b"))
            case 0x0C: bytes.append(UInt8(ascii: "f"))
            default:
                bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          Self.hex[Int(byte >> 4)], Self.hex[Int(byte & 0x0F)]])
            }
        }
    }
}
