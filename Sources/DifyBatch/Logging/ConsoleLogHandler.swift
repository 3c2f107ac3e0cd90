import Foundation
import Logging

/// The human log format: `2026-11-27T07:00:00Z info job=invoices path=a.pdf document=12 message`.
///
/// `job`, `path` and `document` come first (in that order), then the message, then any other metadata as
/// `key=value`. Values containing spaces, quotes or `=` are quoted. Control characters (a file name's CR or
/// ESC, say) never reach the terminal raw: newline, CR and tab print as `\n`, `\r`, `\t`, the others as `\xNN`.
public struct ConsoleLogHandler: LogHandler {
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
        writer.writeLine(Self.format(time: now(), level: event.level, message: event.message.description, metadata: merged))
    }

    /// Keys printed before the message, in this order.
    public static let leadingKeys = ["job", "path", "document"]

    /// One formatted line (without newline).
    public static func format(time: Date, level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        var parts = [LogTimestamp.format(time), level.rawValue]
        let flat = LogMetadata.flatten(metadata)
        for key in leadingKeys {
            if let value = flat.first(where: { $0.key == key })?.value { parts.append("\(key)=\(quoted(value))") }
        }
        parts.append(message)
        for (key, value) in flat where !leadingKeys.contains(key) {
            parts.append("\(key)=\(quoted(value))")
        }
        return escapingControlCharacters(parts.joined(separator: " "))
    }

    /// C0 controls, DEL and C1 controls escaped; everything else unchanged.
    static func escapingControlCharacters(_ line: String) -> String {
        guard line.unicodeScalars.contains(where: isControl) else { return line }
        var out = String.UnicodeScalarView()
        for scalar in line.unicodeScalars {
            guard isControl(scalar) else { out.append(scalar); continue }
            let escape: String
            switch scalar {
            case "\n": escape = "\\n"
            case "\r": escape = "\\r"
            case "\t": escape = "\\t"
            default: escape = "\\x" + String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 2)
            }
            out.append(contentsOf: escape.unicodeScalars)
        }
        return String(out)
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    static func quoted(_ value: String) -> String {
        if value.isEmpty { return "\"\"" }
        guard value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\t" || $0 == "\n" }) else { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\t", with: "\\t")
        return "\"\(escaped)\""
    }
}

/// Merging and flattening of swift-log metadata, shared by the handlers.
public enum LogMetadata {
    /// Handler metadata, then the provider's, then the call's (later wins).
    public static func merge(handler: Logger.Metadata, provider: Logger.MetadataProvider?, event: Logger.Metadata?) -> Logger.Metadata {
        var merged = handler
        if let provided = provider?.get() { merged.merge(provided) { _, new in new } }
        if let event { merged.merge(event) { _, new in new } }
        return merged
    }

    /// Flattens nested dictionaries to dotted keys (`a.b`); arrays become `[x,y]`. Sorted by key.
    public static func flatten(_ metadata: Logger.Metadata) -> [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        func visit(_ prefix: String, _ value: Logger.Metadata.Value) {
            switch value {
            case .string(let text): result.append((prefix, text))
            case .stringConvertible(let convertible): result.append((prefix, convertible.description))
            case .array(let values): result.append((prefix, "[" + values.map(\.description).joined(separator: ",") + "]"))
            case .dictionary(let nested):
                for (key, inner) in nested { visit(prefix + "." + key, inner) }
            }
        }
        for (key, value) in metadata { visit(key, value) }
        return result.sorted { $0.key < $1.key }
    }
}
