import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What happens to a source file after success or permanent failure. Input is never deleted on failure.
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
    public func disposeAfterSuccess(relativePath: String) throws -> String? {
        try SafeRelativePath.validate(relativePath)
        switch afterSuccess {
        case .keep:
            return nil
        case .delete:
            let source = SafeRelativePath.join(inbox, relativePath)
            if unlink(source) != 0 {
                if errno == ENOENT { return nil }
                throw FileOperationError.posix("delete", source)
            }
            try AtomicFile.syncDirectory((source as NSString).deletingLastPathComponent)
            return nil
        case .move:
            return try Self.move(relativePath, from: inbox, into: archive)
        }
    }

    /// Moves the source to `<failedFolder>/<relativePath>` (same naming rules) when a failed folder is set;
    /// otherwise leaves it in the inbox. Returns the new path or nil.
    @discardableResult
    public func disposeAfterFailure(relativePath: String) throws -> String? {
        try SafeRelativePath.validate(relativePath)
        guard let failedFolder else { return nil }
        return try Self.move(relativePath, from: inbox, into: failedFolder)
    }

    /// Moves `<from>/<relativePath>` to the first free name for `<into>/<relativePath>`.
    ///
    /// rename(2) when both are on one file system; otherwise copy to a dot-named temporary file next to the
    /// target, fsync, rename it into place, then unlink the source. The free name is chosen by checking, so two
    /// processes moving to the same name at the same moment could collide; one job lock per job prevents that.
    static func move(_ relativePath: String, from root: String, into folder: String) throws -> String {
        let source = SafeRelativePath.join(root, relativePath)
        var status = stat()
        guard lstat(source, &status) == 0 else { throw FileOperationError.posix("move", source) }
        let wanted = SafeRelativePath.join(folder, relativePath)
        let targetFolder = (wanted as NSString).deletingLastPathComponent
        try AtomicFile.createDirectories(targetFolder)
        let target = try freeName(for: wanted)
        if rename(source, target) != 0 {
            guard errno == EXDEV else { throw FileOperationError.posix("move \(source) to", target) }
            try copyAcrossFileSystems(source, to: target, mode: status.st_mode & 0o7777)
            guard unlink(source) == 0 else { throw FileOperationError.posix("remove moved", source) }
        }
        try AtomicFile.syncDirectory(targetFolder)
        try AtomicFile.syncDirectory((source as NSString).deletingLastPathComponent)
        return target
    }

    /// `path` if nothing is there, else `name (2).ext`, `name (3).ext`, ...
    static func freeName(for path: String) throws -> String {
        if !exists(path) { return path }
        let folder = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let (stem, fileExtension) = splitExtension(name)
        for number in 2...100_000 {
            let candidate = (folder as NSString).appendingPathComponent("\(stem) (\(number))\(fileExtension)")
            if !exists(candidate) { return candidate }
        }
        throw FileOperationError(operation: "find a free name for", path: path, errorNumber: EEXIST)
    }

    /// `("report", ".pdf")` for `report.pdf`; a leading dot (`.env`) or a trailing dot is not an extension.
    static func splitExtension(_ name: String) -> (stem: String, fileExtension: String) {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex, name.index(after: dot) != name.endIndex else {
            return (name, "")
        }
        return (String(name[..<dot]), String(name[dot...]))
    }

    private static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0 || errno != ENOENT
    }

    /// Copies into a temporary file next to `target`, fsyncs it and renames it into place.
    private static func copyAcrossFileSystems(_ source: String, to target: String, mode: mode_t) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw FileOperationError.posix("open", source) }
        defer { _ = close(input) }
        let folder = (target as NSString).deletingLastPathComponent
        let name = (target as NSString).lastPathComponent
        let temporary = (folder as NSString).appendingPathComponent(".\(name).tmp-\(AtomicFile.randomSuffix())")
        let output = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard output >= 0 else { throw FileOperationError.posix("create", temporary) }
        var closed = false
        var renamed = false
        defer {
            if !closed { _ = close(output) }
            if !renamed { _ = unlink(temporary) }
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw FileOperationError.posix("read", source)
            }
            if count == 0 { break }
            try posixWriteAll(output, Data(buffer[0..<count]), path: temporary)
        }
        _ = fchmod(output, mode)
        guard fsync(output) == 0 else { throw FileOperationError.posix("fsync", temporary) }
        closed = true
        guard close(output) == 0 else { throw FileOperationError.posix("close", temporary) }
        guard rename(temporary, target) == 0 else { throw FileOperationError.posix("rename", target) }
        renamed = true
    }
}
