import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Decides, before anything is uploaded or paid, whether a document's outbox files can be written at all.
///
/// A document at inbox path `p` writes `<outbox>/p.json` or `<outbox>/p.error.json` (a `rows: true` table also
/// `p.jsonl` and `p.csv`), creating the folders of `p` under the outbox. That fails for good, whatever is retried,
/// when:
/// - **another inbox path needs the same outbox path** (code `outbox_clash`): an inbox folder named like one of
///   `p`'s outbox files (`d.txt` and the folder `d.txt.json/`: `out/d.txt.json` cannot be a file and a folder), a
///   folder of `p` named like the outbox file of an inbox file (`d.txt.json/e.txt` and the file `d.txt`), or two
///   files whose outcomes share a name (`x` fails as `x.error.json`, which is where `x.error` succeeds);
/// - **something in the outbox is in the way** (code `outbox_blocked`): a folder or other non-file where the
///   outbox file goes (EISDIR), a file where one of its folders goes (ENOTDIR), or a path longer than Linux's
///   4095 bytes (ENAMETOOLONG). Names longer than 255 bytes are cut by ``OutboxWriter`` and never block.
///
/// Both documents of a clash are refused (the outcome would otherwise depend on which came first), each naming the
/// other path and the fix; nothing is uploaded or sent for them. Only paths the job takes are considered (dotfiles,
/// partial names and `match.include`/`exclude` as the scanner has them; folders only when `match.recursive`).
public struct OutboxTargets: Sendable {
    public let inbox: String
    public let outbox: String
    /// `rows: true`: tables also write `.jsonl` and `.csv`.
    public let rows: Bool
    let scanner: InboxScanner
    let recursive: Bool
    let writer: OutboxWriter

    public init(spec: JobSpec) {
        inbox = spec.inbox
        outbox = spec.outbox
        rows = spec.rows
        recursive = spec.match.recursive
        scanner = InboxScanner(inbox: spec.inbox, rules: spec.match)
        writer = OutboxWriter(outbox: spec.outbox)
    }

    /// The longest path Linux takes (PATH_MAX 4096 with its terminating zero).
    static let maximumPathBytes = 4095

    /// The code of a clash between two inbox paths.
    public static let clashCode = "outbox_clash"
    /// The code of an outbox path something is in the way of.
    public static let blockedCode = "outbox_blocked"

    /// Why the outbox files of the document at inbox-relative `relativePath` cannot be written (class `rejected`),
    /// or nil when they can. Reads the inbox and the outbox; changes nothing.
    public func problem(relativePath: String) -> RecordedError? {
        let suffixes = rows ? [".json", ".error.json", ".jsonl", ".csv"] : [".json", ".error.json"]
        let fix = "rename one of them in the inbox (the renamed file is taken as a new document), then requeue this one with `dify-batch retry --state rejected \(relativePath)` if it keeps its name"
        // 1. An inbox folder where one of this document's outbox files goes.
        for suffix in suffixes where recursive && isTakenFolder(relativePath + suffix) {
            return RecordedError(errorClass: "rejected", code: Self.clashCode, message: "its outbox file \(display(relativePath + suffix)) is also the outbox folder of the inbox folder \(relativePath + suffix)/ (the results of the files in it go there): a path cannot be a file and a folder; \(fix)")
        }
        // 2. A folder of this document named like the outbox file of an inbox file.
        let components = relativePath.split(separator: "/").map(String.init)
        var folder = ""
        for component in components.dropLast() {
            folder = folder.isEmpty ? component : folder + "/" + component
            for suffix in suffixes where folder.hasSuffix(suffix) && folder.count > suffix.count {
                let file = String(folder.dropLast(suffix.count))
                if isTakenFile(file) {
                    return RecordedError(errorClass: "rejected", code: Self.clashCode, message: "its outbox folder \(display(folder))/ is also the outbox file of the inbox file \(file) (\(display(folder))): a path cannot be a file and a folder; \(fix)")
                }
            }
        }
        // 3. Two files whose outcomes share a name: `x` fails as `x.error.json`, where `x.error` succeeds.
        if isTakenFile(relativePath + ".error") {
            return RecordedError(errorClass: "rejected", code: Self.clashCode, message: "its failure file \(display(relativePath + ".error.json")) is also where the inbox file \(relativePath).error writes its result: one would replace the other; \(fix)")
        }
        if relativePath.hasSuffix(".error"), relativePath.count > 6, isTakenFile(String(relativePath.dropLast(6))) {
            let other = String(relativePath.dropLast(6))
            return RecordedError(errorClass: "rejected", code: Self.clashCode, message: "its result file \(display(relativePath + ".json")) is also where the inbox file \(other) writes its failure: one would replace the other; \(fix)")
        }
        // 4. Something in the outbox in the way, or a path too long. All targets share one folder: it is looked at
        //    once, at the first target that does not show it (a target that exists proves its folders are folders).
        var folderChecked = false
        for suffix in suffixes {
            let target = writer.path(for: relativePath, suffix: suffix)
            if let blocked = blocked(target, relativePath: relativePath, checkFolder: !folderChecked) { return blocked }
            folderChecked = true
        }
        return nil
    }

    /// `<outbox>/<relative>` as written in messages.
    func display(_ relative: String) -> String { SafeRelativePath.join(outbox, relative) }

    private func isTakenFolder(_ relative: String) -> Bool {
        guard let mode = Self.mode(SafeRelativePath.join(inbox, relative)), mode == S_IFDIR else { return false }
        return !relative.split(separator: "/").contains(where: { InboxNames.isHidden(String($0)) })
    }

    private func isTakenFile(_ relative: String) -> Bool {
        guard let mode = Self.mode(SafeRelativePath.join(inbox, relative)), mode == S_IFREG else { return false }
        return scanner.accepts(relativePath: relative)
    }

    /// The outbox-side obstacle to writing `target` (the outbox file of `relativePath`), if any; the folders of the
    /// path under the outbox only when `checkFolder`.
    private func blocked(_ target: String, relativePath: String, checkFolder: Bool) -> RecordedError? {
        if target.utf8.count > Self.maximumPathBytes {
            return RecordedError(errorClass: "rejected", code: Self.blockedCode, message: "its outbox path \(target.prefix(120))… is \(target.utf8.count) bytes, over Linux's limit of \(Self.maximumPathBytes) (ENAMETOOLONG); choose a shorter `outbox:` or shorten the inbox folders' names")
        }
        // A symlink is replaced by the atomic rename like a file; anything else stays in the way.
        if let mode = Self.mode(target, following: false) {
            if mode != S_IFREG && mode != S_IFLNK {
                return RecordedError(errorClass: "rejected", code: Self.blockedCode, message: "\(mode == S_IFDIR ? "a folder" : "something that is not a file") is in the way of its outbox file \(target) (EISDIR); move it away, then requeue this document with `dify-batch retry --state rejected \(relativePath)`")
            }
            // Found through its folders: each of them is a folder (or a symlink leading to one).
            return nil
        }
        guard checkFolder else { return nil }
        // The nearest existing folder of the path under the outbox must be a folder (symlinks to folders followed).
        var folders = relativePath.split(separator: "/").dropLast().map(String.init)
        while !folders.isEmpty {
            let folder = SafeRelativePath.join(outbox, folders.joined(separator: "/"))
            // A symlink counts as what it leads to; one that leads nowhere (dangling, a loop) is in the way too.
            // One call for a folder and for nothing there; a symlink is followed with a second.
            if let mode = Self.mode(folder) {
                if mode == S_IFDIR || (mode == S_IFLNK && Self.mode(folder, following: true) == S_IFDIR) { return nil }
                return RecordedError(errorClass: "rejected", code: Self.blockedCode, message: "a file is in the way of its outbox folder \(folder)/ (ENOTDIR), needed for \(target); move it away, then requeue this document with `dify-batch retry --state rejected \(relativePath)`")
            }
            folders.removeLast()
        }
        return nil
    }

    /// The file type bits of `path` (a final symlink followed only when `following`), nil when nothing is there.
    static func mode(_ path: String, following: Bool = false) -> mode_t? {
        var status = stat()
        guard (following ? stat(path, &status) : lstat(path, &status)) == 0 else { return nil }
        return status.st_mode & S_IFMT
    }
}
