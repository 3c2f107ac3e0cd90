/// An inbox-relative path compared by its bytes.
///
/// Swift's `String` equality is canonical equivalence: `"é"` (NFC, one scalar) equals `"é"` (NFD, `e` + U+0301).
/// A file system compares bytes, so those are two files; every dictionary or set keyed by a path uses this
/// type so both are scanned, processed and recorded. (SQLite compares TEXT by bytes too.)
public struct PathKey: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The path's UTF-8 bytes, exactly as stored.
    public let bytes: [UInt8]

    public init(_ path: String) {
        bytes = Array(path.utf8)
    }

    public init(stringLiteral value: String) {
        self.init(value)
    }

    public var string: String { String(decoding: bytes, as: UTF8.self) }

    public var description: String { string }

    /// Byte order (the order `ls` gives with `LC_ALL=C`).
    public static func < (lhs: PathKey, rhs: PathKey) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}
