import Crypto
import Foundation

/// Identifiers in Dify's spelling (lower-case UUIDs).
enum StableID {
    /// A fresh random UUID (version 4, lower case), from the system's generator (getrandom: no file opened per id;
    /// Foundation's `UUID()` opened /dev/urandom for each one).
    static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = withUnsafeBytes(of: (generator.next() as UInt64, generator.next() as UInt64)) { Array($0) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return spelled(bytes)
    }

    /// A UUID-shaped id derived from `seed` (SHA-256), stable across runs.
    static func uuid(_ seed: String) -> String {
        spelled(Array(SHA256.hash(data: Array(seed.utf8)).prefix(16)))
    }

    /// 16 bytes as `8-4-4-4-12` lower-case hex digits.
    private static func spelled(_ bytes: [UInt8]) -> String {
        let digits = hex(bytes.prefix(16))
        var text = digits.utf8.map { $0 }
        for position in [20, 16, 12, 8] { text.insert(UInt8(ascii: "-"), at: position) }
        return String(decoding: text, as: UTF8.self)
    }

    /// Lower-case hex digits of `bytes` (two per byte).
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// 32 random hex digits (the `nonce` of signed URLs).
    static func nonce() -> String { random().replacingOccurrences(of: "-", with: "") }
}

/// SplitMix64: small, fast, seedable; good enough for fault dice.
struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
