#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Lists the files of an inbox that a job may take.
///
/// - Walks with `opendir`/`readdir`/`fstatat(AT_SYMLINK_NOFOLLOW)`: symlinks are never followed (neither
///   files nor folders). A symlink whose name passes the filters is returned with `isSymlink == true`
///   (whether it points at a file or a folder) so the caller can reject it with a reason.
/// - Skips dotfiles and dot-folders, and partial names (``InboxNames/isPartial(_:)``).
/// - `include`/`exclude` are `fnmatch` globs tried against the relative path and against the file name;
///   a file matches a pattern if either does. The extension (after the last dot of the last path component)
///   is compared without regard to case, so `*.pdf` takes `SCAN_0001.PDF`; the rest of a pattern is
///   case-sensitive. Empty `include` takes every file; `exclude` wins. Regular files that `include`/`exclude`
///   leave out are listed in ``InboxScan/notMatched`` (they are counted and named, never silently ignored).
///   Patterns do not apply to folders: a folder is descended (when `recursive`) unless it is hidden or excluded
///   by `excluding`.
/// - Sub-folders that cannot be listed become ``ScanProblem``s; only an inbox that cannot be opened throws.
/// - Results are sorted by relative path (byte order), so scans are deterministic.
public struct InboxScanner: Sendable {
    public let inbox: String
    public let rules: MatchRules
    /// Normalised absolute folders never descended into.
    public let excluding: [String]

    /// `excluding`: absolute folders never descended into (the outbox/archive/failed folder when they sit inside the inbox).
    public init(inbox: String, rules: MatchRules, excluding: [String] = []) {
        self.inbox = InboxNames.normalize(inbox)
        self.rules = rules
        self.excluding = excluding.map(InboxNames.normalize)
    }

    /// The files only; problems in sub-folders are dropped (use ``scanReport()`` to see them).
    public func scan() throws -> [InboxFile] {
        try scanReport().files
    }

    /// Whether a file with this relative path passes `include`/`exclude` and the naming rules.
    public func accepts(relativePath: String) -> Bool {
        let name = relativePath.split(separator: "/").last.map(String.init) ?? relativePath
        if relativePath.split(separator: "/").contains(where: { InboxNames.isHidden(String($0)) }) { return false }
        return !InboxNames.isPartial(name) && Walk.matches(rules, relativePath: relativePath, name: name)
    }

    /// The files and the problems met on the way. Throws ``ScanError`` only if the inbox itself cannot be opened.
    public func scanReport() throws -> (files: [InboxFile], problems: [ScanProblem]) {
        let scan = try scanAll()
        return (scan.files, scan.problems)
    }

    /// The files, the problems, and the files `match.include`/`exclude` leave out.
    public func scanAll() throws -> InboxScan {
        let rootFD = open(inbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else {
            let code = errno
            throw ScanError(path: inbox, message: "cannot open the inbox folder: \(errnoDescription(code))", errno: code)
        }
        guard let rootDir = fdopendir(rootFD) else {
            let code = errno
            close(rootFD)
            throw ScanError(path: inbox, message: "cannot list the inbox folder: \(errnoDescription(code))", errno: code)
        }

        // Excluded folders are recognised by path and by (device, inode), so a differently spelled path to the
        // same folder is still skipped. They may not exist (yet); then only the path counts.
        var excludedIDs = Set<FileID>()
        for path in excluding {
            var st = stat()
            if stat(path, &st) == 0 { excludedIDs.insert(FileID(st)) }
        }
        var walk = Walk(rules: rules, excludedIDs: excludedIDs, excludedPaths: Set(excluding))
        walk.list(rootDir, absolute: inbox == "/" ? "" : inbox, relative: "")
        closedir(rootDir)
        // Depth-first over a stack of folder paths: one directory stream open at a time.
        while let folder = walk.pendingFolders.popLast() {
            let fd = open(folder.absolute, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                let code = errno
                if code != ENOENT {  // ENOENT: removed since it was listed, not a problem
                    walk.problems.append(ScanProblem(relativePath: folder.relative,
                                                     message: "cannot open the folder: \(errnoDescription(code))"))
                }
                continue
            }
            guard let dir = fdopendir(fd) else {
                let code = errno
                close(fd)
                walk.problems.append(ScanProblem(relativePath: folder.relative,
                                                 message: "cannot list the folder: \(errnoDescription(code))"))
                continue
            }
            walk.list(dir, absolute: folder.absolute, relative: folder.relative)
            closedir(dir)
        }
        walk.files.sort { InboxNames.bytewiseLess($0.relativePath, $1.relativePath) }
        walk.problems.sort { InboxNames.bytewiseLess($0.relativePath, $1.relativePath) }
        walk.notMatched.sort(by: InboxNames.bytewiseLess)
        return InboxScan(files: walk.files, problems: walk.problems, notMatched: walk.notMatched)
    }
}

/// One walk of an inbox.
public struct InboxScan: Sendable {
    public var files: [InboxFile]
    public var problems: [ScanProblem]
    /// Relative paths of regular files present but left out by `match.include`/`exclude` (sorted).
    public var notMatched: [String]
}

/// A file's identity on disk.
struct FileID: Hashable {
    var device: UInt64
    var inode: UInt64
    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}

/// The mutable state of one scan.
private struct Walk {
    let rules: MatchRules
    let excludedIDs: Set<FileID>
    let excludedPaths: Set<String>
    var files: [InboxFile] = []
    var problems: [ScanProblem] = []
    var notMatched: [String] = []
    var pendingFolders: [(absolute: String, relative: String)] = []

    init(rules: MatchRules, excludedIDs: Set<FileID>, excludedPaths: Set<String>) {
        self.rules = rules
        self.excludedIDs = excludedIDs
        self.excludedPaths = excludedPaths
    }

    /// Reads one open directory stream: files are filtered into `files`, sub-folders (when recursive) pushed
    /// onto `pendingFolders` in reverse listing order so they are popped in listing order.
    mutating func list(_ dir: OpaquePointer, absolute: String, relative: String) {
        let dfd = dirfd(dir)
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        var subfolders: [(absolute: String, relative: String)] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                let code = errno
                if code != 0 {
                    problems.append(ScanProblem(relativePath: relative,
                                                message: "cannot list the folder completely: \(errnoDescription(code))"))
                }
                break
            }
            let cName = (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: CChar.self)
            // ".", ".." and every dotfile or dot-folder.
            if cName.pointee == CChar(UInt8(ascii: ".")) { continue }
            let validName = String(validatingCString: cName)
            let name = validName ?? InboxNames.escapedName(UnsafeRawBufferPointer(start: cName, count: strlen(cName)))
            let entryRelative = relative.isEmpty ? name : relative + "/" + name
            var st = stat()
            guard fstatat(dfd, cName, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                let code = errno
                if code != ENOENT {  // ENOENT: gone since it was listed
                    problems.append(ScanProblem(relativePath: entryRelative,
                                                message: "cannot stat: \(errnoDescription(code))"))
                }
                continue
            }
            let kind = st.st_mode & S_IFMT
            if validName == nil && kind != S_IFREG && kind != S_IFLNK {
                problems.append(ScanProblem(relativePath: entryRelative,
                                            message: "the name is not valid UTF-8; rename it to be processed"))
                continue
            }
            if kind == S_IFDIR {
                guard rules.recursive else { continue }
                let entryAbsolute = absolute + "/" + name
                if excludedPaths.contains(entryAbsolute) || excludedIDs.contains(FileID(st)) { continue }
                subfolders.append((entryAbsolute, entryRelative))
                continue
            }
            if InboxNames.isPartial(name) { continue }
            guard Self.matches(rules, relativePath: entryRelative, name: name) else {
                if kind == S_IFREG { notMatched.append(entryRelative) }
                continue
            }
            switch kind {
            case S_IFREG, S_IFLNK:
                let identity = FileIdentity(st)
                files.append(InboxFile(relativePath: entryRelative, absolutePath: absolute + "/" + name,
                                       size: identity.size, mtimeNanoseconds: identity.mtimeNanoseconds,
                                       isSymlink: kind == S_IFLNK, device: identity.device, inode: identity.inode,
                                       hasInvalidName: validName == nil))
            default:
                problems.append(ScanProblem(relativePath: entryRelative,
                                            message: "not a regular file (\(PinnedFile.kindName(kind))); skipped"))
            }
        }
        pendingFolders.append(contentsOf: subfolders.reversed())
    }

    static func matches(_ rules: MatchRules, relativePath: String, name: String) -> Bool {
        func hit(_ pattern: String) -> Bool {
            InboxNames.globIgnoringExtensionCase(pattern, matches: name) || InboxNames.globIgnoringExtensionCase(pattern, matches: relativePath)
        }
        if !rules.include.isEmpty && !rules.include.contains(where: hit) { return false }
        return !rules.exclude.contains(where: hit)
    }

}
