import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Refuses job specs whose folders overlap another spec's: two jobs sharing an inbox would process every file
/// twice, sharing an outbox, archive or failed folder they overwrite each other's files.
///
/// The folders compared are `inbox`, `outbox`, `archive` (only with `after_success: move`) and `failed_folder`
/// (when set), each with its symlinks resolved (a folder that does not exist yet is resolved through its nearest
/// existing parent). Two folders overlap when they are the same or one is inside the other. Inside ONE spec an
/// outbox or archive under the inbox is allowed (the scanner skips them).
public enum FolderOverlap {
    /// The folders a spec uses, by spec key.
    static func folders(_ spec: JobSpec) -> [(key: String, path: String)] {
        var result = [("inbox", spec.inbox), ("outbox", spec.outbox)]
        if spec.afterSuccess == .move { result.append(("archive", spec.archive)) }
        if let failed = spec.failedFolder { result.append(("failed_folder", failed)) }
        return result
    }

    /// Throws a ``SpecError`` (exit 2) naming both specs and folders for the first overlap found.
    public static func check(_ specs: [JobSpec]) throws {
        let resolved = specs.map { spec in folders(spec).map { (key: $0.key, path: $0.path, real: canonical($0.path)) } }
        for first in specs.indices {
            for second in specs.indices where second > first {
                for a in resolved[first] {
                    for b in resolved[second] where overlaps(a.real, b.real) {
                        let relation = a.real == b.real ? "is the same folder as" : "overlaps"
                        throw SpecError(file: specs[second].specPath, keyPath: b.key, message: """
                            \(b.path) (job \(specs[second].name)) \(relation) \(a.key) \(a.path) of job \(specs[first].name) \
                            (\(specs[first].specPath)); give every job its own inbox, outbox, archive and failed folder
                            """)
                    }
                }
            }
        }
    }

    /// Same folder, or one inside the other.
    static func overlaps(_ a: String, _ b: String) -> Bool {
        a == b || a.hasPrefix(b.hasSuffix("/") ? b : b + "/") || b.hasPrefix(a.hasSuffix("/") ? a : a + "/")
    }

    /// `realpath(3)` of the path, or of its nearest existing parent with the missing components appended.
    public static func canonical(_ path: String) -> String {
        var missing: [String] = []
        var current = (path as NSString).standardizingPath
        while true {
            if let real = realpath(current, nil) {
                defer { free(real) }
                var result = String(cString: real)
                for component in missing.reversed() { result = (result as NSString).appendingPathComponent(component) }
                return result
            }
            let parent = PathText.folder(of: current)
            if parent.isEmpty || parent == current { return (path as NSString).standardizingPath }
            missing.append((current as NSString).lastPathComponent)
            current = parent
        }
    }
}
