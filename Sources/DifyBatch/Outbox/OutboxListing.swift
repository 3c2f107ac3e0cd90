#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What one scan learns of the outbox's folders, one `readdir` pass each (issue 14).
///
/// A new document's outbox files are looked at before it is recorded (``OutboxTargets/problem(relativePath:listing:)``:
/// what is at `<name>.json` and `<name>.error.json` and at their folder; ``OutboxExistingResult``: whether there is
/// a result to read): five look-ups per file. A scan that records many files in one folder answers them from one
/// listing of that folder instead. A folder is listed only when the scan expects enough look-ups in it to pay for the
/// pass: at least ``minimumLookups``, and a folder of at most ``bytesPerLookup`` bytes (its `st_size`) per expected
/// look-up, so a large outbox folder is not read whole for a few new files (`watch`).
///
/// A listing is a snapshot taken at the first look-up in its folder. Only this process writes result files while it
/// holds the inbox, and it writes only regular files, so a name that appears later is a result written since (not an
/// obstacle); the processor checks the outbox again, on the file system, before anything is uploaded. A name the
/// listing cannot type (`DT_UNKNOWN`), a folder it cannot read, and a symlink to follow are asked of the file system.
struct OutboxListing {
    /// What a look-up found.
    enum Answer: Equatable {
        /// Nothing at the path.
        case absent
        /// Something whose type bits (`S_IFREG`, `S_IFDIR`, `S_IFLNK`, ...) are these, as `lstat` gives them.
        case present(mode_t)
        /// The listing cannot say: ask the file system.
        case unknown
    }

    /// Expected look-ups per absolute folder.
    private var expected: [String: Int]
    /// Absolute folder → its entries (name bytes → type bits), `nil` when it is not listed (look-ups go to the file
    /// system); an empty listing for a folder that is not there.
    private var folders: [String: [PathKey: mode_t]?] = [:]
    /// Folders listed, for tests and the log.
    private(set) var listedCount = 0

    static let minimumLookups = 4
    static let bytesPerLookup = 1024

    /// No listing: every look-up goes to the file system.
    static let none = OutboxListing(expected: [:])

    init(expected: [String: Int]) {
        self.expected = expected
    }

    /// Plans a scan's listings: each new file's outbox folder (`writer`'s folder of `relativePath`) and every folder
    /// above it up to the outbox are looked at once per file.
    init(writer: OutboxWriter, newPaths: some Sequence<String>) {
        var expected: [String: Int] = [:]
        let root = writer.outbox.hasSuffix("/") && writer.outbox.count > 1 ? String(writer.outbox.dropLast()) : writer.outbox
        for relativePath in newPaths {
            var folder = PathText.folder(of: writer.successPath(for: relativePath))
            // The file's own folder (its outbox files), then each folder above it (the folder walk's look-ups).
            while folder.utf8.count >= root.utf8.count, !folder.isEmpty {
                expected[folder, default: 0] += 1
                if folder == root || folder == "/" { break }
                folder = PathText.folder(of: folder)
            }
        }
        self.init(expected: expected)
    }

    /// The type of what is at `path`, as `lstat` gives it, from the listing of its folder.
    mutating func lookup(_ path: String) -> Answer {
        let folder = PathText.folder(of: path)
        let name = PathText.name(of: path)
        guard !folder.isEmpty, !name.isEmpty, name != ".", name != ".." else { return .unknown }
        if folders[folder] == nil { folders[folder] = list(folder) }
        guard let entries = folders[folder] ?? nil else { return .unknown }
        guard let mode = entries[PathKey(name)] else { return .absent }
        return mode == 0 ? .unknown : .present(mode)
    }

    /// The entries of `folder` when the expected look-ups pay for reading it; nil when they do not or it cannot be read.
    private mutating func list(_ folder: String) -> [PathKey: mode_t]? {
        let lookups = expected[folder] ?? 0
        guard lookups >= Self.minimumLookups else { return nil }
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            // Nothing there (or a dangling symlink, or a file in the way): nothing is in it either.
            return errno == ENOENT || errno == ENOTDIR ? [:] : nil
        }
        var status = stat()
        guard fstat(fd, &status) == 0, Int(status.st_size) <= lookups * Self.bytesPerLookup,
              let dir = fdopendir(fd) else {
            close(fd)
            return nil
        }
        defer { closedir(dir) }
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        var entries: [PathKey: mode_t] = [:]
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { return nil }
                break
            }
            let cName = (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: UInt8.self)
            let bytes = Array(UnsafeBufferPointer(start: cName, count: strlen(UnsafeRawPointer(cName).assumingMemoryBound(to: CChar.self))))
            if bytes == [UInt8(ascii: ".")] || bytes == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            // DT_* << 12 is the S_IF* type (0 for DT_UNKNOWN: asked of the file system).
            entries[PathKey(bytes: bytes)] = mode_t(entry.pointee.d_type) << 12
        }
        listedCount += 1
        return entries
    }
}
