import DifyKit
import Foundation
import Testing
@testable import DifyBatch

/// Issue 14: `JSONText` spells fractional numbers and orders non-ASCII keys exactly as `JSONEncoder` does, so every
/// outbox document and stored result takes the one pass (before, such values went through `JSONEncoder`).
@Suite struct JSONTextNumberTests {
    static func encoder(pretty: Bool) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// A finite double: a random bit pattern half the time, else one of the spellings that have edges (exponent
    /// thresholds, integral values, negative zero, subnormals, the extremes).
    static func randomDouble(_ random: inout SeededRandom) -> Double {
        if random.next() % 2 == 0 {
            let value = Double(bitPattern: random.next() &* 0x9E37_79B9_7F4A_7C15 ^ random.next())
            return value.isFinite ? value : 0.25
        }
        let edges: [Double] = [0.5, 0.1, -0.0, 0.0, 1, -1, 100, 1e15, 1e16, 1e17, 2.5e15, 9007199254740992, 1e20, 1e21,
                               1e-5, 1e-6, 1e-7, 0.000123, 4.9e-5, 1.0 / 3, -1.25, 12345.678,
                               .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                               Double(Int64.max), Double(Int64.min), 0.1 + 0.2, Double(sign: .plus, exponent: 56, significand: 1.7133)]
        return edges[Int(random.next() % UInt64(edges.count))]
    }

    @Test func bytes_spellDoublesAsJSONEncoderDoes_compactAndPretty() throws {
        var random = SeededRandom(seed: 1414)
        var numbers = (0..<4000).map { _ in Self.randomDouble(&random) }
        numbers += [0.5, -0.0, 1e20, .leastNonzeroMagnitude, 1e-7]
        for pretty in [false, true] {
            for number in numbers {
                let value = JSONValue.array([.number(number), .object(["x": .number(number)])])
                let expected = [UInt8](try Self.encoder(pretty: pretty).encode(value))
                #expect(JSONText.bytes(value, pretty: pretty) == expected,
                        "\(number.bitPattern): \(String(decoding: expected, as: UTF8.self))")
            }
        }
    }

    @Test func bytes_orderNonASCIIKeysAsJSONEncoderDoes_asWrittenNotNormalized() throws {
        // Decomposed and precomposed forms, a compatibility character (U+212B ANGSTROM SIGN), fullwidth, astral.
        let keys = ["e\u{0301}", "f", "d", "\u{212B}", "\u{00C6}", "B", "\u{212B}x", "\u{00C5}y", "a\u{0308}", "\u{00E4}b",
                    "b", "\u{1F600}", "\u{FF45}", "ab", "a", "a\u{0}", "日本", "ﬀ", "Z", "_"]
        var random = SeededRandom(seed: 7)
        for round in 0..<200 {
            var object: [String: JSONValue] = [:]
            for _ in 0..<(round % 7 + 1) { object[keys[Int(random.next() % UInt64(keys.count))]] = .int(Int64(round)) }
            for pretty in [false, true] {
                let expected = [UInt8](try Self.encoder(pretty: pretty).encode(JSONValue.object(object)))
                #expect(JSONText.bytes(.object(object), pretty: pretty) == expected, "\(String(decoding: expected, as: UTF8.self))")
            }
        }
    }

    @Test func jsonString_isJSONEncodersCompactText_andNullForANumberThatIsNotFinite() throws {
        let value: JSONValue = ["ratio": .number(0.25), "é": "a/b", "list": [1, .number(1e21), [:]], "nested": ["x": .null]]
        #expect(value.jsonString() == String(decoding: try Self.encoder(pretty: false).encode(value), as: UTF8.self))
        #expect(JSONValue.object(["x": .number(.nan)]).jsonString() == "null")
    }
}
