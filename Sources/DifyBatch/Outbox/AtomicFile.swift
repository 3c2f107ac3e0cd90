import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed file-system call, with the path and the `errno` it failed with.
public struct FileOperationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What was being done (`open`, `write`, `rename`, ...).
    public var operation: String
    public var path: String
    /// The `errno` value (0 when the failure did not come from a system call).
    public var errorNumber: Int32
    public var reason: String

    public init(operation: String, path: String, errorNumber: Int32, reason: String? = nil) {
        self.operation = operation
        self.path = path
        self.errorNumber = errorNumber
        self.reason = reason ?? String(cString: strerror(errorNumber))
    }

    /// Captures the current `errno`.
    static func posix(_ operation: String, _ path: String) -> FileOperationError {
        FileOperationError(operation: operation, path: path, errorNumber: errno)
    }

    public var description: String { "cannot \(operation) \(path): \(reason)" }
}

/// Atomic file writes.
///
/// The data goes to a temporary file `.dify-batch-<random>.tmp` in the target's folder (short, whatever the
/// target's length; dot-named, so nothing watching for `*.json` reads a partial file), is flushed with `fsync`,
/// renamed over the target, and then the folder is flushed. Intermediate folders are created. After a crash the
/// target is either absent (or its previous version) or complete; the temporary file is removed on every error
/// path, and ``removeTemporaryFiles(under:)`` removes what a killed process left.
public enum AtomicFile {
    /// Temporary names start with this and end with ``temporarySuffix``.
    public static let temporaryPrefix = ".dify-batch-"
    public static let temporarySuffix = ".tmp"

    /// `.dify-batch-<random>.tmp`
    static func temporaryName() -> String { temporaryPrefix + randomSuffix() + temporarySuffix }

    /// Whether a name is one of our temporary files.
    public static func isTemporaryName(_ name: String) -> Bool {
        name.hasPrefix(temporaryPrefix) && name.hasSuffix(temporarySuffix) && name.utf8.count <= 40
    }

    /// Writes `data` to `path` atomically. The file is created with `permissions` (default 0666) narrowed by the
    /// process umask, like any other file the user's tools create: 0644 under the usual umask 022, 0600 under 077.
    ///
    /// `replacing`: the name of another file in the same folder that this one supersedes (the outbox's
    /// `.error.json` of a `.json` and vice versa). It is removed once the new file is durable, and the folder is
    /// flushed again when it was there, so a reader finds one of the two at every moment, also after a crash.
    ///
    /// The folder is opened once; the temporary file is created, renamed and the old one removed relative to it
    /// (issue 14: one path walk instead of one per system call, no separate `stat` of the folder).
    public static func write(_ data: Data, to path: String, permissions: mode_t = 0o666, replacing stale: String? = nil) throws {
        let folder = PathText.folder(of: path)
        let name = PathText.name(of: path)
        guard !name.isEmpty, name != ".", name != ".." else {
            throw FileOperationError(operation: "write", path: path, errorNumber: EINVAL, reason: "not a file path")
        }
        let directory = folder.isEmpty ? "." : folder
        let folderFD = try openFolder(directory, creating: true)
        defer { _ = close(folderFD) }

        let temporaryName = temporaryName()
        let fd = openat(folderFD, temporaryName, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, permissions)
        guard fd >= 0 else { throw FileOperationError.posix("create", PathText.join(directory, temporaryName)) }
        var closed = false
        var renamed = false
        defer {
            if !closed { _ = close(fd) }
            if !renamed { _ = unlinkat(folderFD, temporaryName, 0) }
        }
        let temporary = { PathText.join(directory, temporaryName) }
        try posixWriteAll(fd, data, path: temporary())
        guard fsync(fd) == 0 else { throw FileOperationError.posix("fsync", temporary()) }
        closed = true
        guard close(fd) == 0 else { throw FileOperationError.posix("close", temporary()) }
        guard renameat(folderFD, temporaryName, folderFD, name) == 0 else { throw FileOperationError.posix("rename", path) }
        renamed = true
        try syncFolder(folderFD, directory)
        if let stale {
            if unlinkat(folderFD, stale, 0) == 0 {
                try syncFolder(folderFD, directory)
            } else if errno != ENOENT && errno != EISDIR {
                // A folder at the stale name is not an outcome (nothing to remove); anything else is an error.
                throw FileOperationError.posix("remove", PathText.join(directory, stale))
            }
        }
    }

    /// A descriptor of `directory` for `*at` calls and its `fsync`; with `creating`, missing folders are created
    /// first (``createDirectories(_:)``, whose errors — a file in the way is `ENOTDIR` — are thrown as they are).
    static func openFolder(_ directory: String, creating: Bool) throws -> Int32 {
        var fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 && creating {
            try createDirectories(directory)
            fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        guard fd >= 0 else { throw FileOperationError.posix("open folder", directory) }
        return fd
    }

    /// Removes `.dify-batch-*.tmp` files under `folder` (recursively, never following symlinks): what a process
    /// killed in the middle of a write left. Call only while holding the job's lock. Returns how many were removed.
    @discardableResult
    public static func removeTemporaryFiles(under folder: String) -> Int {
        var removed = 0
        var pending = [folder]
        while let current = pending.popLast() {
            guard let dir = opendir(current) else { continue }
            defer { closedir(dir) }
            let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
            while let entry = readdir(dir) {
                let cName = (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: CChar.self)
                let name = String(decoding: UnsafeRawBufferPointer(start: cName, count: strlen(cName)), as: UTF8.self)
                if name == "." || name == ".." { continue }
                let path = current + "/" + name
                var st = stat()
                guard lstat(path, &st) == 0 else { continue }
                if st.st_mode & S_IFMT == S_IFDIR {
                    pending.append(path)
                } else if st.st_mode & S_IFMT == S_IFREG, isTemporaryName(name), unlink(path) == 0 {
                    removed += 1
                }
            }
        }
        return removed
    }

    /// Flushes a folder's entries (a rename or unlink in it) to disk.
    static func syncDirectory(_ directory: String) throws {
        let fd = try openFolder(directory, creating: false)
        defer { _ = close(fd) }
        try syncFolder(fd, directory)
    }

    /// `fsync` of an open folder. Some file systems refuse it on a folder; that is not a failure of the write.
    static func syncFolder(_ fd: Int32, _ directory: String) throws {
        if fsync(fd) != 0 && errno != EINVAL && errno != EROFS {
            throw FileOperationError.posix("fsync folder", directory)
        }
    }

    /// `mkdir -p`: creates each missing folder (mode 0755, umask applied) and fsyncs its parent so the new entry
    /// survives a crash. A folder created concurrently by someone else is fine; a file in the way is `ENOTDIR`.
    static func createDirectories(_ directory: String) throws {
        var missing: [String] = []
        var current = directory
        var status = stat()
        while true {
            if stat(current, &status) == 0 {
                guard status.st_mode & S_IFMT == S_IFDIR else {
                    throw FileOperationError(operation: "create folder", path: current, errorNumber: ENOTDIR)
                }
                break
            }
            guard errno == ENOENT else { throw FileOperationError.posix("create folder", current) }
            missing.append(current)
            let parent = PathText.folder(of: current)
            if parent.isEmpty || parent == current { break }
            current = parent
        }
        for folder in missing.reversed() {
            if mkdir(folder, 0o755) != 0 {
                guard errno == EEXIST else { throw FileOperationError.posix("create folder", folder) }
                continue
            }
            let parent = PathText.folder(of: folder)
            try syncDirectory(parent.isEmpty ? "." : parent)
        }
    }

    static func randomSuffix() -> String {
        var generator = SystemRandomNumberGenerator()
        return String(generator.next() & 0xFFFF_FFFF_FFFF, radix: 36)
    }
}

/// Writes every byte, retrying on `EINTR` and short writes.
func posixWriteAll(_ fd: Int32, _ data: Data, path: String) throws {
    try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
        guard let base = buffer.baseAddress else { return }
        var offset = 0
        while offset < buffer.count {
            let written = write(fd, base + offset, buffer.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw FileOperationError.posix("write", path)
            }
            offset += written
        }
    }
}
