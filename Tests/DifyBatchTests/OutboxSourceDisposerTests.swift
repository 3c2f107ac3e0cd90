import Foundation
import Testing
@testable import DifyBatch
#if canImport(Glibc)
import Glibc
#endif

@Suite("Source disposer")
struct OutboxSourceDisposerTests {
    let folder: TemporaryDirectory
    var inbox: String { folder.file("in") }
    var archive: String { folder.file("done") }
    var failed: String { folder.file("failed") }

    init() throws {
        folder = try TemporaryDirectory()
        try folder.makeFolder("in")
    }

    func disposer(_ afterSuccess: JobSpec.AfterSuccess, failedFolder: String? = nil) -> SourceDisposer {
        SourceDisposer(inbox: inbox, afterSuccess: afterSuccess, archive: archive, failedFolder: failedFolder)
    }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    func contents(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    @Test func moveKeepsTheRelativePathUnderTheArchive() throws {
        try folder.write("in/2026/Nov ü/a b.pdf", "pdf bytes")
        let moved = try disposer(.move).disposeAfterSuccess(relativePath: "2026/Nov ü/a b.pdf")
        #expect(moved == archive + "/2026/Nov ü/a b.pdf")
        #expect(!exists(folder.file("in/2026/Nov ü/a b.pdf")))
        #expect(try contents(archive + "/2026/Nov ü/a b.pdf") == "pdf bytes")
    }

    @Test func moveAddsNumberedSuffixesWhenTheNameIsTaken() throws {
        let disposer = disposer(.move)
        try folder.write("done/a.pdf", "old 1")
        try folder.write("done/a (2).pdf", "old 2")
        try folder.write("in/a.pdf", "new")
        #expect(try disposer.disposeAfterSuccess(relativePath: "a.pdf") == archive + "/a (3).pdf")
        try folder.write("in/a.pdf", "newer")
        #expect(try disposer.disposeAfterSuccess(relativePath: "a.pdf") == archive + "/a (4).pdf")
        #expect(try contents(archive + "/a.pdf") == "old 1")
        #expect(try contents(archive + "/a (2).pdf") == "old 2")
        #expect(try contents(archive + "/a (3).pdf") == "new")
        #expect(try contents(archive + "/a (4).pdf") == "newer")

        try folder.write("done/README", "x")
        try folder.write("in/README", "y")
        #expect(try disposer.disposeAfterSuccess(relativePath: "README") == archive + "/README (2)")
        try folder.write("done/.env", "x")
        try folder.write("in/.env", "y")
        #expect(try disposer.disposeAfterSuccess(relativePath: ".env") == archive + "/.env (2)")
        try folder.write("done/x.tar.gz", "x")
        try folder.write("in/x.tar.gz", "y")
        #expect(try disposer.disposeAfterSuccess(relativePath: "x.tar.gz") == archive + "/x.tar (2).gz")
    }

    @Test func keepLeavesTheSourceAlone() throws {
        let source = try folder.write("in/a.pdf", "x")
        #expect(try disposer(.keep).disposeAfterSuccess(relativePath: "a.pdf") == nil)
        #expect(try contents(source) == "x")
        #expect(!exists(archive))
    }

    @Test func deleteUnlinksTheSourceAndToleratesItBeingGone() throws {
        let source = try folder.write("in/sub/a.pdf", "x")
        #expect(try disposer(.delete).disposeAfterSuccess(relativePath: "sub/a.pdf") == nil)
        #expect(!exists(source))
        #expect(try disposer(.delete).disposeAfterSuccess(relativePath: "sub/a.pdf") == nil)
        #expect(!exists(archive))
    }

    @Test func movingAMissingSourceThrows() throws {
        #expect(throws: FileOperationError.self) { try disposer(.move).disposeAfterSuccess(relativePath: "nope.pdf") }
    }

    @Test(arguments: [JobSpec.AfterSuccess.move, .keep, .delete])
    func failureWithoutFailedFolderNeverTouchesTheSource(afterSuccess: JobSpec.AfterSuccess) throws {
        let source = try folder.write("in/bad.pdf", "bad")
        #expect(try disposer(afterSuccess).disposeAfterFailure(relativePath: "bad.pdf") == nil)
        #expect(try contents(source) == "bad")
        #expect(!exists(archive))
    }

    @Test(arguments: [JobSpec.AfterSuccess.move, .keep, .delete])
    func failureWithFailedFolderMovesTheSourceThere(afterSuccess: JobSpec.AfterSuccess) throws {
        try folder.write("in/x/bad.pdf", "bad")
        try folder.write("failed/x/bad.pdf", "earlier")
        let moved = try disposer(afterSuccess, failedFolder: failed).disposeAfterFailure(relativePath: "x/bad.pdf")
        #expect(moved == failed + "/x/bad (2).pdf")
        #expect(try contents(failed + "/x/bad (2).pdf") == "bad")
        #expect(try contents(failed + "/x/bad.pdf") == "earlier")
        #expect(!exists(folder.file("in/x/bad.pdf")))
        #expect(!exists(archive))
    }

    @Test(arguments: ["../outside.pdf", "/etc/hosts", ""])
    func pathsOutsideTheInboxAreRefused(path: String) throws {
        try folder.write("outside.pdf", "precious")
        for afterSuccess in JobSpec.AfterSuccess.allCases {
            #expect(throws: FileOperationError.self) { try disposer(afterSuccess).disposeAfterSuccess(relativePath: path) }
        }
        #expect(throws: FileOperationError.self) {
            try disposer(.delete, failedFolder: failed).disposeAfterFailure(relativePath: path)
        }
        #expect(try contents(folder.file("outside.pdf")) == "precious")
    }

    static var otherFileSystem: String? {
        var shm = stat(), tmp = stat()
        let base = NSTemporaryDirectory()
        guard stat("/dev/shm", &shm) == 0, stat(base, &tmp) == 0, shm.st_dev != tmp.st_dev,
              access("/dev/shm", W_OK) == 0 else { return nil }
        return "/dev/shm"
    }

    @Test(.enabled(if: otherFileSystem != nil, "needs /dev/shm on another file system"))
    func moveAcrossFileSystemsCopiesAndRemovesTheSource() throws {
        let other = (Self.otherFileSystem! as NSString).appendingPathComponent("dify-batch-tests-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: other) }
        let payload = String(repeating: "0123456789", count: 20_000)  // > one copy buffer
        let source = try folder.write("in/big/file.bin", payload)
        chmod(source, 0o600)
        let disposer = SourceDisposer(inbox: inbox, afterSuccess: .move, archive: other, failedFolder: nil)
        let moved = try disposer.disposeAfterSuccess(relativePath: "big/file.bin")
        #expect(moved == other + "/big/file.bin")
        #expect(!exists(source))
        #expect(try contents(other + "/big/file.bin") == payload)
        var status = stat()
        #expect(stat(other + "/big/file.bin", &status) == 0 && status.st_mode & 0o777 == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: other + "/big") == ["file.bin"])
    }
}
