#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The naming rules shared by ``InboxScanner`` and ``InboxWatcher``.
public enum InboxNames {
    /// Suffixes of files that are still being downloaded or written.
    public static let partialSuffixes = [".part", ".tmp", ".crdownload"]

    /// Dotfiles and dot-folders are never taken.
    public static func isHidden(_ name: String) -> Bool {
        name.utf8.first == UInt8(ascii: ".")
    }

    /// `*.part`, `*.tmp`, `*.crdownload` (downloads in progress) and `~$*` (Office lock files).
    public static func isPartial(_ name: String) -> Bool {
        if name.hasPrefix("~$") { return true }
        for suffix in partialSuffixes where name.hasSuffix(suffix) { return true }
        return false
    }

    /// A name the scanner skips whatever the include/exclude patterns say.
    public static func isIgnored(_ name: String) -> Bool {
        isHidden(name) || isPartial(name)
    }

    /// `fnmatch(3)` with no flags: `*` and `?` also match `/`, `[...]` classes, `\` escapes. Case-sensitive.
    public static func glob(_ pattern: String, matches string: String) -> Bool {
        fnmatch(pattern, string, 0) == 0
    }

    /// ``glob(_:matches:)`` with the extension of the last path component (pattern and string) compared
    /// without regard to case: `*.pdf` matches `SCAN_0001.PDF`, `*.PDF` matches `a.pdf`.
    public static func globIgnoringExtensionCase(_ pattern: String, matches string: String) -> Bool {
        if fnmatch(pattern, string, 0) == 0 { return true }
        let lowerPattern = lowercasingExtension(pattern), lowerString = lowercasingExtension(string)
        guard lowerPattern != pattern || lowerString != string else { return false }
        return fnmatch(lowerPattern, lowerString, 0) == 0
    }

    /// `dir/Name.PDF` → `dir/Name.pdf` (a leading dot of the name is not an extension).
    static func lowercasingExtension(_ text: String) -> String {
        let nameStart = text.lastIndex(of: "/").map { text.index(after: $0) } ?? text.startIndex
        guard let dot = text[nameStart...].lastIndex(of: "."), dot != nameStart else { return text }
        return String(text[..<dot]) + text[dot...].lowercased()
    }

    /// Byte-wise (UTF-8) order, the order `ls` gives with `LC_ALL=C`; much faster than `<` on non-ASCII names.
    public static func bytewiseLess(_ lhs: String, _ rhs: String) -> Bool {
        var lhs = lhs, rhs = rhs
        return lhs.withUTF8 { a in
            rhs.withUTF8 { b in
                let common = min(a.count, b.count)
                if common > 0 {
                    let order = memcmp(a.baseAddress!, b.baseAddress!, common)
                    if order != 0 { return order < 0 }
                }
                return a.count < b.count
            }
        }
    }

    /// A name whose bytes are not valid UTF-8, shown with each byte of an invalid sequence as `\xNN` (valid
    /// characters kept): `caf\xE9.txt`.
    public static func escapedName(_ bytes: UnsafeRawBufferPointer) -> String {
        var out = ""
        var index = 0
        let all = Array(bytes)
        while index < all.count {
            // Take the longest valid UTF-8 sequence starting here (1...4 bytes).
            var taken = 0
            for length in 1...4 where index + length <= all.count {
                if String(validating: all[index..<index + length], as: UTF8.self) != nil { taken = length; break }
            }
            if taken > 0 {
                out += String(decoding: all[index..<index + taken], as: UTF8.self)
                index += taken
            } else {
                out += "\\x" + String(all[index], radix: 16, uppercase: true).leftPadded(to: 2)
                index += 1
            }
        }
        return out
    }

    /// Lexically normalises an absolute or relative path: no `.`/empty components, `..` resolved, no
    /// trailing slash. Relative paths are made absolute against the current directory. Does not touch the disk.
    static func normalize(_ path: String) -> String {
        var full = path
        if !full.hasPrefix("/") {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            if getcwd(&buffer, buffer.count) != nil {
                let cwd = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                full = cwd + "/" + full
            }
        }
        var parts: [Substring] = []
        for component in full.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(component)
            }
        }
        return "/" + parts.joined(separator: "/")
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// `strerror` as a Swift string.
func errnoDescription(_ code: Int32) -> String {
    String(cString: strerror(code))
}
