import Foundation

/// Exact conversions between Dify's decimal prices and the integer nano-units the ledger sums.
public enum PriceNanos {
    static let scale = Decimal(sign: .plus, exponent: 9, significand: 1)

    /// `price × 10^9` as an integer; throws when the price has more than nine decimals or is out of range.
    static func nanos(_ price: Decimal) throws -> Int64 {
        var scaled = price * scale
        var rounded = Decimal()
        NSDecimalRound(&rounded, &scaled, 0, .plain)
        guard rounded == scaled, let value = Int64(exactly: NSDecimalNumber(decimal: rounded).int64Value),
              Decimal(value) == rounded else {
            throw LedgerError(.invalidValue, "price \(price) has more than nine decimals or is out of range")
        }
        return value
    }

    /// The decimal for a nano-unit sum.
    static func decimal(_ nanos: Int64?) -> Decimal? {
        guard let nanos else { return nil }
        return Decimal(nanos) / scale
    }

    /// Plain decimal text without exponent (`0.001289`).
    static func text(_ price: Decimal) -> String {
        var value = price
        return NSDecimalString(&value, Locale(identifier: "en_US_POSIX"))
    }
}
