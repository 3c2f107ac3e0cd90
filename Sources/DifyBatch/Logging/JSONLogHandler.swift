import Foundation
import Logging

/// One JSON object per line, for log shippers:
/// `{"time":"2026-11-27T07:00:00.123Z","level":"info","label":"dify-batch","message":"succeeded","job":"invoices",...}`.
///
/// Every metadata key is a top-level field (nested dictionaries flattened to dotted keys, arrays kept as arrays of
/// strings). A metadata key equal to `time`, `level`, `label` or `message` is written as `meta.<key>`.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public let label: String
    private let writer: StandardErrorWriter
    private let now: @Sendable () -> Date

    public init(label: String, writer: StandardErrorWriter = .shared, now: @escaping @Sendable () -> Date = { Date() }) {
        self.label = label
        self.writer = writer
        self.now = now
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = LogMetadata.merge(handler: metadata, provider: metadataProvider, event: event.metadata)
        writer.writeLine(Self.format(time: now(), level: event.level, label: label, message: event.message.description, metadata: merged))
    }

    static let reservedKeys: Set<String> = ["time", "level", "label", "message"]

    /// One JSON line (without newline). Keys: time, level, label, message, then metadata sorted by key.
    public static func format(time: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        var fields: [String] = [
            "\"time\":\(jsonString(LogTimestamp.format(time, milliseconds: true)))",
            "\"level\":\(jsonString(level.rawValue))",
            "\"label\":\(jsonString(label))",
            "\"message\":\(jsonString(message))",
        ]
        var flat: [(key: String, json: String)] = []
        func visit(_ key: String, _ value: Logger.Metadata.Value) {
            switch value {
            case .string(let text): flat.append((key, jsonString(text)))
            case .stringConvertible(let convertible): flat.append((key, jsonScalar(convertible)))
            case .array(let values): flat.append((key, "[" + values.map { jsonString($0.description) }.joined(separator: ",") + "]"))
            case .dictionary(let nested): for (inner, value) in nested { visit(key + "." + inner, value) }
            }
        }
        for (key, value) in metadata { visit(reservedKeys.contains(key) ? "meta." + key : key, value) }
        for (key, json) in flat.sorted(by: { $0.key < $1.key }) { fields.append("\(jsonString(key)):\(json)") }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// Numbers and booleans given as `.stringConvertible` stay JSON numbers and booleans; anything else is a string.
    static func jsonScalar(_ value: any CustomStringConvertible & Sendable) -> String {
        switch value {
        case let number as any BinaryInteger: return number.description
        case let number as Double where number.isFinite: return number.description
        case let number as JSONNumber: return number.text
        case let flag as Bool: return flag ? "true" : "false"
        default: return jsonString(value.description)
        }
    }

    /// A JSON string literal (RFC 8259 escaping; non-ASCII kept as UTF-8).
    public static func jsonString(_ text: String) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// The log formats `--log-format` accepts.
public enum LogFormat: String, Sendable, CaseIterable {
    case human, json

    /// A factory for `Logger(label:factory:)` writing this format to standard error.
    public func makeHandler(label: String, level: Logger.Level, writer: StandardErrorWriter = .shared) -> any LogHandler {
        switch self {
        case .human:
            var handler = ConsoleLogHandler(label: label, writer: writer)
            handler.logLevel = level
            return handler
        case .json:
            var handler = JSONLogHandler(label: label, writer: writer)
            handler.logLevel = level
            return handler
        }
    }
}

/// A number already formatted as text (`0.4`, `12.0`), written as a JSON number by ``JSONLogHandler`` when the text
/// is a valid JSON number (else as a string).
public struct JSONNumber: CustomStringConvertible, Sendable {
    public let description: String

    public init(_ text: String) { description = text }

    var text: String {
        let isNumber = !description.isEmpty && Double(description)?.isFinite == true
            && description.allSatisfy { $0.isNumber || "-.eE+".contains($0) }
            && !description.hasPrefix("+") && !description.hasPrefix(".") && !description.hasSuffix(".")
        return isNumber ? description : JSONLogHandler.jsonString(description)
    }
}
