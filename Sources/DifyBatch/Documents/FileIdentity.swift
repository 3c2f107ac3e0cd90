#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Which file a document version is: `(device, inode, size, mtime)` as `fstat`/`lstat` report them.
///
/// Two observations are the same file version when all four agree. `device`/`inode` are nil for documents
/// recorded before schema version 3 (only size and mtime were kept); then only those are compared.
public struct FileIdentity: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var device: UInt64?
    public var inode: UInt64?
    /// Bytes.
    public var size: Int64
    /// `st_mtim` as nanoseconds since the epoch.
    public var mtimeNanoseconds: Int64

    public init(device: UInt64?, inode: UInt64?, size: Int64, mtimeNanoseconds: Int64) {
        self.device = device
        self.inode = inode
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
    }

    init(_ st: stat) {
        #if canImport(Darwin)
        let mtime = Int64(st.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(st.st_mtimespec.tv_nsec)
        #else
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        #endif
        self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size), mtimeNanoseconds: mtime)
    }

    /// Whether `other` is the same version: size and mtime equal, and device/inode equal where both know them.
    public func matches(_ other: FileIdentity) -> Bool {
        guard size == other.size, mtimeNanoseconds == other.mtimeNanoseconds else { return false }
        if let device, let otherDevice = other.device, device != otherDevice { return false }
        if let inode, let otherInode = other.inode, inode != otherInode { return false }
        return true
    }

    /// The identity of whatever is at `path` now, without following a symlink; nil when nothing is there.
    static func at(_ path: String) -> FileIdentity? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        guard st.st_mode & S_IFMT == S_IFREG else {
            // A symlink, folder or FIFO is never the regular file that was pinned.
            return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: -1, mtimeNanoseconds: -1)
        }
        return FileIdentity(st)
    }

    /// `dev 2049 inode 1234 size 10 mtime 1764…`
    public var description: String {
        "dev \(device.map(String.init) ?? "?") inode \(inode.map(String.init) ?? "?") size \(size) mtime_ns \(mtimeNanoseconds)"
    }

    /// The ledger keeps device and inode as SQLite INTEGERs (signed 64-bit): the same bits.
    public var deviceColumn: Int64? { device.map { Int64(bitPattern: $0) } }
    public var inodeColumn: Int64? { inode.map { Int64(bitPattern: $0) } }
}
