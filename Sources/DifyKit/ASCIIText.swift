/// ASCII-only text helpers for protocol tokens (header values, media types), without Foundation or Unicode
/// case mapping (issue 14: `lowercased()` and `trimmingCharacters(in:)` on every response).
enum ASCIIText {
    /// Whether `text` contains `needle` (lowercase ASCII) with ASCII letters compared case-insensitively.
    static func contains(_ text: String, caseInsensitive needle: StaticString) -> Bool {
        let pattern = UnsafeBufferPointer(start: needle.utf8Start, count: needle.utf8CodeUnitCount)
        var text = text
        return text.withUTF8 { bytes in
            guard pattern.count <= bytes.count else { return false }
            if pattern.isEmpty { return true }
            outer: for start in 0...(bytes.count - pattern.count) {
                for offset in 0..<pattern.count where lower(bytes[start + offset]) != pattern[offset] { continue outer }
                return true
            }
            return false
        }
    }

    /// `text` without leading and trailing spaces and tabs.
    static func trimmingSpaces(_ text: String) -> String {
        let utf8 = text.utf8
        guard let first = utf8.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }) else { return "" }
        let last = utf8.lastIndex(where: { $0 != 0x20 && $0 != 0x09 })!
        if first == utf8.startIndex && last == utf8.index(before: utf8.endIndex) { return text }
        return String(text[first...last])
    }

    private static func lower(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }
}
