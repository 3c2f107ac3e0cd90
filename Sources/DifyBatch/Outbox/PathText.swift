import Foundation

/// The path operations of `NSString` (`deletingLastPathComponent`, `lastPathComponent`,
/// `appendingPathComponent`) by slicing, for the per-document paths of the outbox and the pipeline.
///
/// `NSString`'s versions bridge to Foundation and normalise every slash on each call: 4–5 % of the daemon's CPU
/// per document in issue 14's profile (`_stringByFixingSlashes`). Paths in the form every caller here builds
/// (no `//`, no trailing `/` except the root) are sliced; any other input goes to `NSString` itself, so the
/// results are the same for every input (`PathTextTests` compares them). One difference: `NSString` here traps on
/// the folder of a one-character relative path (`"x"`: SIGILL in swift-corelibs-foundation); this gives `""`.
enum PathText {
    /// `path` without its last component: `/a/b` → `/a`, `/a` → `/`, `a` → `` (as `NSString`).
    static func folder(of path: String) -> String {
        guard isPlain(path) else { return (path as NSString).deletingLastPathComponent }
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "" }
        if slash == path.utf8.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// The last component: `/a/b` → `b`, `a` → `a`, `/` → `/` (as `NSString`).
    static func name(of path: String) -> String {
        guard isPlain(path), path != "/" else { return (path as NSString).lastPathComponent }
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return String(path[path.utf8.index(after: slash)...])
    }

    /// `folder/name`: `/a` + `b` → `/a/b`, `/` + `b` → `/b`, `` + `b` → `b` (as `NSString`).
    static func join(_ folder: String, _ name: String) -> String {
        guard isPlain(folder), isPlain(name), !name.hasPrefix("/"), !name.isEmpty else {
            return (folder as NSString).appendingPathComponent(name)
        }
        if folder.isEmpty { return name }
        if folder == "/" { return "/" + name }
        return folder + "/" + name
    }

    /// No `//`, no trailing `/` (the root alone excepted), not empty: the form sliced here.
    private static func isPlain(_ path: String) -> Bool {
        var previousWasSlash = false
        var count = 0
        for byte in path.utf8 {
            let slash = byte == UInt8(ascii: "/")
            if slash && previousWasSlash { return false }
            previousWasSlash = slash
            count += 1
        }
        if count == 0 { return false }
        return !previousWasSlash || count == 1
    }
}
