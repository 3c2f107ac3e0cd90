import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What happens to a source file after success or permanent failure. Input is never deleted on failure.
///
/// Nothing is ever overwritten and only the version that was processed is moved or deleted:
/// - every move is a no-replace rename (``NoReplaceRename``): when the wanted name is taken, the next free name
///   (` (2)`, ` (3)`, ...) is tried, so two jobs sharing an archive folder never overwrite each other's files;
/// - given the `expected` identity (device, inode, size, mtime recorded when the file was pinned), the file at the
///   path is checked before it is touched, and what was actually moved is checked again afterwards: a file
///   replaced or rewritten in the meantime is a new version and is put back (or left) in the inbox, untouched,
///   with a ``FileOperationError`` saying so.
public struct SourceDisposer: Sendable {
    public let inbox: String
    public let afterSuccess: JobSpec.AfterSuccess
    public let archive: String
    public let failedFolder: String?

    public init(inbox: String, afterSuccess: JobSpec.AfterSuccess, archive: String, failedFolder: String?) {
        self.inbox = inbox
        self.afterSuccess = afterSuccess
        self.archive = archive
        self.failedFolder = failedFolder
    }

    /// `move` → `<archive>/<relativePath>` (with a ` (2)`, ` (3)`, ... suffix before the extension when that name
    /// is taken); `keep` → nothing; `delete` → unlink (a source that is already gone is not an error).
    /// Returns the new absolute path, or nil when the file was kept or deleted.
    @discardableResult
    public func disposeAfterSuccess(relativePath: String, expected: FileIdentity? = nil) throws -> String? {
        try SafeRelativePath.validate(relativePath)
        switch afterSuccess {
        case .keep:
            return nil
        case .delete:
            try Self.delete(SafeRelativePath.join(inbox, relativePath), expected: expected)
            return nil
        case .move:
            return try Self.move(relativePath, from: inbox, into: archive, expected: expected)
        }
    }

    /// Moves the source to `<failedFolder>/<relativePath>` (same naming rules) when a failed folder is set;
    /// otherwise leaves it in the inbox. Returns the new path or nil.
    @discardableResult
    public func disposeAfterFailure(relativePath: String, expected: FileIdentity? = nil) throws -> String? {
        try SafeRelativePath.validate(relativePath)
        guard let failedFolder else { return nil }
        return try Self.move(relativePath, from: inbox, into: failedFolder, expected: expected)
    }

    static func replaced(_ path: String, _ expected: FileIdentity, now: FileIdentity?) -> FileOperationError {
        FileOperationError(operation: "dispose of", path: path, errorNumber: ESTALE,
                           reason: "the file at this path is no longer the version that was processed (expected \(expected), found \(now.map { "\($0)" } ?? "nothing")); it is left in the inbox and processed as a new version")
    }

    /// Deletes the file only if it is the expected version. It is first renamed aside (hidden, same folder), then
    /// the renamed file is checked: the check and the unlink concern the same inode, so a version swapped in at
    /// the path is never deleted.
    static func delete(_ source: String, expected: FileIdentity?) throws {
        let folder = PathText.folder(of: source)
        guard let expected else {
            if unlink(source) != 0 {
                if errno == ENOENT { return }
                throw FileOperationError.posix("delete", source)
            }
            try AtomicFile.syncDirectory(folder)
            return
        }
        guard let before = FileIdentity.at(source) else { return }  // already gone
        guard before.matches(expected) else { throw replaced(source, expected, now: before) }
        let aside = (folder as NSString).appendingPathComponent(AtomicFile.temporaryName())
        let code = NoReplaceRename.rename(source, aside)
        if code == ENOENT { return }
        guard code == 0 else { throw FileOperationError(operation: "delete", path: source, errorNumber: code) }
        let moved = FileIdentity.at(aside)
        if let moved, moved.matches(expected) {
            guard unlink(aside) == 0 else { throw FileOperationError.posix("delete", aside) }
            try AtomicFile.syncDirectory(folder)
            return
        }
        // Lost a race with a writer: that file is a new version. Back under its name (or a free one next to it).
        let restored = try placeNoReplace(aside, wanted: source)
        throw replaced(restored, expected, now: moved)
    }

    /// Moves `<from>/<relativePath>` to the first free name for `<into>/<relativePath>`, never replacing a file.
    ///
    /// A no-replace rename on one file system; across file systems the bytes are copied from a descriptor opened
    /// without following links into a hidden temporary file, fsynced, linked in under a free name, and the source
    /// is unlinked only if it is still the file that was copied.
    static func move(_ relativePath: String, from root: String, into folder: String, expected: FileIdentity? = nil) throws -> String {
        let source = SafeRelativePath.join(root, relativePath)
        guard let before = FileIdentity.at(source) else { throw FileOperationError.posix("move", source) }
        if let expected, !before.matches(expected) { throw replaced(source, expected, now: before) }
        let wanted = SafeRelativePath.join(folder, relativePath)
        let targetFolder = PathText.folder(of: wanted)
        try AtomicFile.createDirectories(targetFolder)
        let target: String
        var renamed = true
        do {
            target = try placeNoReplace(source, wanted: wanted)
        } catch let error as FileOperationError where error.errorNumber == EXDEV {
            target = try copyAcrossFileSystems(source, wanted: wanted, expected: expected ?? before)
            renamed = false
        }
        if renamed, let expected, let moved = FileIdentity.at(target), !moved.matches(expected) {
            // A new version was swapped in between the check and the rename: put it back where it was.
            let restored = (try? placeNoReplace(target, wanted: source)) ?? target
            throw replaced(restored, expected, now: moved)
        }
        try AtomicFile.syncDirectory(targetFolder)
        try AtomicFile.syncDirectory(PathText.folder(of: source))
        return target
    }

    /// Renames `source` to `wanted`, or `name (2).ext`, `name (3).ext`, ... — the first name that is free at the
    /// moment of the rename (never overwrites). Throws with `EXDEV` across file systems.
    static func placeNoReplace(_ source: String, wanted: String) throws -> String {
        for candidate in candidates(for: wanted) {
            let code = NoReplaceRename.rename(source, candidate)
            if code == 0 { return candidate }
            if code == EEXIST { continue }
            throw FileOperationError(operation: "move \(source) to", path: candidate, errorNumber: code)
        }
        throw FileOperationError(operation: "find a free name for", path: wanted, errorNumber: EEXIST)
    }

    /// `path`, then `name (2).ext` up to `name (100000).ext`.
    static func candidates(for path: String) -> some Sequence<String> {
        let folder = PathText.folder(of: path)
        let (stem, fileExtension) = splitExtension((path as NSString).lastPathComponent)
        return [path].lazy + (2...100_000).lazy.map { (folder as NSString).appendingPathComponent("\(stem) (\($0))\(fileExtension)") }
    }

    /// `("report", ".pdf")` for `report.pdf`; a leading dot (`.env`) or a trailing dot is not an extension.
    static func splitExtension(_ name: String) -> (stem: String, fileExtension: String) {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex, name.index(after: dot) != name.endIndex else {
            return (name, "")
        }
        return (String(name[..<dot]), String(name[dot...]))
    }

    /// Copies into a hidden temporary file next to the target, fsyncs it, links it in under a free name and
    /// unlinks the source if it is still the file that was copied.
    private static func copyAcrossFileSystems(_ source: String, wanted: String, expected: FileIdentity) throws -> String {
        let pinned: PinnedFile
        do { pinned = try PinnedFile(path: source) } catch { throw FileOperationError(operation: "open", path: source, errorNumber: error.errno ?? EIO, reason: error.message) }
        guard pinned.identity.matches(expected) else { throw replaced(source, expected, now: pinned.identity) }
        var status = stat()
        _ = fstat(pinned.descriptor, &status)
        let folder = PathText.folder(of: wanted)
        let temporary = (folder as NSString).appendingPathComponent(AtomicFile.temporaryName())
        let output = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, status.st_mode & 0o7777)
        guard output >= 0 else { throw FileOperationError.posix("create", temporary) }
        var closed = false
        defer {
            if !closed { _ = close(output) }
            _ = unlink(temporary)
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(pinned.descriptor, $0.baseAddress, $0.count, offset) }
            if count < 0 {
                if errno == EINTR { continue }
                throw FileOperationError.posix("read", source)
            }
            if count == 0 { break }
            try posixWriteAll(output, Data(buffer[0..<count]), path: temporary)
            offset += off_t(count)
        }
        guard fsync(output) == 0 else { throw FileOperationError.posix("fsync", temporary) }
        closed = true
        guard close(output) == 0 else { throw FileOperationError.posix("close", temporary) }
        var target: String?
        for candidate in candidates(for: wanted) {
            if link(temporary, candidate) == 0 { target = candidate; break }
            if errno == EEXIST { continue }
            throw FileOperationError.posix("link", candidate)
        }
        guard let target else { throw FileOperationError(operation: "find a free name for", path: wanted, errorNumber: EEXIST) }
        guard pinned.isStill(at: source) else {
            // Changed while copied: keep the source (a new version); drop the copy.
            _ = unlink(target)
            throw replaced(source, expected, now: FileIdentity.at(source))
        }
        guard unlink(source) == 0 else { throw FileOperationError.posix("remove moved", source) }
        return target
    }
}
