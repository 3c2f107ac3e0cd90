import DifyKit
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a job lock could not be taken.
public struct JobLockError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// Another process (or another ``JobLock`` in this one) holds the inbox. `pid` comes from the kernel's
        /// lock table (`/proc/locks`), `host` is this machine's name when the pid is known; `since` and `command`
        /// come from the holder's row in the ledger's `runs` table when it uses the same ledger. Nil when unknown.
        case held(pid: Int32?, host: String?, since: Date?)
        /// The inbox folder could not be opened or locked for a reason other than permissions.
        case cannotOpen(path: String, reason: String)
        /// The inbox folder cannot be opened by this user (EACCES/EPERM): exit 2, the fix is a permission change.
        case denied(path: String, reason: String)
    }

    public var job: String
    public var code: Code
    /// What the holder is, when the ledger knows it (`watch`, run #12).
    public var holderRun: String?

    public init(job: String, code: Code, holderRun: String? = nil) {
        self.job = job
        self.code = code
        self.holderRun = holderRun
    }

    /// `.held` is exit 5 (another process works on it); a folder that cannot be opened is exit 2 (fix it).
    public var exitStatus: ExitStatus {
        if case .held = code { return .locked }
        return .usage
    }

    public var description: String {
        switch code {
        case .held(let pid, let host, let since):
            var holder = pid.map { "pid \($0)" } ?? "another process"
            if let host { holder += " on host \(host)" }
            if let since, let text = ReportFormatting.timestamp(since) { holder += " since \(text)" }
            if let holderRun { holder += " (\(holderRun))" }
            return "job \(job) is held by \(holder); wait for it, or pass --wait"
        case .cannotOpen(let path, let reason):
            return "cannot lock the inbox \(path) of job \(job): \(reason); check that `inbox:` names an existing local folder"
        case .denied(let path, let reason):
            return "cannot lock the inbox \(path) of job \(job): \(reason); dify-batch needs read access to the inbox folder "
                + "(the lock is taken on the folder itself, no file is created): run dify-batch as the folder's owner, "
                + "or grant access, e.g. `chown <service-user> \(path)` or `chmod u+rwx \(path)`"
        }
    }
}

/// One process per inbox at a time, whatever the ledger, the job name or the spelling of the path.
///
/// An exclusive `flock(2)` on a descriptor of the inbox folder itself: no file is created (nothing for the scanner
/// to see, nothing a root-run process could leave behind with the wrong owner), and a symlinked spelling of the
/// same folder is the same inode, so it is the same lock. The kernel releases it when the holder exits, even on
/// SIGKILL. flock locks belong to an open file description, so two `JobLock`s on one inbox in one process also
/// exclude each other. The descriptor is close-on-exec (child processes do not inherit the lock).
public final class JobLock: Sendable {
    public let job: String
    /// The inbox folder as given.
    public let inbox: String
    private let descriptor: LockedDescriptor

    private init(job: String, inbox: String, fd: Int32) {
        self.job = job
        self.inbox = inbox
        descriptor = LockedDescriptor(fd)
    }

    /// Takes the lock without waiting. Throws ``JobLockError``: `.held` naming the holder's pid when the kernel
    /// shows it, `.denied` when this user cannot open the folder, `.cannotOpen` otherwise (missing, not a folder).
    public static func acquire(inbox: String, job: String) throws -> JobLock {
        let fd = open(inbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            let failure = errno
            let reason = String(cString: strerror(failure))
            if failure == EACCES || failure == EPERM {
                throw JobLockError(job: job, code: .denied(path: inbox, reason: reason))
            }
            throw JobLockError(job: job, code: .cannotOpen(path: inbox, reason: reason))
        }
        var result: Int32
        repeat { result = flock(fd, LOCK_EX | LOCK_NB) } while result != 0 && errno == EINTR
        if result != 0 {
            let failure = errno
            defer { _ = close(fd) }
            if failure == EWOULDBLOCK {
                let pid = holderPID(fd)
                throw JobLockError(job: job, code: .held(pid: pid, host: pid == nil ? nil : hostName, since: nil))
            }
            throw JobLockError(job: job, code: .cannotOpen(path: inbox, reason: String(cString: strerror(failure))))
        }
        return JobLock(job: job, inbox: inbox, fd: fd)
    }

    /// Waits until the lock is free, trying every `interval`. Throws `CancellationError` when the task is
    /// cancelled, and any ``JobLockError`` other than `.held` at once.
    public static func acquire(inbox: String, job: String, waitingEvery interval: Duration) async throws -> JobLock {
        while true {
            try Task.checkCancellation()
            do {
                return try acquire(inbox: inbox, job: job)
            } catch let error as JobLockError {
                guard case .held = error.code else { throw error }
            }
            try await Task.sleep(for: interval)
        }
    }

    /// Whether this instance still holds the lock.
    public var isHeld: Bool { descriptor.isOpen }

    /// Releases the lock. Idempotent; also done on deinit.
    public func release() {
        descriptor.closeOnce { fd in _ = flock(fd, LOCK_UN) }
    }

    deinit {
        release()
    }

    // MARK: - The holder

    /// This machine's host name (as `runs.host` records it).
    static var hostName: String {
        ProcessInfo.processInfo.hostName
    }

    /// The pid holding an flock on the same inode as `fd`, from `/proc/locks` (nil where there is none).
    private static func holderPID(_ fd: Int32) -> Int32? {
        var status = stat()
        guard fstat(fd, &status) == 0, let text = ProcFS.text("/proc/locks") else { return nil }
        return holderPID(procLocks: text, device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// Parses `/proc/locks` lines such as `3: FLOCK  ADVISORY  WRITE 4242 00:2f:1234567 0 EOF` (device as hex
    /// major:minor) and returns the pid of the granted FLOCK on `device`/`inode` (waiters, `->` lines, are skipped).
    static func holderPID(procLocks text: String, device: UInt64, inode: UInt64) -> Int32? {
        let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~0xfff)
        let minor = (device & 0xff) | ((device >> 12) & ~0xff)
        var sameInode: Int32?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1] == "FLOCK" else { continue }
            let identity = fields[5].split(separator: ":")
            guard identity.count == 3, UInt64(identity[2]) == inode, let pid = Int32(fields[4]) else { continue }
            if UInt64(identity[0], radix: 16) == major && UInt64(identity[1], radix: 16) == minor { return pid }
            sameInode = sameInode ?? pid
        }
        return sameInode
    }
}

/// A file descriptor closed exactly once, under a lock.
private final class LockedDescriptor: @unchecked Sendable {
    private let lock = NSLock()
    private var fd: Int32

    init(_ fd: Int32) { self.fd = fd }

    var isOpen: Bool { lock.withLock { fd >= 0 } }

    func closeOnce(_ beforeClosing: (Int32) -> Void) {
        lock.withLock {
            guard fd >= 0 else { return }
            beforeClosing(fd)
            _ = close(fd)
            fd = -1
        }
    }
}
