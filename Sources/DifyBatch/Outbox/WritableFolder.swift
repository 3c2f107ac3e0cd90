import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Proves that this process can create files in a folder (creating the folder if it is missing), by creating and
/// removing a dot-named probe file. Catches what `access(2)` misses for root: read-only mounts (EROFS), a file in
/// the way (ENOTDIR), a full disk (ENOSPC) when not even an inode is left.
public enum WritableFolder {
    /// Throws ``FileOperationError`` with the errno of the first failing step. With `create: false` a missing
    /// folder is not created: its nearest existing parent is probed instead (`check` changes nothing).
    public static func verify(_ folder: String, create: Bool = true) throws {
        var folder = folder
        if create {
            try AtomicFile.createDirectories(folder)
        } else {
            var status = stat()
            while stat(folder, &status) != 0 && errno == ENOENT {
                let parent = PathText.folder(of: folder)
                if parent.isEmpty || parent == folder { break }
                folder = parent
            }
            guard stat(folder, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
                throw FileOperationError(operation: "create a file in", path: folder, errorNumber: stat(folder, &status) == 0 ? ENOTDIR : errno)
            }
        }
        let probe = (folder as NSString).appendingPathComponent(".dify-batch-probe-\(AtomicFile.randomSuffix())")
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileOperationError.posix("create a file in", folder) }
        _ = close(fd)
        _ = unlink(probe)
    }

    /// The message for a folder the job cannot write: which folder, why, as which user, and how to fix it.
    static func problem(key: String, folder: String, error: any Error) -> String {
        let reason = (error as? FileOperationError).map { "\($0.reason) (\(ErrnoName.name($0.errorNumber)))" } ?? "\(error)"
        return "`\(key):` \(folder) is not writable by user \(currentUserName()): \(reason); "
            + "make it writable for that user (e.g. `chown \(currentUserName()) \(folder)`), free space or remount it read-write, "
            + "or choose another `\(key):` in the spec"
    }

    /// The user name of this process (its uid when it has no name).
    static func currentUserName() -> String {
        let uid = getuid()
        if let entry = getpwuid(uid), let name = entry.pointee.pw_name { return String(cString: name) }
        return "uid \(uid)"
    }
}
