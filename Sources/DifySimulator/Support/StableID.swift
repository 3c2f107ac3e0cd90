import Crypto
import Foundation

/// Identifiers in Dify's spelling (lower-case UUIDs).
enum StableID {
    /// A fresh random UUID.
    static func random() -> String { UUID().uuidString.lowercased() }

    /// A UUID-shaped id derived from `seed` (SHA-256), stable across runs.
    static func uuid(_ seed: String) -> String {
        let d = Array(SHA256.hash(data: Array(seed.utf8)))
        let hex = d.prefix(16).map { String(format: "%02x", $0) }.joined()
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-"
            + String(c[20..<32])
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
