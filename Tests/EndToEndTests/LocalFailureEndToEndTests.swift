import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Issue 11, item 2: a local failure after a paid run belongs to its document, is retried from the stored result,
/// and never makes dify-batch call Dify again.
@Suite(.serialized) struct LocalFailureEndToEndTests {
    static let runPOST = "POST /v1/workflows/run"

    static func runPOSTs(_ simulator: DifySimulator) -> Int { simulator.stats.requestsByEndpoint[runPOST] ?? 0 }

    /// Puts a file where the outbox needs the folder `sub/`: writing `sub/a.txt.json` fails with ENOTDIR (also for root).
    /// Put there before the run it is refused unsent (`outbox_blocked`), so the tests put it there once the run ended.
    static func blockOutboxFolder(_ workspace: Workspace) throws {
        try FileManager.default.createDirectory(atPath: workspace.outbox, withIntermediateDirectories: true)
        try Data("in the way".utf8).write(to: URL(fileURLWithPath: workspace.outbox + "/sub"))
    }

    /// Blocks the outbox folder `sub/` when the `afterRuns`-th run attempt has ended: after that paid run, before its
    /// result is written.
    final class BlockOutboxAfterRun: PipelineObserver, @unchecked Sendable {
        let workspace: Workspace
        let afterRuns: Int
        private let lock = NSLock()
        private var runs = 0
        init(_ workspace: Workspace, afterRuns: Int = 1) {
            self.workspace = workspace
            self.afterRuns = afterRuns
        }
        func record(_ event: PipelineEvent) {
            guard case .attemptFinished(_, .run, _, _) = event else { return }
            lock.withLock {
                runs += 1
                if runs == afterRuns { try? LocalFailureEndToEndTests.blockOutboxFolder(workspace) }
            }
        }
    }

    @Test func run_whenTheOutboxCannotBeWrittenAfterThePaidRun_storesTheResult_exits1_andTheNextRunWritesItWithoutANewRun() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("sub/a.txt", documentText(1))

            let (first, ledger) = try await workspace.run(observers: [BlockOutboxAfterRun(workspace)])
            #expect(first.exitStatus == .documentsFailed)
            #expect(first.summaries.first?.localFailures == 1)
            #expect(RunReport.summaryLine(first.summaries[0]).contains("local work failed"))
            let failed = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(failed.state == .failed && failed.resultStored)
            #expect(failed.lastError?.errorClass == "local" && failed.lastError?.code == "ENOTDIR", "\(String(describing: failed.lastError))")
            #expect(failed.lastError?.message.contains("without running the document again") == true)
            #expect(failed.nextAttemptAt != nil)
            #expect(failed.localFailures >= 3, "run retries local work at least 3 times, then ends")
            #expect(failed.attempts == 1, "local retries use no attempts")
            #expect(try await ledger.result(documentID: failed.id) != nil)
            #expect(Self.runPOSTs(simulator) == 1)
            #expect(FileManager.default.fileExists(atPath: workspace.inbox + "/sub/a.txt"), "the source stays until its result is out")

            try FileManager.default.removeItem(atPath: workspace.outbox + "/sub")
            let (second, again) = try await workspace.run()
            #expect(second.exitStatus == .success)
            let done = try #require(try await again.document(id: failed.id))
            #expect(done.state == .succeeded && done.localFailures == 0 && done.lastError == nil)
            #expect(workspace.outputs() == ["sub/a.txt.json"])
            let written = try workspace.json("sub/a.txt.json")
            #expect((written["dify"] as? [String: Any])?["workflow_run_id"] as? String == failed.workflowRunID)
            #expect(Self.runPOSTs(simulator) == 1, "no new run was sent for the local retry")
            #expect(simulator.stats.requestsByEndpoint["POST /v1/files/upload"] == 1)
            #expect(FileManager.default.fileExists(atPath: workspace.archive + "/sub/a.txt"))
        }
    }

    /// Issue 14: `run` without `--report` (and `watch`) keeps no record per document, yet counts the same.
    @Test func run_withoutKeepingTouchedDocuments_countsSucceededAndLocalFailuresTheSame_andKeepsNoRecords() async throws {
        try await withDifySimulator { simulator, baseURL in
            // One at a time, in path order: b.txt, c.txt, then sub/a.txt, whose run is the third.
            let workspace = try Workspace(baseURL: baseURL, concurrency: 1)
            try workspace.drop("sub/a.txt", documentText(3))
            try workspace.drop("b.txt", documentText(4))
            try workspace.drop("c.txt", documentText(5))
            let (result, _) = try await workspace.run(observers: [BlockOutboxAfterRun(workspace, afterRuns: 3)]) { $0.keepsTouchedDocuments = false }
            let summary = try #require(result.summaries.first)
            #expect(summary.touched.isEmpty, "no record per document is kept")
            #expect(summary.counts[.succeeded] == 2)
            #expect(summary.localFailures == 1, "the document whose outbox folder is blocked is counted as a local failure")
            #expect(result.exitStatus == .documentsFailed)
            #expect(Self.runPOSTs(simulator) == 3)
        }
    }

    @Test func retry_ofADeadDocumentWithAStoredResult_rewritesTheOutboxWithoutCallingDify() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("sub/a.txt", documentText(2))
            let (first, ledger) = try await workspace.run(observers: [BlockOutboxAfterRun(workspace)])
            #expect(first.exitStatus == .documentsFailed)
            let failed = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            // However it got there (an operator, an older version), a dead document with a stored result...
            try await ledger.transition(failed.id, from: .failed, to: .dead, [])
            try FileManager.default.removeItem(atPath: workspace.outbox + "/sub")

            let retried = try await CLI.run(["retry", "--db", workspace.dbPath, "sub/a.txt"])
            #expect(retried.status == 0, "\(retried.stderr)")
            let rerun = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                          environment: workspace.environment)
            #expect(rerun.status == 0, "\(rerun.stderr)")
            let done = try #require(try await ledger.document(id: failed.id))
            #expect(done.state == .succeeded)
            #expect((try workspace.json("sub/a.txt.json")["dify"] as? [String: Any])?["workflow_run_id"] as? String == failed.workflowRunID)
            #expect(Self.runPOSTs(simulator) == 1, "...is settled from it: Dify is not called again")
        }
    }

    @Test func run_whenTheOutboxDiskIsFull_failsWithENOSPC_andWritesTheStoredResultOnceThereIsSpace() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", documentText(3))
            try FileManager.default.createDirectory(atPath: workspace.outbox, withIntermediateDirectories: true)
            let mount = try await CLI.runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", workspace.outbox])
            guard mount.status == 0 else {
                print("skipped: cannot mount a small tmpfs here (\(mount.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")
                return
            }
            defer { _ = Process.runQuietly("/bin/umount", [workspace.outbox]) }
            // The ledger owns the inbox before the disk fills (a first claim that cannot be written stops the job, exit 2).
            let identity = try await SQLiteLedger(path: workspace.dbPath).identity()
            try InboxOwnership.claim(spec: try JobSpecLoader.load(path: workspace.specPath), identity: identity, takeOver: false)
            // Fill the file system: the start check (an empty probe file) passes, the result file does not fit.
            let filler = workspace.outbox + "/.filler"
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: { _ = FileManager.default.createFile(atPath: filler, contents: nil); return filler }()))
            let chunk = Data(repeating: 0x61, count: 4096)
            while (try? handle.write(contentsOf: chunk)) != nil {}
            try? handle.close()

            let (first, ledger) = try await workspace.run()
            #expect(first.exitStatus == .documentsFailed)
            let failed = try #require(try await ledger.documents(matching: DocumentFilter()).first)
            #expect(failed.state == .failed && failed.resultStored && failed.lastError?.code == "ENOSPC", "\(String(describing: failed.lastError))")
            #expect(workspace.outputs().isEmpty)
            #expect(workspace.files(in: workspace.outbox).allSatisfy { !$0.contains("tmp") }, "no partial temp file left")

            try FileManager.default.removeItem(atPath: filler)
            let (second, _) = try await workspace.run()
            #expect(second.exitStatus == .success)
            #expect(workspace.outputs() == ["a.txt.json"])
            #expect(Self.runPOSTs(simulator) == 1)
        }
    }

    @Test func watch_retriesLocalWorkWithGrowingIntervals_untilTheOutboxIsFixed_withoutANewRun() async throws {
        // The run pauses (Human Input) until the test resumes it: the outbox is blocked after the check before the
        // send (which would refuse it unsent) and before the result is written.
        var faults = FaultPlan()
        faults.pausedRunRate = 1
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("sub/a.txt", documentText(4))
            let watch = try Child(["watch", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                  environment: workspace.environment, stderrPath: workspace.scratch.file("watch.log"))
            defer { if watch.process.isRunning { watch.signal(SIGKILL) } }
            #expect(try await waitUntilAsync {
                guard FileManager.default.fileExists(atPath: workspace.dbPath) else { return false }
                return try await SQLiteLedger(path: workspace.dbPath).documents(matching: DocumentFilter()).first?.state == .paused
            }, "\(watch.stderr)")
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            try Self.blockOutboxFolder(workspace)
            let paused = try #require(try await ledger.documents(matching: DocumentFilter()).first?.workflowRunID)
            #expect(simulator.resumePausedRun(id: paused))
            // More local failures than `run` allows: watch keeps going.
            #expect(try await waitUntilAsync { (try await ledger.documents(matching: DocumentFilter()).first?.localFailures ?? 0) >= 5 },
                    "\(watch.stderr)")
            try FileManager.default.removeItem(atPath: workspace.outbox + "/sub")
            #expect(try await waitUntilAsync { try await ledger.documents(matching: DocumentFilter()).first?.state == .succeeded })
            watch.signal(SIGTERM)
            #expect(try await watch.exitStatus() == 0)
            #expect(workspace.outputs() == ["sub/a.txt.json"])
            #expect(Self.runPOSTs(simulator) == 1)
            #expect(watch.stderr.contains("ENOTDIR"))
        }
    }

    @Test func run_whenOneJobsOutboxIsNotWritableAtStart_thatJobDoesNotStart_exit2_andTheOtherJobRuns() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", documentText(5))
            // The outbox path is a file: not writable for anyone, root included.
            try Data("x".utf8).write(to: URL(fileURLWithPath: workspace.outbox))
            try FileManager.default.createDirectory(atPath: workspace.scratch.file("in2"), withIntermediateDirectories: true)
            try Data(documentText(6).utf8).write(to: URL(fileURLWithPath: workspace.scratch.file("in2/b.txt")))
            let other = workspace.scratch.file("jobs/other.yaml")
            try """
                name: other
                inbox: ../in2
                outbox: ../out2
                archive: ../done2
                dify: {base_url: \(baseURL), api_key_env: DIFY_TEST_KEY}
                match: {settle: 0s}
                """.write(toFile: other, atomically: true, encoding: .utf8)

            let result = try await CLI.run(["run", "--db", workspace.dbPath, "--progress", "never", workspace.specPath, other],
                                           environment: workspace.environment)
            #expect(result.status == 2, "\(result.stderr)")
            #expect(result.stderr.contains("`outbox:` \(workspace.outbox) is not writable"), "\(result.stderr)")
            #expect(result.stderr.contains("ENOTDIR") || result.stderr.contains("EEXIST"))
            #expect(FileManager.default.fileExists(atPath: workspace.scratch.file("out2/b.txt.json")), "the other job ran")
            #expect(FileManager.default.fileExists(atPath: workspace.inbox + "/a.txt"), "nothing of the refused job was touched")
            #expect(Self.runPOSTs(simulator) == 1)
        }
    }

    @Test func run_asAUserWhoCannotWriteTheOutbox_exits2WithTheFix() async throws {
        try await withDifySimulator { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", documentText(7))
            guard let user = TestUser.ensure() else {
                print("skipped: no non-root test user can be created here (needs root and useradd)")
                return
            }
            try FileManager.default.createDirectory(atPath: workspace.outbox, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: workspace.scratch.file("state"), withIntermediateDirectories: true)
            try TestUser.giveTree(workspace.scratch.path, to: user, except: [workspace.outbox])
            let result = try await CLI.runProgram("/usr/sbin/runuser", ["-u", user, "--", CLI.binary, "run", "--db", workspace.dbPath,
                                                                        "--progress", "never", workspace.specPath],
                                                  environment: workspace.environment)
            #expect(result.status == 2, "\(result.stderr)")
            #expect(result.stderr.contains("is not writable by user \(user)"), "\(result.stderr)")
            #expect(result.stderr.contains("EACCES"))
        }
    }
}

/// Polls an async condition every 20 ms.
func waitUntilAsync(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return false
}

extension Process {
    /// Runs a program to its end, output discarded; its exit status (-1 when it cannot start).
    static func runQuietly(_ path: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// A non-root user for permission tests, created with useradd when missing (only possible as root).
enum TestUser {
    static let name = "difybatch-test"

    static func ensure() -> String? {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/runuser") else { return nil }
        if getpwnam(name) != nil { return name }
        guard Process.runQuietly("/usr/sbin/useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]) == 0
                || getpwnam(name) != nil else { return nil }
        return name
    }

    /// chown -R of `root` to `user`, leaving the `except` folders owned by root (mode 0755).
    static func giveTree(_ root: String, to user: String, except: [String]) throws {
        guard let entry = getpwnam(user) else { return }
        let uid = entry.pointee.pw_uid, gid = entry.pointee.pw_gid
        var paths = [root]
        if let enumerator = FileManager.default.enumerator(atPath: root) {
            while let item = enumerator.nextObject() as? String { paths.append((root as NSString).appendingPathComponent(item)) }
        }
        for path in paths where !except.contains(where: { path == $0 || path.hasPrefix($0 + "/") }) {
            _ = lchown(path, uid, gid)
        }
    }
}
