/// One regular file (or symlink) found in an inbox.
public struct InboxFile: Sendable, Equatable, Hashable {
    /// `/`-separated, relative to the inbox, e.g. `a b/ü.txt`.
    public var relativePath: String
    /// The inbox path joined with ``relativePath``.
    public var absolutePath: String
    /// `st_size` from `lstat` (for a symlink: the length of its target path).
    public var size: Int64
    /// `st_mtim` as nanoseconds since the epoch (for a symlink: the link's own mtime).
    public var mtimeNanoseconds: Int64
    /// A symlink (to a file or to a folder). Never followed; the caller rejects it with a reason.
    public var isSymlink: Bool
    /// `st_dev` / `st_ino` from `lstat` (nil when not known, e.g. in tests that build values by hand).
    public var device: UInt64? = nil
    public var inode: UInt64? = nil
    /// The name's bytes are not valid UTF-8: ``relativePath`` shows them as `\xNN` escapes (so it can be logged
    /// and recorded) and ``absolutePath`` cannot name the file. The caller records a rejection.
    public var hasInvalidName = false

    public init(relativePath: String, absolutePath: String, size: Int64, mtimeNanoseconds: Int64, isSymlink: Bool,
                device: UInt64? = nil, inode: UInt64? = nil, hasInvalidName: Bool = false) {
        self.relativePath = relativePath
        self.absolutePath = absolutePath
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
        self.isSymlink = isSymlink
        self.device = device
        self.inode = inode
        self.hasInvalidName = hasInvalidName
    }

    /// `(device, inode, size, mtime)` as the scan saw them.
    public var identity: FileIdentity {
        FileIdentity(device: device, inode: inode, size: size, mtimeNanoseconds: mtimeNanoseconds)
    }

    /// The last path component.
    public var name: String {
        guard let slash = relativePath.lastIndex(of: "/") else { return relativePath }
        return String(relativePath[relativePath.index(after: slash)...])
    }
}

/// Something under the inbox that could not be listed or was skipped for a reason the user should see
/// (an unreadable sub-folder, a file name that is not UTF-8, a FIFO). The rest of the scan goes on.
public struct ScanProblem: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Relative to the inbox (`""` for the inbox itself).
    public var relativePath: String
    public var message: String

    public init(relativePath: String, message: String) {
        self.relativePath = relativePath
        self.message = message
    }

    /// `sub/folder: cannot open the folder: Permission denied`
    public var description: String {
        (relativePath.isEmpty ? "." : relativePath) + ": " + message
    }
}

/// The inbox itself cannot be listed (or a watcher cannot be set up): which folder and why.
public struct ScanError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var message: String
    /// The `errno` behind the failure, when there is one.
    public var errno: Int32?

    public init(path: String, message: String, errno: Int32? = nil) {
        self.path = path
        self.message = message
        self.errno = errno
    }

    /// `/srv/inbox: cannot open the inbox folder: No such file or directory`
    public var description: String { "\(path): \(message)" }
}
