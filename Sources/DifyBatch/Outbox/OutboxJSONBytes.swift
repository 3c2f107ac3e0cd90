import DifyKit

/// The outbox's JSON text written straight to bytes in one pass (issue 14), byte for byte what `JSONEncoder`
/// writes with `[.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]`: DifyKit's ``JSONText`` in its pretty
/// layout. `OutboxJSONBytesTests` compares both over varied documents.
///
/// A value holding a number that is not finite returns nil: the caller then uses `JSONEncoder`, which refuses it
/// with its own error.
enum OutboxJSONBytes {
    /// The encoded value (no trailing newline), or nil for a value holding a number that is not finite.
    static func encode(_ value: JSONValue) -> [UInt8]? {
        JSONText.bytes(value, pretty: true)
    }
}
