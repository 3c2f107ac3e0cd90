import DifyKit
import Foundation
import Testing
@testable import DifyBatch
#if canImport(Glibc)
import Glibc
#endif

@Suite("Job lock")
struct JobLockTests {
    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        _ = gethostname(&buffer, 255)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

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

    @Test func secondLockInTheSameProcessIsRefusedAndNamesTheHolder() throws {
        let folder = try TemporaryDirectory()
        let before = Date().addingTimeInterval(-1)
        let first = try JobLock.acquire(directory: folder.path, job: "invoices")
        #expect(first.isHeld)
        #expect(first.path == folder.path + "/invoices.lock")
        do {
            _ = try JobLock.acquire(directory: folder.path, job: "invoices")
            Issue.record("the second acquire should have failed")
        } catch let error as JobLockError {
            guard case .held(let pid, let host, let since) = error.code else {
                Issue.record("expected held, got \(error.code)")
                return
            }
            #expect(pid == getpid())
            #expect(host == Self.hostName)
            #expect(since != nil && since! >= before && since! <= Date().addingTimeInterval(1))
            #expect(error.job == "invoices")
            #expect(error.description.hasPrefix("job invoices is held by pid \(getpid()) on host \(Self.hostName) since 20"))
            #expect(error.description.hasSuffix("Z; wait for it, or pass --wait"))
        }
        // Another job is independent.
        let other = try JobLock.acquire(directory: folder.path, job: "summaries")
        other.release()

        first.release()
        first.release()  // idempotent
        #expect(!first.isHeld)
        let again = try JobLock.acquire(directory: folder.path, job: "invoices")
        #expect(again.isHeld)
    }

    @Test func lockFileNamesTheHolder() throws {
        let folder = try TemporaryDirectory()
        let lock = try JobLock.acquire(directory: folder.file("locks/nested"), job: "j")
        let json = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: lock.path)))
        #expect(json["pid"] == .int(Int64(getpid())))
        #expect(json["host"] == .string(Self.hostName))
        #expect(json["since"]?.stringValue?.hasSuffix("Z") == true)
        lock.release()
        // Released: the details are cleared, the file stays (deleting it would race with other openers).
        #expect(try Data(contentsOf: URL(fileURLWithPath: lock.path)).isEmpty)
    }

    @Test func deinitReleasesTheLock() throws {
        let folder = try TemporaryDirectory()
        do {
            let lock = try JobLock.acquire(directory: folder.path, job: "j")
            #expect(lock.isHeld)
        }
        let again = try JobLock.acquire(directory: folder.path, job: "j")
        again.release()
    }

    @Test func describesHoldersItCannotName() {
        let error = JobLockError(job: "x", code: .held(pid: nil, host: nil, since: nil))
        #expect(error.description == "job x is held by another process; wait for it, or pass --wait")
        let named = JobLockError(job: "invoices", code: .held(pid: 4242, host: "box", since: Date(timeIntervalSince1970: 1_795_762_800)))
        #expect(named.description == "job invoices is held by pid 4242 on host box since 2026-11-27T07:00:00Z; wait for it, or pass --wait")
    }

    @Test(arguments: ["", "a/b", "..", "."])
    func invalidJobNamesCannotBeLocked(job: String) throws {
        let folder = try TemporaryDirectory()
        #expect(heldCode { try JobLock.acquire(directory: folder.path, job: job) } != nil)
        #expect(throws: JobLockError.self) { try JobLock.acquire(directory: folder.path, job: job) }
    }

    @Test func unopenableLockFileIsReported() throws {
        let folder = try TemporaryDirectory()
        try folder.write("blocker", "a file where the folder should be")
        let code = heldCode { try JobLock.acquire(directory: folder.file("blocker/locks"), job: "j") }
        guard case .cannotOpen? = code else {
            Issue.record("expected cannotOpen, got \(String(describing: code))")
            return
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func lockHeldByAChildProcessIsFreedWhenTheChildIsKilled() async throws {
        let folder = try TemporaryDirectory()
        let path = JobLock.lockPath(directory: folder.path, job: "invoices")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        // sh opens the file on fd 9, flock(1) locks it, the shell writes its details, then execs sleep (same
        // pid, fd 9 inherited), so exactly one process holds the lock.
        let script = """
            exec 9<>"$0" || exit 1
            flock -x 9 || exit 2
            printf '{"pid":%d,"host":"child-box","since":"2026-11-27T07:00:00Z"}' $$ >&9
            exec sleep 30
            """
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sh")
        child.arguments = ["-c", script, path]
        try child.run()
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) } }

        var code: JobLockError.Code?
        for _ in 0..<500 {
            code = heldCode { try JobLock.acquire(directory: folder.path, job: "invoices") }
            if case .held(let pid, _, _)? = code, pid != nil { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(code == .held(pid: child.processIdentifier, host: "child-box",
                              since: Date(timeIntervalSince1970: 1_795_762_800)))

        #expect(kill(child.processIdentifier, SIGKILL) == 0)
        child.waitUntilExit()
        #expect(child.terminationReason == .uncaughtSignal)
        let lock = try JobLock.acquire(directory: folder.path, job: "invoices")
        #expect(lock.isHeld)
        lock.release()
    }

    @Test(.timeLimit(.minutes(1)))
    func waitingAcquireSucceedsAfterRelease() async throws {
        let folder = try TemporaryDirectory()
        let holder = try JobLock.acquire(directory: folder.path, job: "j")
        let started = ContinuousClock.now
        let lock = try await withThrowingTaskGroup(of: JobLock?.self) { group in
            group.addTask {
                try await JobLock.acquire(directory: folder.path, job: "j", waitingEvery: .milliseconds(20))
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

    @Test(.timeLimit(.minutes(1)))
    func waitingAcquireIsCancellable() async throws {
        let folder = try TemporaryDirectory()
        let holder = try JobLock.acquire(directory: folder.path, job: "j")
        defer { holder.release() }
        let started = ContinuousClock.now
        let outcome = await withTaskGroup(of: String.self) { group in
            group.addTask {
                do {
                    let lock = try await JobLock.acquire(directory: folder.path, job: "j", waitingEvery: .seconds(5))
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
        #expect(ContinuousClock.now - started < .seconds(3))
        #expect(holder.isHeld)
    }

    @Test func waitingAcquireReportsUnopenableFilesAtOnce() async throws {
        let folder = try TemporaryDirectory()
        try folder.write("blocker", "x")
        await #expect(throws: JobLockError.self) {
            _ = try await JobLock.acquire(directory: folder.file("blocker"), job: "j", waitingEvery: .seconds(5))
        }
    }
}
