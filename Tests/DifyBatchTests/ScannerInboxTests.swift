import Foundation
import Testing
@testable import DifyBatch
#if canImport(Glibc)
import Glibc
#endif

/// Match rules for scanner tests.
func scannerRules(include: [String] = [], exclude: [String] = [], recursive: Bool = true,
                  settle: Duration = .seconds(2)) -> MatchRules {
    MatchRules(include: include, exclude: exclude, recursive: recursive, settle: settle, maxSize: nil)
}

/// Creates `relative` (and its folders) under `root` with `contents`.
@discardableResult
func scannerWrite(_ root: String, _ relative: String, _ contents: String = "x") throws -> String {
    let path = root + "/" + relative
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try Data(contents.utf8).write(to: URL(fileURLWithPath: path))
    return path
}

@Suite struct ScannerInboxTests {
    @Test func listsNestedFilesWithSpacesAndNonASCIINamesSortedWithSizesAndMtimes() throws {
        let dir = try TemporaryDirectory()
        try scannerWrite(dir.path, "top.txt", "12345")
        try scannerWrite(dir.path, "a b/ü.txt", "hé")
        try scannerWrite(dir.path, "a b/c d/日本 語.pdf", "")
        try dir.makeFolder("empty folder")

        let files = try InboxScanner(inbox: dir.path, rules: scannerRules()).scan()

        #expect(files.map(\.relativePath) == ["a b/c d/日本 語.pdf", "a b/ü.txt", "top.txt"])
        let inbox = InboxNames.normalize(dir.path)
        #expect(files.map(\.absolutePath) == files.map { inbox + "/" + $0.relativePath })
        #expect(files.map(\.size) == [0, 3, 5])
        #expect(files.allSatisfy { !$0.isSymlink })
        var st = stat()
        #expect(lstat(dir.path + "/top.txt", &st) == 0)
        #expect(files[2].mtimeNanoseconds == Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
        #expect(files[2].name == "top.txt")
        #expect(files[0].name == "日本 語.pdf")
    }

    @Test func ignoresDotfilesDotFoldersAndPartialDownloads() throws {
        let dir = try TemporaryDirectory()
        for name in [".hidden", ".git/config.txt", "sub/.DS_Store", ".cache/deep/x.pdf",
                     "movie.mp4.part", "data.tmp", "sub/file.pdf.crdownload", "~$report.docx",
                     "keep.pdf", "sub/keep.txt", "sub/part.partial", "tmp/inside.txt"] {
            try scannerWrite(dir.path, name)
        }
        let files = try InboxScanner(inbox: dir.path, rules: scannerRules()).scan()
        #expect(files.map(\.relativePath) == ["keep.pdf", "sub/keep.txt", "sub/part.partial", "tmp/inside.txt"])
    }

    @Test func includeMatchesTheFileNameOrTheRelativePath() throws {
        let dir = try TemporaryDirectory()
        for name in ["a.pdf", "deep/er/b.pdf", "c.txt", "reports/d.txt", "other/reports/e.txt", "deep/notes.md"] {
            try scannerWrite(dir.path, name)
        }
        // "*.pdf" matches names at any depth; "reports/*.txt" only matches a relative path; "notes.md" a bare name.
        let scanner = InboxScanner(inbox: dir.path, rules: scannerRules(include: ["*.pdf", "reports/*.txt", "notes.md"]))
        #expect(try scanner.scan().map(\.relativePath) == ["a.pdf", "deep/er/b.pdf", "deep/notes.md", "reports/d.txt"])
    }

    @Test func emptyIncludeTakesEveryFileAndExcludeWinsOverInclude() throws {
        let dir = try TemporaryDirectory()
        for name in ["a.pdf", "drafts/b.pdf", "secret-c.pdf", "d.txt", "x/drafts/e.pdf"] {
            try scannerWrite(dir.path, name)
        }
        let all = try InboxScanner(inbox: dir.path, rules: scannerRules()).scan()
        #expect(all.count == 5)

        // "drafts/*" hits by relative path (anchored at its start, so not "x/drafts/e.pdf"); "secret-*" by name.
        let scanner = InboxScanner(inbox: dir.path, rules: scannerRules(include: ["*.pdf"], exclude: ["drafts/*", "secret-*"]))
        #expect(try scanner.scan().map(\.relativePath) == ["a.pdf", "x/drafts/e.pdf"])
        #expect(scanner.accepts(relativePath: "a.pdf"))
        #expect(!scanner.accepts(relativePath: "drafts/z.pdf"))
        #expect(!scanner.accepts(relativePath: "d.txt"))
        #expect(!scanner.accepts(relativePath: ".hidden/z.pdf"))
        #expect(!scanner.accepts(relativePath: "z.pdf.part"))
    }

    @Test func nonRecursiveScanListsOnlyTopLevelFiles() throws {
        let dir = try TemporaryDirectory()
        for name in ["a.txt", "sub/b.txt", "sub/deeper/c.txt"] { try scannerWrite(dir.path, name) }
        let files = try InboxScanner(inbox: dir.path, rules: scannerRules(recursive: false)).scan()
        #expect(files.map(\.relativePath) == ["a.txt"])
    }

    @Test func symlinkedFilesAndFoldersAreReportedButNeverFollowed() throws {
        let dir = try TemporaryDirectory()
        let outside = try TemporaryDirectory()
        try scannerWrite(outside.path, "target.txt", "outside contents")
        try scannerWrite(outside.path, "folder/inner.txt")
        let inbox = dir.path + "/inbox"
        try scannerWrite(inbox, "real.txt")
        try FileManager.default.createSymbolicLink(atPath: inbox + "/link.txt", withDestinationPath: outside.path + "/target.txt")
        try FileManager.default.createSymbolicLink(atPath: inbox + "/linked folder", withDestinationPath: outside.path + "/folder")
        try FileManager.default.createSymbolicLink(atPath: inbox + "/dangling.txt", withDestinationPath: outside.path + "/missing")

        let files = try InboxScanner(inbox: inbox, rules: scannerRules()).scan()

        #expect(files.map(\.relativePath) == ["dangling.txt", "link.txt", "linked folder", "real.txt"])
        #expect(files.map(\.isSymlink) == [true, true, true, false])
        #expect(!files.contains { $0.relativePath.contains("inner.txt") })
        // lstat size: the link itself, not the 16-byte target file.
        let link = try #require(files.first { $0.relativePath == "link.txt" })
        #expect(link.size == Int64((outside.path + "/target.txt").utf8.count))
    }

    @Test func excludedFoldersAreNeverDescendedIntoHoweverTheirPathIsSpelled() throws {
        let dir = try TemporaryDirectory()
        for name in ["doc.txt", "out/result.json", "done/old.txt", "failed/bad.txt", "sub/out/kept.txt"] {
            try scannerWrite(dir.path, name)
        }
        try FileManager.default.createSymbolicLink(atPath: dir.path + "-alias", withDestinationPath: dir.path)
        defer { try? FileManager.default.removeItem(atPath: dir.path + "-alias") }

        let scanner = InboxScanner(inbox: dir.path + "/", rules: scannerRules(), excluding: [
            dir.path + "/out",              // exact
            dir.path + "/./done/",          // lexically different
            dir.path + "-alias/failed",     // through a symlink: recognised by device and inode
            "/nonexistent/folder",
        ])
        #expect(try scanner.scan().map(\.relativePath) == ["doc.txt", "sub/out/kept.txt"])
    }

    @Test func missingInboxThrowsAnErrorNamingTheFolderAndTheReason() throws {
        let dir = try TemporaryDirectory()
        let missing = dir.path + "/no such inbox"
        let error = #expect(throws: ScanError.self) {
            try InboxScanner(inbox: missing, rules: scannerRules()).scan()
        }
        #expect(error?.path == missing)
        #expect(error?.errno == ENOENT)
        #expect(error?.description.contains(missing) == true)
        #expect(error?.description.contains("No such file or directory") == true)

        try scannerWrite(dir.path, "plain.txt")
        let notFolder = #expect(throws: ScanError.self) {
            try InboxScanner(inbox: dir.path + "/plain.txt", rules: scannerRules()).scan()
        }
        #expect(notFolder?.errno == ENOTDIR)
    }

    @Test func oddEntriesBecomeProblemsWhileTheRestOfTheScanGoesOn() throws {
        let dir = try TemporaryDirectory()
        try scannerWrite(dir.path, "a.txt")
        try scannerWrite(dir.path, "z/b.txt")
        #expect(mkfifo(dir.path + "/pipe", 0o644) == 0)
        // A name that is not UTF-8 (Latin-1 "é").
        var badPath = Array((dir.path + "/caf").utf8)
        badPath.append(0xE9)
        badPath.append(contentsOf: Array(".txt".utf8))
        badPath.append(0)
        let fd = badPath.withUnsafeBufferPointer { open(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), O_CREAT | O_WRONLY, 0o644) }
        #expect(fd >= 0)
        close(fd)

        let report = try InboxScanner(inbox: dir.path, rules: scannerRules()).scanReport()

        // The non-UTF-8 name is listed (escaped, flagged) so the job records a rejection for it.
        #expect(report.files.map(\.relativePath) == ["a.txt", "caf\\xE9.txt", "z/b.txt"])
        #expect(report.files.map(\.hasInvalidName) == [false, true, false])
        #expect(report.problems.count == 1)
        #expect(report.problems.contains { $0.relativePath == "pipe" && $0.message.contains("FIFO") })
    }

    @Test(.enabled(if: geteuid() != 0, "root reads every folder"))
    func unreadableSubFolderIsAProblemNotAnAbortedScan() throws {
        let dir = try TemporaryDirectory()
        try scannerWrite(dir.path, "a.txt")
        try scannerWrite(dir.path, "locked/secret.txt")
        try scannerWrite(dir.path, "z/b.txt")
        #expect(chmod(dir.path + "/locked", 0) == 0)
        defer { chmod(dir.path + "/locked", 0o755) }

        let report = try InboxScanner(inbox: dir.path, rules: scannerRules()).scanReport()

        #expect(report.files.map(\.relativePath) == ["a.txt", "z/b.txt"])
        #expect(report.problems == [ScanProblem(relativePath: "locked", message: "cannot open the folder: Permission denied")])
    }

    /// Speed lives in the benchmark (BENCHMARKS.md), not here.
    @Test func scansTwoThousandFilesInTwentyFolders() throws {
        let dir = try TemporaryDirectory()
        for folder in 0..<20 {
            try dir.makeFolder("f\(folder)")
            for file in 0..<100 {
                let fd = open(dir.path + "/f\(folder)/doc \(file).pdf", O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
                close(fd)
            }
        }
        let files = try InboxScanner(inbox: dir.path, rules: scannerRules(include: ["*.pdf"], exclude: ["*.tmp"])).scan()
        #expect(files.count == 2000)
        #expect(Set(files.map(\.relativePath)).count == 2000)
    }
}
