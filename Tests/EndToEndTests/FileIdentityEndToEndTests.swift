import DifyBatch
import DifySimulator
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 11's measured attacks against a real pipeline and simulator: files replaced, rewritten or swapped for a
/// symlink or FIFO while queued or in flight; NFC/NFD twins; names too long for their outbox files; an inbox that
/// disappears under `watch`. Bytes are checked at the server: what was run is what the ledger recorded.
@Suite(.serialized) struct FileIdentityEndToEndTests {
    static func sha(_ text: String) -> String { FileHasher.sha256(bytes: Array(text.utf8)) }

    /// Replaces `path` atomically (new inode) with `content`, the way `mv new path` does.
    static func replace(_ path: String, with content: String) throws {
        let temporary = (path as NSString).deletingLastPathComponent + "/.replacement"
        try Data(content.utf8).write(to: URL(fileURLWithPath: temporary))
        #expect(rename(temporary, path) == 0)
    }

    /// Starts a `run` in-process and returns once the document at `path` is `running` (its run request sent).
    static func runPausingWhile(_ workspace: Workspace, isRunning path: String,
                                then attack: () throws -> Void) async throws -> PipelineResult {
        let pipeline = Task { try await workspace.run().0 }
        var reached = false
        let deadline = ContinuousClock.now + .seconds(30)
        while !reached && ContinuousClock.now < deadline {
            if FileManager.default.fileExists(atPath: workspace.dbPath), let ledger = try? SQLiteLedger(path: workspace.dbPath) {
                reached = (try? await ledger.documents(path: path).first?.state) == .running
            }
            if !reached { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(reached, "the first document reached running")
        try attack()
        return try await pipeline.value
    }

    static func slowSimulator() -> SimulatorConfiguration {
        var faults = FaultPlan()
        faults.latency = .milliseconds(400)
        return SimulatorConfiguration(faults: faults)
    }

    @Test(arguments: ["delete", "move"])
    func fileReplacedWhileInFlight_isNeverDisposedOf_andIsProcessedAsANewVersion(afterSuccess: String) async throws {
        try await withDifySimulator(Self.slowSimulator()) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, extra: "after_success: \(afterSuccess)", concurrency: 1)
            let path = try workspace.drop("a.txt", "version one")
            let result = try await Self.runPausingWhile(workspace, isRunning: "a.txt") {
                try Self.replace(path, with: "version two, replaced mid-flight")
            }
            #expect(result.exitStatus == .success)
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            let versions = try await ledger.documents(path: "a.txt")
            #expect(versions.map(\.state) == [.succeeded, .succeeded])
            #expect(versions.map(\.sha256) == [Self.sha("version two, replaced mid-flight"), Self.sha("version one")])
            // The bytes run at the server are exactly the recorded versions, each once.
            #expect(simulator.stats.runsBySHA256 == [Self.sha("version one"): 1, Self.sha("version two, replaced mid-flight"): 1])
            let outputs = try #require(try workspace.json("a.txt.json")["outputs"] as? [String: Any])
            #expect(outputs["sha256"] as? String == Self.sha("version two, replaced mid-flight"))
            // `mv` itself unlinked version one; version two was disposed of only as its own document.
            if afterSuccess == "move" {
                let archived = workspace.files(in: workspace.archive).compactMap {
                    try? String(contentsOfFile: (workspace.archive as NSString).appendingPathComponent($0), encoding: .utf8)
                }
                #expect(archived == ["version two, replaced mid-flight"])
            }
            #expect(workspace.files(in: workspace.inbox).isEmpty)
        }
    }

    @Test(arguments: [false, true])
    func queuedFileRewrittenInPlaceWithTheSameSize_isNeverFiledUnderTheOldSHA256(forgeMtime: Bool) async throws {
        try await withDifySimulator(Self.slowSimulator()) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, extra: "after_success: keep", concurrency: 1)
            try workspace.drop("a.txt", "first, slow")
            let b = try workspace.drop("b.txt", "BBBB-old")
            let result = try await Self.runPausingWhile(workspace, isRunning: "a.txt") {
                var before = stat()
                #expect(stat(b, &before) == 0)
                let fd = open(b, O_WRONLY)
                #expect(pwrite(fd, "BBBB-new", 8, 0) == 8)
                if forgeMtime {  // same device, inode, size and mtime: only the bytes tell
                    var times = [timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2), before.st_mtim]
                    #expect(futimens(fd, &times) == 0)
                }
                close(fd)
            }
            #expect(result.exitStatus != .usage)
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            let versions = try await ledger.documents(path: "b.txt")
            let succeeded = try #require(versions.first { $0.state == .succeeded })
            #expect(succeeded.sha256 == Self.sha("BBBB-new"))
            #expect(versions.contains { $0.state == .rejected && $0.lastError?.code == "source_changed" && $0.outputPath == nil })
            #expect(simulator.stats.runsBySHA256[Self.sha("BBBB-old")] == nil, "the old hash never ran")
            #expect(simulator.stats.runsBySHA256[Self.sha("BBBB-new")] == 1)
            let outputs = try #require(try workspace.json("b.txt.json")["outputs"] as? [String: Any])
            #expect(outputs["sha256"] as? String == Self.sha("BBBB-new"))
            #expect(workspace.errorOutputs().isEmpty, "one visible outcome: the new version's")
        }
    }

    @Test func symlinksAndAFIFOSwappedInBeforeUpload_areNeverFollowedOrWaitedFor() async throws {
        try await withDifySimulator(Self.slowSimulator()) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, extra: "after_success: keep", concurrency: 1)
            let secret = workspace.scratch.file("secret.txt")
            try Data("TOP SECRET outside the inbox".utf8).write(to: URL(fileURLWithPath: secret))
            try workspace.drop("a.txt", "first, slow")
            var swapped: [String] = []
            for index in 0..<20 { swapped.append(try workspace.drop(String(format: "s%02d.txt", index), "plain \(index)")) }
            let fifo = try workspace.drop("f.txt", "will be a FIFO")
            let result = try await Self.runPausingWhile(workspace, isRunning: "a.txt") {
                for path in swapped {
                    let link = (path as NSString).deletingLastPathComponent + "/.link"
                    #expect(symlink(secret, link) == 0)
                    #expect(rename(link, path) == 0)
                }
                let pipe = (fifo as NSString).deletingLastPathComponent + "/.fifo"
                #expect(mkfifo(pipe, 0o644) == 0)
                #expect(rename(pipe, fifo) == 0)
            }
            #expect(result.exitStatus != .usage, "the run ended (a FIFO never blocks it)")
            #expect(simulator.stats.runsBySHA256[Self.sha("TOP SECRET outside the inbox")] == nil)
            #expect(simulator.stats.runsBySHA256.count == 1, "only a.txt ran")
            for name in workspace.files(in: workspace.outbox) {
                let text = try String(contentsOfFile: (workspace.outbox as NSString).appendingPathComponent(name), encoding: .utf8)
                #expect(!text.contains("TOP SECRET"))
            }
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            for index in 0..<20 {
                let versions = try await ledger.documents(path: String(format: "s%02d.txt", index))
                #expect(versions.map { $0.lastError?.code } == ["symlink", "source_changed"], "\(index)")
            }
            #expect(try await ledger.documents(path: "f.txt").map { $0.lastError?.code } == ["source_changed"])
        }
    }

    @Test func namesThatDifferInNormalization_areTwoFiles_andLongOrBadNamesNeverStopTheJob() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, extra: "after_success: keep")
            let nfc = try workspace.drop("caf\u{E9}.txt", "one")
            let nfd = try workspace.drop("cafe\u{301}.txt", "two")
            var st = stat()
            #expect(stat(nfc, &st) == 0)
            var times = [st.st_atim, st.st_mtim]
            #expect(utimensat(AT_FDCWD, nfd, &times, 0) == 0, "same size and mtime")
            let cjk = String(repeating: "日", count: 80) + ".txt"
            try workspace.drop(cjk, "a 244-byte name")
            let longEmpty = String(repeating: "e", count: 246) + ".txt"
            try workspace.drop(longEmpty, "")
            var bad = Array((workspace.inbox + "/caf").utf8)
            bad += [0xE9] + Array(".txt".utf8) + [0]
            let fd = bad.withUnsafeBufferPointer { open(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), O_CREAT | O_WRONLY, 0o644) }
            #expect(fd >= 0)
            close(fd)

            let (result, ledger) = try await workspace.run()
            #expect(result.summaries.first?.stop == nil, "the job was never stopped")
            let documents = try await ledger.documents(matching: DocumentFilter())
            #expect(documents.count == 5)
            #expect(Set(documents.filter { $0.state == .succeeded }.map { Array($0.path.utf8) })
                    == [Array("caf\u{E9}.txt".utf8), Array("cafe\u{301}.txt".utf8), Array(cjk.utf8)])
            #expect(simulator.stats.runsBySHA256 == [Self.sha("one"): 1, Self.sha("two"): 1, Self.sha("a 244-byte name"): 1])
            #expect(documents.first { $0.path == "caf\\xE9.txt" }?.lastError?.code == "name_not_utf8")
            let empty = try #require(documents.first { $0.path == longEmpty })
            #expect(empty.state == .rejected)
            let errorFile = try #require(empty.outputPath)
            #expect((errorFile as NSString).lastPathComponent.utf8.count <= 255 && errorFile.hasSuffix(".error.json") && errorFile.contains("~"))
            #expect(FileManager.default.fileExists(atPath: errorFile))
            #expect(FileManager.default.fileExists(atPath: workspace.outbox + "/" + cjk + ".json"))
        }
    }

    @Test func watch_whenTheInboxDisappears_waitsForItAndGoesOn() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, extra: "after_success: keep")
            try FileManager.default.createDirectory(atPath: workspace.outbox + "/sub", withIntermediateDirectories: true)
            try Data("partial".utf8).write(to: URL(fileURLWithPath: workspace.outbox + "/sub/.dify-batch-k1ll3d.tmp"))
            // `--rescan 1s`: noticed quickly even where inotify is exhausted by other tests running in parallel.
            let child = try Child(["watch", "--db", workspace.dbPath, "--rescan", "1s", workspace.specPath],
                                  environment: workspace.environment, stderrPath: workspace.scratch.file("watch.log"))
            try workspace.drop("before.txt", "before")
            #expect(try await waitUntil { workspace.outputs() == ["before.txt.json"] })
            #expect(!FileManager.default.fileExists(atPath: workspace.outbox + "/sub/.dify-batch-k1ll3d.tmp"), "a killed process's temp file is removed on start")
            try FileManager.default.removeItem(atPath: workspace.inbox)
            #expect(try await waitUntil { child.stderr.contains("cannot list the inbox") }, "\(child.stderr)")
            try FileManager.default.createDirectory(atPath: workspace.inbox, withIntermediateDirectories: true)
            try workspace.drop("after.txt", "after")
            #expect(try await waitUntil { workspace.outputs() == ["after.txt.json", "before.txt.json"] }, "\(child.stderr)")
            child.signal(SIGTERM)
            #expect(try await child.exitStatus() == 0, "\(child.stderr)")
            #expect(child.stderr.components(separatedBy: "cannot list the inbox").count == 2, "logged once")
        }
    }

    @Test func outboxFilesFollowTheUmask() async throws {
        try await withDifySimulator { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL, extra: "after_success: keep")
            try workspace.drop("a.txt", "private")
            let command = "umask 077 && exec \"$0\" run --db \"$1\" \"$2\""
            let result = try await CLI.runProgram("/bin/sh", ["-c", command, CLI.binary, workspace.dbPath, workspace.specPath],
                                                  environment: workspace.environment)
            #expect(result.status == 0, "\(result.stderr)")
            var st = stat()
            #expect(stat(workspace.outbox + "/a.txt.json", &st) == 0)
            #expect(st.st_mode & 0o777 == 0o600)
        }
    }
}
