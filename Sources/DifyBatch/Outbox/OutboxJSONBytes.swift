import DifyKit

/// The outbox's JSON text written straight to bytes in one pass (issue 14), byte for byte what `JSONEncoder`
/// writes with `[.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]`: DifyKit's ``JSONText`` in its pretty
/// layout. `OutboxJSONBytesTests` compares both over varied documents.
///
/// A value holding a fractional number (`.number`) or a non-ASCII object key returns nil: the caller then uses
/// `JSONEncoder`, whose number formatting and key order for those are not reproduced here.
enum OutboxJSONBytes {
    /// The encoded value (no trailing newline), or nil for a value this encoder leaves to `JSONEncoder`.
    static func encode(_ value: JSONValue) -> [UInt8]? {
        JSONText.bytes(value, pretty: true)
    }
}
