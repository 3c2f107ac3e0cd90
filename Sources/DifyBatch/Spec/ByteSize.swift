/// Parses sizes written as `512KB`, `15MB`, `1GB`, `100B` (binary units, as Dify's limits: 1 MB = 1024 × 1024 bytes).
public enum ByteSize {
    /// The number of bytes for `text`, or nil when it is not a size. `KiB`/`MiB`/`GiB` are accepted too.
    public static func parse(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        guard !digits.isEmpty, let value = Double(digits), value >= 0 else { return nil }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).uppercased()
        let multiplier: Double
        switch unit {
        case "", "B": multiplier = 1
        case "KB", "KIB", "K": multiplier = 1_024
        case "MB", "MIB", "M": multiplier = 1_048_576
        case "GB", "GIB", "G": multiplier = 1_073_741_824
        default: return nil
        }
        let bytes = value * multiplier
        guard bytes < 9e18 else { return nil }
        return Int64(bytes.rounded())
    }

    /// `15MB`, `512KB`, `100B`, `1.5MB`.
    public static func format(_ bytes: Int64) -> String {
        let units: [(Int64, String)] = [(1_073_741_824, "GB"), (1_048_576, "MB"), (1_024, "KB")]
        for (size, name) in units where bytes >= size {
            if bytes % size == 0 { return "\(bytes / size)\(name)" }
            return String(format: "%.1f", Double(bytes) / Double(size)) + name
        }
        return "\(bytes)B"
    }
}

import Foundation
