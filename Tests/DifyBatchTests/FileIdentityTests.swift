import DifyKit
import Foundation
import Logging
import Testing
@testable import DifyBatch
#if canImport(Glibc)
import Glibc
#endif

/// Issue 11: files are what they claim (pinned identity, no-replace disposal, names that fit, one outcome per path).
@Suite struct FileIdentityTests {
    func write(_ path: String, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    // MARK: PinnedFile

    @Test func pinnedFile_refusesASymlink_insteadOfFollowingIt() throws {
        let dir = try TemporaryDirectory()
        try write(dir.file("secret.txt"), "outside the inbox")
        #expect(symlink(dir.file("secret.txt"), dir.file("a.txt")) == 0)
        #expect { _ = try PinnedFile(path: dir.file("a.txt")) } throws: { ($0 as? PinnedFileError)?.code == .symlink }
    }

    @Test func pinnedFile_refusesAFIFO_withoutBlocking() throws {
        let dir = try TemporaryDirectory()
        #expect(mkfifo(dir.file("pipe.txt"), 0o644) == 0)
        // No writer ever opens the FIFO: a blocking open would hang this test forever.
        #expect { _ = try PinnedFile(path: dir.file("pipe.txt")) } throws: { ($0 as? PinnedFileError)?.code == .notRegular }
    }

    @Test func pinnedFile_hashesThroughItsDescriptor_evenAfterThePathIsReplaced() throws {
        let dir = try TemporaryDirectory()
        try write(dir.file("a.txt"), "old bytes")
        let pinned = try PinnedFile(path: dir.file("a.txt"))
        #expect(pinned.isStill())
        try write(dir.file("new.txt"), "NEW BYTES")
        #expect(rename(dir.file("new.txt"), dir.file("a.txt")) == 0)
        #expect(!pinned.isStill(), "the path names another inode now")
        #expect(try pinned.sha256() == FileHasher.sha256(bytes: Array("old bytes".utf8)))
        #expect(FileIdentity.at(dir.file("a.txt"))?.inode != pinned.identity.inode)
    }

    @Test func pinnedFile_sameSizeRewriteInPlace_isNotTheRecordedVersion() throws {
        let dir = try TemporaryDirectory()
        try write(dir.file("a.txt"), "AAAA")
        let first = try PinnedFile(path: dir.file("a.txt"))
        let firstSHA = try first.sha256()
        // Same inode, same size, mtime forced back: only the bytes differ.
        let fd = open(dir.file("a.txt"), O_WRONLY)
        #expect(pwrite(fd, "BBBB", 4, 0) == 4)
        var times = [timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2),  // UTIME_OMIT
                     timespec(tv_sec: Int(first.identity.mtimeNanoseconds / 1_000_000_000), tv_nsec: Int(first.identity.mtimeNanoseconds % 1_000_000_000))]
        #expect(futimens(fd, &times) == 0)
        close(fd)
        let second = try PinnedFile(path: dir.file("a.txt"))
        #expect(second.identity == first.identity, "stat cannot tell them apart")
        #expect(try second.sha256() != firstSHA, "the hash can: the new bytes are never filed under the old sha256")
    }

    // MARK: No-replace disposal

    @Test func noReplaceRename_neverOverwritesAnExistingTarget() throws {
        let dir = try TemporaryDirectory()
        try write(dir.file("a"), "mine")
        try write(dir.file("b"), "theirs")
        #expect(NoReplaceRename.rename(dir.file("a"), dir.file("b")) == EEXIST)
        #expect(read(dir.file("a")) == "mine" && read(dir.file("b")) == "theirs")
        #expect(NoReplaceRename.rename(dir.file("a"), dir.file("c")) == 0)
        #expect(read(dir.file("c")) == "mine" && read(dir.file("a")) == nil)
    }

    @Test func disposer_deleteAfterSuccess_leavesAFileThatReplacedTheProcessedVersion() throws {
        let dir = try TemporaryDirectory()
        try write(dir.file("in/a.txt"), "version 1")
        let processed = try #require(FileIdentity.at(dir.file("in/a.txt")))
        try write(dir.file("in/new"), "version 2")
        #expect(rename(dir.file("in/new"), dir.file("in/a.txt")) == 0)
        let disposer = SourceDisposer(inbox: dir.file("in"), afterSuccess: .delete, archive: dir.file("done"), failedFolder: nil)
        #expect { try disposer.disposeAfterSuccess(relativePath: "a.txt", expected: processed) } throws: {
            ($0 as? FileOperationError)?.errorNumber == ESTALE
        }
        #expect(read(dir.file("in/a.txt")) == "version 2")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("in")) == ["a.txt"], "no temporary file left")
        // The version that was processed is deleted when it is still there.
        let current = try #require(FileIdentity.at(dir.file("in/a.txt")))
        try disposer.disposeAfterSuccess(relativePath: "a.txt", expected: current)
        #expect(read(dir.file("in/a.txt")) == nil)
    }

    @Test func disposer_moveAfterSuccess_neverArchivesAnUnprocessedVersion() throws {
        let dir = try TemporaryDirectory()
        try write(dir.file("in/a.txt"), "version 1")
        let processed = try #require(FileIdentity.at(dir.file("in/a.txt")))
        try write(dir.file("in/new"), "version 2")
        #expect(rename(dir.file("in/new"), dir.file("in/a.txt")) == 0)
        let disposer = SourceDisposer(inbox: dir.file("in"), afterSuccess: .move, archive: dir.file("done"), failedFolder: nil)
        #expect(throws: FileOperationError.self) { try disposer.disposeAfterSuccess(relativePath: "a.txt", expected: processed) }
        #expect(read(dir.file("in/a.txt")) == "version 2")
        #expect(read(dir.file("done/a.txt")) == nil)
    }

    @Test func disposer_twoJobsSharingAnArchive_neverOverwriteEachOther() async throws {
        let dir = try TemporaryDirectory()
        let perJob = 150
        // Every file of both jobs is named `same.txt` in its own folder, all archived to one name at once.
        var expected: Set<String> = []
        for job in ["x", "y"] {
            for index in 0..<perJob {
                let content = "\(job)-\(index)"
                try write(dir.file("\(job)/\(index)/same.txt"), content)
                expected.insert(content)
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for job in ["x", "y"] {
                group.addTask {
                    for index in 0..<perJob {
                        _ = try? SourceDisposer.move("same.txt", from: dir.file("\(job)/\(index)"), into: dir.file("archive"))
                    }
                }
            }
        }
        let archived = try FileManager.default.contentsOfDirectory(atPath: dir.file("archive"))
        #expect(archived.count == 2 * perJob)
        let contents = Set(archived.compactMap { read(dir.file("archive/" + $0)) })
        #expect(contents == expected, "every source is in the archive under its own name: none overwritten")
    }

    // MARK: Outbox names, permissions, one outcome

    @Test func outbox_nameTooLongForTheErrorSuffix_isCutAtACharacterBoundaryWithAHash() throws {
        let dir = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: dir.file("out"))
        let name = String(repeating: "日", count: 80) + ".txt"  // 244 bytes
        #expect(name.utf8.count == 244)
        let fitting = writer.successPath(for: "sub/" + name)
        #expect(fitting == dir.file("out/sub/" + name + ".json"), "249 bytes fit")
        let longer = String(repeating: "日", count: 82)  // 246 bytes: .error.json would make 257
        let errorPath = writer.errorPath(for: "sub/" + longer)
        let errorName = (errorPath as NSString).lastPathComponent
        let tag = String(FileHasher.sha256(bytes: Array(("sub/" + longer).utf8)).prefix(12))
        #expect(errorName.utf8.count <= 255)
        #expect(errorName.hasSuffix("~" + tag + ".error.json"))
        #expect(String(validating: Array(errorName.utf8), as: UTF8.self) != nil, "cut on a character boundary")
        let written = try writer.writeFailure(FailureRecord(status: "rejected", job: "j", source: SourceInfo(path: "sub/" + longer, sha256: nil, bytes: 0),
                                                            errorCode: "empty_file", errorMessage: "empty", attempts: 0, finishedAt: Date()))
        #expect(written == errorPath)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: written))) as? [String: Any])
        #expect((json["source"] as? [String: Any])?["path"] as? String == "sub/" + longer, "source.path names the file in full")
    }

    @Test func outbox_writingOneOutcomeRemovesTheOtherForThatPath() throws {
        let dir = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: dir.file("out"))
        let source = SourceInfo(path: "a.txt", sha256: "x", bytes: 1)
        try writer.writeSuccess(SuccessRecord(job: "j", source: source, appMode: "workflow", outputs: [:], usage: nil, uploadFileID: nil,
                                              workflowRunID: nil, messageID: nil, taskID: nil, attempts: 1, elapsedMilliseconds: 0, finishedAt: Date()))
        try writer.writeFailure(FailureRecord(status: "rejected", job: "j", source: source, errorCode: "c", errorMessage: "m", attempts: 0, finishedAt: Date()))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("out")) == ["a.txt.error.json"])
        try writer.writeSuccess(SuccessRecord(job: "j", source: source, appMode: "workflow", outputs: [:], usage: nil, uploadFileID: nil,
                                              workflowRunID: nil, messageID: nil, taskID: nil, attempts: 1, elapsedMilliseconds: 0, finishedAt: Date()))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("out")) == ["a.txt.json"])
    }

    @Test func atomicFile_usesShortTemporaryNames_andLeftoversAreRemoved() throws {
        let dir = try TemporaryDirectory()
        let name = String(repeating: "日", count: 81) + ".json"  // 248 bytes: `.<name>.tmp-…` would not fit
        try AtomicFile.write(Data("x".utf8), to: dir.file("out/" + name))
        #expect(read(dir.file("out/" + name)) == "x")
        try write(dir.file("out/deep/.dify-batch-abc123.tmp"), "partial")
        try write(dir.file("out/.dify-batch-zz.tmp"), "partial")
        try write(dir.file("out/keep.tmp"), "not ours")
        #expect(AtomicFile.removeTemporaryFiles(under: dir.file("out")) == 2)
        #expect(read(dir.file("out/keep.tmp")) == "not ours")
        #expect(read(dir.file("out/deep/.dify-batch-abc123.tmp")) == nil)
    }

    // MARK: Names

    @Test func pathKey_keepsNFCAndNFDNamesApart_whereStringEqualityFoldsThem() {
        let nfc = "caf\u{E9}.txt", nfd = "cafe\u{301}.txt"
        #expect(nfc == nfd, "Swift String equality folds normalization")
        #expect(PathKey(nfc) != PathKey(nfd))
        #expect(Set([PathKey(nfc), PathKey(nfd)]).count == 2)
    }

    @Test func consoleLog_escapesControlCharactersOfFileNames() {
        let line = ConsoleLogHandler.format(time: Date(timeIntervalSince1970: 0), level: .info, message: "rejected a\rb\u{1B}[31m.txt",
                                            metadata: ["path": "a\rb\u{1B}[31m.txt"])
        #expect(!line.contains("\r") && !line.contains("\u{1B}"))
        #expect(line.contains("a\\rb\\x1B[31m.txt"))
    }

    // MARK: Ledger

    @Test func ledgerVersion1_migratesToTheFreshSchema_keepingItsRows() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("old.sqlite")
        try runSQLite(path, try ledgerSchemaVersion1SQL)
        try runSQLite(path, """
            PRAGMA user_version = 1;
            INSERT INTO jobs (id, name, spec_path, spec_hash, base_url, dify_user, inbox, outbox, created_at, updated_at)
                VALUES (1, 'docs', '/j.yaml', 'h', 'http://x', 'u', '/in', '/out', 1, 1);
            INSERT INTO documents (id, job_id, path, sha256, size, mtime_ns, state, created_at, updated_at)
                VALUES (7, 1, 'a.txt', 'abc', 3, 42, 'succeeded', 1, 1);
            """)
        let ledger = try SQLiteLedger(path: path)
        let fresh = try SchemaDescription.of(sql: LedgerSchema.sql)
        #expect(try ledger.schemaDescription() == fresh)
        let kept = try #require(try await ledger.document(id: 7))
        #expect(kept.sha256 == "abc" && kept.size == 3 && kept.mtimeNanoseconds == 42 && kept.device == nil && kept.inode == nil)
        // An old row without device/inode still matches its file by size and mtime.
        #expect(kept.identity.matches(FileIdentity(device: 2049, inode: 5, size: 3, mtimeNanoseconds: 42)))
        let known = try await ledger.knownFiles(jobID: 1)
        #expect(known["a.txt"]?.id == 7)
    }

    @Test func ledger_recordsTheIdentityOfEachVersion() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await ledger.register(JobRegistration(name: "j", specPath: "/s", specHash: "h", baseURL: "http://x", difyUser: "u", inbox: "/in", outbox: "/out"))
        let big = UInt64.max - 5  // device numbers may use the top bit
        let document = try await ledger.insert(NewDocument(jobID: job.id, path: "a.txt", sha256: "s", size: 1, mtimeNanoseconds: 2, device: big, inode: 99))
        #expect(document.device == big && document.inode == 99)
        let moved = try await ledger.update(document.id, in: .pending, [.fileIdentity(FileIdentity(device: 1, inode: 2, size: 3, mtimeNanoseconds: 4))])
        #expect(moved.identity == FileIdentity(device: 1, inode: 2, size: 3, mtimeNanoseconds: 4))
        #expect(try await ledger.knownFiles(jobID: job.id)["a.txt"]?.identity == moved.identity)
    }
}
