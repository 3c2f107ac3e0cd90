import DifyKit
import Foundation
import Testing
@testable import DifyBatch
#if canImport(Glibc)
import Glibc
#endif

@Suite("Job lock")
struct JobLockTests {
    func heldCode(_ body: () throws -> JobLock) -> JobLockError.Code? {
        do {
            let lock = try body()
            lock.release()
            return nil
        } catch let error as JobLockError {
            return error.code
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func secondLockOnTheSameInboxIsRefusedAndNamesThePid() throws {
        let folder = try TemporaryDirectory()
        try folder.makeFolder("in")
        let first = try JobLock.acquire(inbox: folder.file("in"), job: "invoices")
        #expect(first.isHeld)
        do {
            // Another job name, same inbox: still one process per inbox.
            _ = try JobLock.acquire(inbox: folder.file("in"), job: "summaries")
            Issue.record("the second acquire should have failed")
        } catch let error as JobLockError {
            guard case .held(let pid, let host, _) = error.code else {
                Issue.record("expected held, got \(error.code)")
                return
            }
            if FileManager.default.isReadableFile(atPath: "/proc/locks") {
                #expect(pid == getpid())
                #expect(host == JobLock.hostName)
                #expect(error.description.hasPrefix("job summaries is held by pid \(getpid()) on host \(JobLock.hostName)"))
            }
            #expect(error.exitStatus == .locked)
        }
        first.release()
        first.release()  // idempotent
        #expect(!first.isHeld)
        let again = try JobLock.acquire(inbox: folder.file("in"), job: "invoices")
        #expect(again.isHeld)
    }

    /// `/proc/locks` lists the newest lock first and is generated as it is read: a long-held inbox lock sits at
    /// the end, past the first 4 KB that Foundation returns for such a file (CI found this with a busy machine).
    @Test func theHolderIsNamed_evenWhenHundredsOfNewerLocksComeFirstInProcLocks() throws {
        guard FileManager.default.isReadableFile(atPath: "/proc/locks") else { return }
        let folder = try TemporaryDirectory()
        try folder.makeFolder("in")
        let first = try JobLock.acquire(inbox: folder.file("in"), job: "invoices")
        defer { first.release() }
        var newer: [Int32] = []
        defer { for fd in newer { close(fd) } }
        for index in 0..<300 {
            let fd = open(folder.file("lock \(index)"), O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
            newer.append(fd)
        }
        #expect(ProcFS.contents("/proc/locks").map(\.count) ?? 0 > 4096, "the table is longer than one page")
        #expect(heldCode { try JobLock.acquire(inbox: folder.file("in"), job: "invoices") } == .held(pid: getpid(), host: JobLock.hostName, since: nil))
    }

    @Test func aSymlinkedSpellingOfTheInboxIsTheSameLock() throws {
        let folder = try TemporaryDirectory()
        try folder.makeFolder("in")
        #expect(symlink(folder.file("in"), folder.file("alias")) == 0)
        let first = try JobLock.acquire(inbox: folder.file("in"), job: "a")
        defer { first.release() }
        #expect(heldCode { try JobLock.acquire(inbox: folder.file("alias") + "/", job: "b") } != nil)
        // Another inbox is independent.
        try folder.makeFolder("other")
        let other = try JobLock.acquire(inbox: folder.file("other"), job: "a")
        other.release()
    }

    @Test func lockingCreatesNothingInTheInbox() throws {
        let folder = try TemporaryDirectory()
        try folder.makeFolder("in")
        let lock = try JobLock.acquire(inbox: folder.file("in"), job: "j")
        defer { lock.release() }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.file("in")).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["in"])
    }

    @Test func deinitReleasesTheLock() throws {
        let folder = try TemporaryDirectory()
        do {
            let lock = try JobLock.acquire(inbox: folder.path, job: "j")
            #expect(lock.isHeld)
        }
        let again = try JobLock.acquire(inbox: folder.path, job: "j")
        again.release()
    }

    @Test func describesHoldersItCannotName() {
        let error = JobLockError(job: "x", code: .held(pid: nil, host: nil, since: nil))
        #expect(error.description == "job x is held by another process; wait for it, or pass --wait")
        let named = JobLockError(job: "invoices", code: .held(pid: 4242, host: "box", since: Date(timeIntervalSince1970: 1_795_762_800)),
                                 holderRun: "dify-batch watch, run #3 in this ledger")
        #expect(named.description == "job invoices is held by pid 4242 on host box since 2026-11-27T07:00:00Z (dify-batch watch, run #3 in this ledger); wait for it, or pass --wait")
    }

    @Test func procLocksLinesAreMatchedByDeviceAndInode() {
        let text = """
            1: POSIX  ADVISORY  WRITE 99 00:2f:77 0 EOF
            2: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF
            2: -> FLOCK  ADVISORY  WRITE 5151 08:01:1234567 0 EOF
            3: FLOCK  ADVISORY  WRITE 77 00:2f:1234567 0 EOF
            """
        // 08:01 is major 8, minor 1: dev_t 0x801.
        #expect(JobLock.holderPID(procLocks: text, device: 0x801, inode: 1_234_567) == 4242)
        #expect(JobLock.holderPID(procLocks: text, device: 0x2f, inode: 1_234_567) == 77)
        #expect(JobLock.holderPID(procLocks: text, device: 0x801, inode: 5) == nil)
    }

    @Test func aMissingInboxIsAUsageErrorNotLocked() throws {
        let folder = try TemporaryDirectory()
        try folder.write("file", "x")
        for path in [folder.file("missing"), folder.file("file")] {
            let code = heldCode { try JobLock.acquire(inbox: path, job: "j") }
            guard case .cannotOpen? = code else {
                Issue.record("expected cannotOpen, got \(String(describing: code))")
                continue
            }
            #expect(JobLockError(job: "j", code: code!).exitStatus == .usage)
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func lockHeldByAChildProcessIsFreedWhenTheChildIsKilled() async throws {
        let folder = try TemporaryDirectory()
        try folder.makeFolder("in")
        // sh opens the inbox folder on fd 9, flock(1) locks it, says so in a marker file, then the shell execs sleep
        // (same pid, fd 9 inherited), so exactly one process holds the lock. The test waits for the marker, not by
        // polling the lock itself: on a loaded machine a poll that takes and frees the lock can keep winning it.
        let script = """
            exec 9<"$0" || exit 1
            flock -x 9 || exit 2
            echo locked > "$1"
            exec sleep 120
            """
        let marker = folder.file("locked")
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sh")
        child.arguments = ["-c", script, folder.file("in"), marker]
        try child.run()
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) } }

        let deadline = ContinuousClock.now + .seconds(90)  // the shell may start slowly on a loaded machine
        while !FileManager.default.fileExists(atPath: marker) && ContinuousClock.now < deadline && child.isRunning {
            try await Task.sleep(for: .milliseconds(10))
        }
        let code = heldCode { try JobLock.acquire(inbox: folder.file("in"), job: "invoices") }
        guard case .held? = code else {
            Issue.record("expected held, got \(String(describing: code)); child running: \(child.isRunning)")
            return
        }

        #expect(kill(child.processIdentifier, SIGKILL) == 0)
        child.waitUntilExit()
        #expect(child.terminationReason == .uncaughtSignal)
        let lock = try JobLock.acquire(inbox: folder.file("in"), job: "invoices")
        #expect(lock.isHeld)
        lock.release()
    }

    @Test(.timeLimit(.minutes(3)))
    func waitingAcquireSucceedsAfterRelease() async throws {
        let folder = try TemporaryDirectory()
        let holder = try JobLock.acquire(inbox: folder.path, job: "j")
        let started = ContinuousClock.now
        let lock = try await withThrowingTaskGroup(of: JobLock?.self) { group in
            group.addTask {
                try await JobLock.acquire(inbox: folder.path, job: "j", waitingEvery: .milliseconds(20))
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(200))
                #expect(holder.isHeld)
                holder.release()
                return nil
            }
            var acquired: JobLock?
            for try await result in group { if let result { acquired = result } }
            return acquired
        }
        #expect(lock?.isHeld == true)
        #expect(ContinuousClock.now - started >= .milliseconds(200))
        #expect(!holder.isHeld)
        lock?.release()
    }

    @Test(.timeLimit(.minutes(3)))
    func waitingAcquireIsCancellable() async throws {
        let folder = try TemporaryDirectory()
        let holder = try JobLock.acquire(inbox: folder.path, job: "j")
        defer { holder.release() }
        let started = ContinuousClock.now
        let outcome = await withTaskGroup(of: String.self) { group in
            group.addTask {
                do {
                    let lock = try await JobLock.acquire(inbox: folder.path, job: "j", waitingEvery: .seconds(300))
                    lock.release()
                    return "acquired"
                } catch is CancellationError {
                    return "cancelled"
                } catch {
                    return "\(error)"
                }
            }
            try? await Task.sleep(for: .milliseconds(100))
            group.cancelAll()
            return await group.next() ?? "nothing"
        }
        #expect(outcome == "cancelled")
        // Not the wait between tries (300 s): cancellation ends the sleep. The bound is loose for a loaded machine.
        #expect(ContinuousClock.now - started < .seconds(120))
        #expect(holder.isHeld)
    }

    @Test func waitingAcquireReportsUnopenableFilesAtOnce() async throws {
        let folder = try TemporaryDirectory()
        try folder.write("blocker", "x")
        await #expect(throws: JobLockError.self) {
            _ = try await JobLock.acquire(inbox: folder.file("blocker"), job: "j", waitingEvery: .seconds(5))
        }
    }
}
