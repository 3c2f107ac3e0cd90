import Foundation
import GRDB
import Testing
@testable import DifyBatch
#if canImport(Glibc)
import Glibc
#endif

@Suite struct LocalFailureTests {
    @Test func aBusyLedger_keepsItsCause_SQLITE_BUSY() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("ledger.sqlite")
        let ledger = try SQLiteLedger(path: path, busyTimeout: 0.05)
        let job = try await ledger.register(JobRegistration(name: "j", specPath: "/s.yaml", specHash: "h", baseURL: "http://x/v1",
                                                           difyUser: "u", inbox: "/in", outbox: "/out"))
        let document = try await ledger.insert(NewDocument(jobID: job.id, path: "a.txt", sha256: "abc", size: 1, mtimeNanoseconds: 0))
        let blocker = WriteLockHolder(path: path)
        defer { blocker.release() }
        #expect(blocker.waitUntilLocked())
        do {
            try await ledger.storeResult(documentID: document.id, status: "succeeded", outputsJSON: "{}")
            Issue.record("the write should have been refused while another connection holds the lock")
        } catch {
            #expect(LocalFailure.code(error) == "SQLITE_BUSY", "\(error)")
            let recorded = LocalFailure.recorded(error, step: "record the result", delay: .seconds(2))
            #expect(recorded.errorClass == "local" && recorded.code == "SQLITE_BUSY")
            #expect(recorded.message.contains("busy timeout") && recorded.message.contains("tried again in 2s"), "\(recorded.message)")
        }
    }

    @Test func fileErrorsKeepTheirErrnoName() {
        #expect(LocalFailure.code(FileOperationError(operation: "write", path: "/x", errorNumber: ENOSPC)) == "ENOSPC")
        #expect(LocalFailure.code(FileOperationError(operation: "create", path: "/x", errorNumber: EACCES)) == "EACCES")
        #expect(LocalFailure.recorded(FileOperationError(operation: "rename", path: "/x", errorNumber: EROFS), step: "write", delay: .seconds(1))
            .message.contains("read-only"))
        #expect(ErrnoName.name(ENAMETOOLONG) == "ENAMETOOLONG" && ErrnoName.name(4242) == "errno 4242")
    }

    @Test func foldersOverlapAfterResolvingSymlinks_evenWhenTheyDoNotExistYet() throws {
        let dir = try TemporaryDirectory()
        try dir.makeFolder("real")
        #expect(symlink(dir.file("real"), dir.file("link")) == 0)
        let real = FolderOverlap.canonical(dir.file("real/out/new"))
        #expect(FolderOverlap.canonical(dir.file("link/out/new")) == real)
        #expect(FolderOverlap.overlaps(real, FolderOverlap.canonical(dir.file("link/out"))))
        #expect(!FolderOverlap.overlaps(FolderOverlap.canonical(dir.file("real/out")), FolderOverlap.canonical(dir.file("real/outbox"))))
    }
}

/// Another connection holding a write transaction (`BEGIN EXCLUSIVE`, or `BEGIN IMMEDIATE` as an `sqlite3` shell
/// does) on its own thread until released, or at most `holdAtMost` seconds.
final class WriteLockHolder: @unchecked Sendable {
    private let locked = DispatchSemaphore(value: 0)
    private let released = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var ok = false
    private var byUs = false

    init(path: String, begin: String = "BEGIN EXCLUSIVE", holdAtMost seconds: Double? = nil) {
        Thread { [self] in
            do {
                let queue = try DatabaseQueue(path: path)
                try queue.writeWithoutTransaction { db in
                    try db.execute(sql: begin)
                    ok = true
                    locked.signal()
                    if let seconds {
                        byUs = released.wait(timeout: .now() + seconds) == .success
                    } else {
                        released.wait()
                        byUs = true
                    }
                    try db.execute(sql: "ROLLBACK")
                }
            } catch {
                locked.signal()
            }
            finished.signal()
        }.start()
    }

    func waitUntilLocked() -> Bool {
        locked.wait()
        return ok
    }

    func release() { released.signal() }

    /// Whether `release()` ended the hold (false: `holdAtMost` ran out); waits for the holder's thread to finish.
    var releasedByUs: Bool {
        finished.wait()
        finished.signal()
        return byUs
    }
}
