import Foundation

/// Shared formatting for reports: RFC 3339 times, exact prices, stable JSON, plain-text tables.
public enum ReportFormatting {
    /// `2026-11-27T07:00:00Z`.
    public static func timestamp(_ date: Date?) -> String? {
        guard let date else { return nil }
        // Issue 14: by arithmetic (UTCTimestamp), the same text as Foundation's Swift-native style (UTC, `Z`).
        return UTCTimestamp.text(date) ?? date.formatted(Date.ISO8601FormatStyle())
    }

    /// Exact decimal text (`0.0012890` → `0.001289`), nil stays nil.
    public static func price(_ value: Decimal?) -> String? {
        guard var value else { return nil }
        return NSDecimalString(&value, Locale(identifier: "en_US_POSIX"))
    }

    /// Pretty, key-sorted JSON with a trailing newline.
    public static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// Compact, key-sorted JSON on one line with a trailing newline (for JSON Lines streams).
    public static func jsonLine<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
    }

    /// A left-aligned plain-text table; numeric-looking columns are right-aligned.
    public static func table(headers: [String], rows: [[String]]) -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        let numeric = headers.indices.map { index in
            !rows.isEmpty && rows.allSatisfy { row in
                index < row.count && (row[index].isEmpty || row[index] == "-" || row[index].allSatisfy { $0.isNumber || $0 == "." || $0 == "," })
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let padding = String(repeating: " ", count: max(0, widths[index] - cell.count))
                return numeric[index] ? padding + cell : cell + padding
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n") + "\n"
    }
}

/// Usage with Dify's field names, as it appears in every JSON report.
public struct UsageJSON: Codable, Equatable, Sendable {
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var totalTokens: Int?
    /// Exact decimal text.
    public var totalPrice: String?
    public var currency: String?

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
        case totalPrice = "total_price", currency
    }

    public init(promptTokens: Int?, completionTokens: Int?, totalTokens: Int?, totalPrice: String?, currency: String?) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
        self.totalPrice = totalPrice
        self.currency = currency
    }

    public init(_ amounts: UsageAmounts) {
        self.init(promptTokens: amounts.promptTokens, completionTokens: amounts.completionTokens,
                  totalTokens: amounts.totalTokens, totalPrice: ReportFormatting.price(amounts.totalPrice),
                  currency: amounts.currency)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(promptTokens, forKey: .promptTokens)
        try container.encode(completionTokens, forKey: .completionTokens)
        try container.encode(totalTokens, forKey: .totalTokens)
        try container.encode(totalPrice, forKey: .totalPrice)
        try container.encode(currency, forKey: .currency)
    }
}
