import Foundation

/// A JSON value that round-trips integers exactly.
///
/// Integers are kept as `.int(Int64)`; only numbers with a fraction or exponent (or outside the
/// Int64 range) become `.number(Double)`. Equality and hashing treat `.int(5)` and `.number(5.0)`
/// as the same value, so callers may build `.number(5)` and still compare equal to decoded data.
public indirect enum JSONValue: Sendable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: JSONValue].self) {
            self = .object(value)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "Not a JSON value")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSONValue: Hashable {
    /// The integral value when this is an exact integer (`.int`, or a `.number` without fraction in Int64 range).
    fileprivate var exactInteger: Int64? {
        switch self {
        case .int(let value): return value
        case .number(let value):
            guard value.isFinite, value.rounded() == value, abs(value) < 9.2e18 else { return nil }
            return Int64(value)
        default: return nil
        }
    }

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a == b
        case (.int, .int), (.int, .number), (.number, .int), (.number, .number):
            if let a = lhs.exactInteger, let b = rhs.exactInteger { return a == b }
            return lhs.doubleValue == rhs.doubleValue
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let value): hasher.combine(1); hasher.combine(value)
        case .int, .number:
            if let integer = exactInteger {
                hasher.combine(2); hasher.combine(integer)
            } else {
                hasher.combine(3); hasher.combine(doubleValue ?? 0)
            }
        case .string(let value): hasher.combine(4); hasher.combine(value)
        case .array(let value): hasher.combine(5); hasher.combine(value)
        case .object(let value): hasher.combine(6); hasher.combine(value)
        }
    }
}

// MARK: - Accessors

extension JSONValue {
    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public subscript(index: Int) -> JSONValue? {
        if case .array(let array) = self, array.indices.contains(index) { return array[index] }
        return nil
    }

    public var isNull: Bool { if case .null = self { return true } else { return false } }

    public var stringValue: String? { if case .string(let value) = self { return value } else { return nil } }
    public var boolValue: Bool? { if case .bool(let value) = self { return value } else { return nil } }
    public var objectValue: [String: JSONValue]? { if case .object(let value) = self { return value } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let value) = self { return value } else { return nil } }

    /// Numeric value as Double (numbers only; use ``lenientDouble`` for numeric strings).
    public var doubleValue: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .number(let value): return value
        default: return nil
        }
    }

    /// Int from an integer, an integral double, or a numeric string.
    public var intValue: Int? {
        switch self {
        case .int(let value): return Int(exactly: value)
        case .number(let value):
            guard value.isFinite, value.rounded() == value else { return nil }
            return Int(exactly: value)
        case .string(let value):
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            if let integer = Int(trimmed) { return integer }
            if let double = Double(trimmed), double.rounded() == double { return Int(exactly: double) }
            return nil
        default: return nil
        }
    }

    /// Int64 view (same rules as ``intValue``).
    public var int64Value: Int64? { intValue.map(Int64.init) }

    /// Double from a number or a numeric string.
    public var lenientDouble: Double? {
        if let value = doubleValue { return value }
        if case .string(let value) = self { return Double(value.trimmingCharacters(in: .whitespaces)) }
        return nil
    }

    private static let posix = Locale(identifier: "en_US_POSIX")
    private static func isASCIIDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// Decimal from a number or a numeric string (prices are strings in current Dify, numbers in old docs).
    public var decimalValue: Decimal? {
        switch self {
        case .int(let value): return Decimal(value)
        case .number(let value):
            // Go through the shortest textual form so 2.378 stays 2.378.
            return Decimal(string: String(value), locale: Self.posix)
        case .string(let value):
            // Dify's prices are plain ASCII decimals ("0.0001234"): trim only when an end is not a digit.
            let plain = value.utf8.first.map(Self.isASCIIDigit) == true && value.utf8.last.map(Self.isASCIIDigit) == true
            let trimmed = plain ? value : value.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { return nil }
            return Decimal(string: trimmed, locale: Self.posix)
        default: return nil
        }
    }

    /// Non-null view: `nil` for `.null`.
    var nonNull: JSONValue? { isNull ? nil : self }
}

// MARK: - Literals

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}

// MARK: - Parsing helpers

extension JSONValue {
    /// Parses JSON bytes.
    public static func parse(_ data: Data) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: data)
    }

    /// Parses a JSON string.
    public static func parse(_ text: String) throws -> JSONValue {
        try parse(Data(text.utf8))
    }

    /// Compact JSON text (keys sorted, for determinism; slashes unescaped): ``JSONText``'s one pass, the bytes
    /// `JSONEncoder` writes with `[.sortedKeys, .withoutEscapingSlashes]` (issue 14); `"null"` for a value holding
    /// a number that is not finite.
    public func jsonString() -> String {
        if let bytes = JSONText.bytes(self, pretty: false) { return String(decoding: bytes, as: UTF8.self) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "null" }
        return String(decoding: data, as: UTF8.self)
    }
}

extension JSONValue: CustomStringConvertible {
    public var description: String { jsonString() }
}
