import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Linux inotify watch of an inbox (recursive: adds watches for new sub-folders as they appear).
///
/// `changes()` yields `()` whenever something under the folder was created, moved in or out, closed after
/// writing, deleted, modified or had its attributes (mtime) changed. Events are coalesced: a burst of events
/// becomes one element, and the producer never waits for the consumer. A consumer rescans the inbox on each
/// element. Events about names the scanner ignores (dotfiles, partial downloads) are dropped, and so are
/// dot-folders and `excluding` folders (not watched).
///
/// Each `changes()` stream owns its inotify descriptor and closes it when the stream ends (the consuming task is
/// cancelled, or the stream is dropped). Reading happens on a private `DispatchQueue` driven by a read source on
/// the non-blocking descriptor; no cooperative thread ever blocks.
public final class InboxWatcher: Sendable {
    public let directory: String
    public let recursive: Bool
    public let excluding: [String]
    #if os(Linux)
    /// The descriptor made by `init` (so `init` can report errors), handed to the first `changes()` call.
    private let prepared: Mutex<PreparedWatch?>
    #endif

    /// Throws a ``ScanError`` if inotify is unavailable (or out of instances/watches) or the folder cannot be watched.
    public init(directory: String, recursive: Bool, excluding: [String] = []) throws {
        self.directory = InboxNames.normalize(directory)
        self.recursive = recursive
        self.excluding = excluding.map(InboxNames.normalize)
        #if os(Linux)
        let watch = try PreparedWatch(directory: self.directory, recursive: recursive, excluding: Set(self.excluding))
        prepared = Mutex(watch)
        #else
        throw ScanError(path: directory, message: "watching folders needs Linux inotify, which this platform does not have")
        #endif
    }

    #if os(Linux)
    deinit {
        // A descriptor never handed to a stream.
        prepared.withLock { $0?.close() }
    }
    #endif

    /// An async sequence that yields (coalesced, never blocks the producer) whenever anything under the directory
    /// changed. Ends when the consuming task is cancelled. If a second call cannot set up inotify (e.g. the
    /// per-user instance limit), its stream ends at once.
    public func changes() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        #if os(Linux)
        let taken = prepared.withLock { value -> PreparedWatch? in
            defer { value = nil }
            return value
        }
        guard let watch = taken ?? (try? PreparedWatch(directory: directory, recursive: recursive, excluding: Set(excluding))) else {
            continuation.finish()
            return stream
        }
        watch.start(continuation)
        #else
        continuation.finish()
        #endif
        return stream
    }
}

#if os(Linux)
extension InboxWatcher {
    /// Whether an inotify event (other than overflow/ignored) is worth a rescan: not about a dotfile or dot-folder,
    /// nor about a partial download (`x.part` being written); the rename to the final name does matter.
    static func eventMatters(mask: UInt32, name: String) -> Bool {
        if name.isEmpty { return true }  // the watched folder itself
        if InboxNames.isHidden(name) { return false }
        let isFolder = mask & UInt32(IN_ISDIR) != 0
        return isFolder || !InboxNames.isPartial(name)
    }
}

/// One inotify descriptor with its watch table. After `start`, only the private queue touches the descriptor.
private final class PreparedWatch: Sendable {
    let fd: Int32
    let root: String
    let recursive: Bool
    let excluding: Set<String>
    /// Watch descriptor → absolute folder path.
    let folders = Mutex<[Int32: String]>([:])
    let queue = DispatchQueue(label: "dify-batch.inbox-watcher")
    /// The read source while the stream runs (dispatch sources are thread-safe; the mutex only guards the slot).
    let source = Mutex<(any DispatchSourceRead)?>(nil)

    static let mask: UInt32 = UInt32(IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_DELETE
        | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

    init(directory: String, recursive: Bool, excluding: Set<String>) throws {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else {
            let code = errno
            let hint = code == EMFILE ? " (the per-user inotify instance limit, fs.inotify.max_user_instances, is reached)"
                : code == ENOSYS ? " (this kernel has no inotify)" : ""
            throw ScanError(path: directory, message: "cannot watch the folder: inotify is unavailable: \(errnoDescription(code))\(hint)", errno: code)
        }
        self.fd = fd
        self.root = directory
        self.recursive = recursive
        self.excluding = excluding
        let wd = inotify_add_watch(fd, directory, Self.mask | UInt32(IN_ONLYDIR))
        guard wd >= 0 else {
            let code = errno
            Glibc.close(fd)
            let hint = code == ENOSPC ? " (the inotify watch limit, fs.inotify.max_user_watches, is reached)" : ""
            throw ScanError(path: directory, message: "cannot watch the folder: \(errnoDescription(code))\(hint)", errno: code)
        }
        folders.withLock { $0[wd] = directory }
        if recursive { addTree(directory) }
    }

    func close() { Glibc.close(fd) }

    /// Watches every non-hidden, non-excluded sub-folder of `folder` (not following symlinks). Watching a folder
    /// twice is harmless (inotify returns the same descriptor).
    func addTree(_ folder: String) {
        var stack = [folder]
        while let current = stack.popLast() {
            guard let dir = opendir(current) else { continue }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if InboxNames.isHidden(name) { continue }
                let type = entry.pointee.d_type
                if type != UInt8(DT_DIR) && type != UInt8(DT_UNKNOWN) { continue }
                let path = current + "/" + name
                if let wd = addFolder(path) { _ = wd; stack.append(path) }
            }
        }
    }

    /// Adds a watch for one folder (never through a symlink); nil if it is not a folder, is excluded or vanished.
    @discardableResult
    func addFolder(_ path: String) -> Int32? {
        if excluding.contains(path) { return nil }
        let wd = inotify_add_watch(fd, path, Self.mask | UInt32(IN_ONLYDIR) | UInt32(IN_DONT_FOLLOW))
        guard wd >= 0 else { return nil }
        folders.withLock { $0[wd] = path }
        return wd
    }

    /// Removes the watches of `path` and every folder under it.
    func removeTree(_ path: String) {
        let prefix = path + "/"
        let gone = folders.withLock { table -> [Int32] in
            let wds = table.filter { $0.value == path || $0.value.hasPrefix(prefix) }.map(\.key)
            for wd in wds { table.removeValue(forKey: wd) }
            return wds
        }
        for wd in gone { inotify_rm_watch(fd, wd) }
    }

    func start(_ continuation: AsyncStream<Void>.Continuation) {
        source.withLock { slot in
            let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
            source.setEventHandler { [self] in
                if drain() { continuation.yield() }
            }
            source.setCancelHandler { [self] in
                close()
                continuation.finish()
            }
            source.resume()
            slot = source
        }
        // Cancelling the source runs the cancel handler on the queue, which closes the descriptor.
        continuation.onTermination = { [self] _ in
            source.withLock { slot in
                slot?.cancel()
                slot = nil
            }
        }
    }

    /// Reads every pending event; adds watches for new folders before returning. True if any event matters.
    private func drain() -> Bool {
        let capacity = 64 * 1024
        var relevant = false
        return withUnsafeTemporaryAllocation(byteCount: capacity, alignment: 8) { buffer -> Bool in
            while true {
                let count = read(fd, buffer.baseAddress, capacity)
                if count < 0 {
                    if errno == EINTR { continue }
                    break  // EAGAIN: drained
                }
                if count == 0 { break }
                var offset = 0
                while offset + 16 <= count {
                    let wd = buffer.load(fromByteOffset: offset, as: Int32.self)
                    let mask = buffer.load(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(buffer.load(fromByteOffset: offset + 12, as: UInt32.self))
                    let nameBytes = UnsafeRawBufferPointer(rebasing: buffer[(offset + 16)..<min(offset + 16 + length, count)])
                    let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
                    offset += 16 + length
                    if handle(wd: wd, mask: mask, name: name) { relevant = true }
                }
            }
            return relevant
        }
    }

    private func handle(wd: Int32, mask: UInt32, name: String) -> Bool {
        if mask & UInt32(IN_Q_OVERFLOW) != 0 {
            // Events were lost, maybe folder creations: re-walk the tree and report a change.
            if recursive { addTree(root) }
            return true
        }
        if mask & UInt32(IN_IGNORED) != 0 {
            folders.withLock { _ = $0.removeValue(forKey: wd) }
            return false
        }
        guard InboxWatcher.eventMatters(mask: mask, name: name) else { return false }
        let isFolder = mask & UInt32(IN_ISDIR) != 0
        if isFolder && mask & UInt32(IN_MOVED_FROM) != 0, let parent = folders.withLock({ $0[wd] }) {
            // Moved away (out of the inbox, or to another name in it, which IN_MOVED_TO re-adds): stop watching
            // its subtree so stale paths never name new sub-folders.
            removeTree(parent + "/" + name)
        }
        if isFolder && recursive && mask & UInt32(IN_CREATE | IN_MOVED_TO) != 0,
           let parent = folders.withLock({ $0[wd] }) {
            let path = parent + "/" + name
            // Files (or folders) may already be inside: watch the whole new subtree.
            if addFolder(path) != nil { addTree(path) }
        }
        return true
    }
}
#endif
