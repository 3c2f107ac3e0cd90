import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a file could not be pinned or read.
public struct PinnedFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let value: String
        /// Nothing is at the path (`ENOENT`).
        public static let missing = Code(value: "source_missing")
        /// The path is a symbolic link (`O_NOFOLLOW` refused it): never followed.
        public static let symlink = Code(value: "symlink")
        /// A FIFO, socket, device or folder: only regular files are read.
        public static let notRegular = Code(value: "not_regular_file")
        /// `open`/`read` failed (permissions, I/O).
        public static let unreadable = Code(value: "unreadable")
        /// The file changed while it was read (its size or mtime moved).
        public static let changed = Code(value: "source_changed")
        public var description: String { value }
    }

    public var code: Code
    public var path: String
    public var message: String
    public var errno: Int32?

    public var description: String { "\(path): \(message)" }
}

/// One inbox file, opened once and read only through that descriptor.
///
/// `open(O_RDONLY | O_NOFOLLOW | O_NONBLOCK)`: a symlink is refused (`ELOOP`) instead of followed, and a FIFO
/// swapped in is opened without waiting for a writer; `fstat` on the descriptor then refuses everything that is
/// not a regular file, so nothing ever blocks. The hash and the upload read this descriptor (`pread`, so they
/// never share an offset); ``identity`` is what `fstat` said when it was opened. ``isStill(at:)`` tells whether
/// the path still names this very file (same device, inode, size and mtime).
///
/// The descriptor is closed when the value is released (`deinit`).
public final class PinnedFile: Sendable {
    public let path: String
    /// The open descriptor (read-only). Valid for the life of this object.
    public let descriptor: Int32
    /// `(device, inode, size, mtime)` from `fstat` at open.
    public let identity: FileIdentity

    /// Opens `path` without following a symlink. Throws ``PinnedFileError`` (`symlink`, `not_regular_file`,
    /// `source_missing`, `unreadable`).
    public init(path: String) throws(PinnedFileError) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            switch code {
            case ELOOP:
                throw PinnedFileError(code: .symlink, path: path,
                                      message: "is a symbolic link; links are never followed: copy or move the file itself into the inbox", errno: code)
            case ENOENT, ENOTDIR:
                throw PinnedFileError(code: .missing, path: path, message: "the file is no longer there", errno: code)
            case ENXIO:
                throw PinnedFileError(code: .notRegular, path: path, message: "not a regular file (a socket or device); skipped", errno: code)
            default:
                throw PinnedFileError(code: .unreadable, path: path,
                                      message: "cannot open: \(errnoDescription(code)); check its permissions", errno: code)
            }
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let code = errno
            close(fd)
            throw PinnedFileError(code: .unreadable, path: path, message: "cannot stat: \(errnoDescription(code))", errno: code)
        }
        let kind = st.st_mode & S_IFMT
        guard kind == S_IFREG else {
            close(fd)
            throw PinnedFileError(code: .notRegular, path: path, message: "not a regular file (\(Self.kindName(kind))); skipped")
        }
        self.path = path
        descriptor = fd
        identity = FileIdentity(st)
    }

    deinit { close(descriptor) }

    /// What `fstat` says about the open file now (it may have been written to since it was opened).
    public func currentIdentity() throws(PinnedFileError) -> FileIdentity {
        var st = stat()
        guard fstat(descriptor, &st) == 0 else {
            let code = errno
            throw PinnedFileError(code: .unreadable, path: path, message: "cannot stat: \(errnoDescription(code))", errno: code)
        }
        return FileIdentity(st)
    }

    /// Whether the path still names this file, unchanged (`lstat` on the path equals ``identity``, and the open
    /// file itself has not changed).
    public func isStill(at path: String? = nil) -> Bool {
        guard let now = FileIdentity.at(path ?? self.path), now == identity else { return false }
        return (try? currentIdentity()) == identity
    }

    /// sha256 (lower-case hex) of the file's bytes read through the descriptor in 1 MiB chunks. Throws
    /// `source_changed` when the file did not have exactly ``identity``'s size or its mtime moved while it was read.
    public func sha256() throws(PinnedFileError) -> String {
        let hasher = StreamingSHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FileHasher.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var offset: Int64 = 0
        while true {
            let count = pread(descriptor, buffer.baseAddress, FileHasher.chunkSize, off_t(offset))
            if count == 0 { break }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw PinnedFileError(code: .unreadable, path: path, message: "cannot read to hash: \(errnoDescription(code))", errno: code)
            }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            offset += Int64(count)
        }
        guard offset == identity.size, try currentIdentity() == identity else {
            throw PinnedFileError(code: .changed, path: path, message: "the file changed while it was read; it is read again once it settles")
        }
        return hasher.finalize()
    }

    static func kindName(_ kind: mode_t) -> String {
        switch kind {
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFDIR: return "a folder"
        case S_IFLNK: return "a symbolic link"
        default: return "an unknown file type"
        }
    }
}

/// sha256 fed chunk by chunk (the bytes an upload sends, from whichever task streams them), finished as
/// lower-case hex. Safe to share between tasks: every call takes a lock.
public final class StreamingSHA256: @unchecked Sendable {
    private let lock = NSLock()
    private var hasher = SHA256()

    public init() {}

    public func update(_ bytes: UnsafeRawBufferPointer) {
        lock.withLock { hasher.update(bufferPointer: bytes) }
    }

    public func finalize() -> String {
        lock.withLock { FileHasher.hex(hasher.finalize()) }
    }
}
