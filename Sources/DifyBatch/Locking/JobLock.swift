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
        /// Another process (or another ``JobLock`` in this one) holds the lock. The holder's details are nil when
        /// the lock file does not name it (a holder that has not written it yet, or a foreign `flock`).
        case held(pid: Int32?, host: String?, since: Date?)
        /// The lock file could not be created or opened.
        case cannotOpen(path: String, reason: String)
    }

    public var job: String
    public var code: Code

    public init(job: String, code: Code) {
        self.job = job
        self.code = code
    }

    public var description: String {
        switch code {
        case .held(let pid, let host, let since):
            var holder = pid.map { "pid \($0)" } ?? "another process"
            if let host { holder += " on host \(host)" }
            if let since, let text = ReportFormatting.timestamp(since) { holder += " since \(text)" }
            return "job \(job) is held by \(holder); wait for it, or pass --wait"
        case .cannotOpen(let path, let reason):
            return "cannot open the lock file \(path) for job \(job): \(reason)"
        }
    }
}

/// One process per job at a time.
///
/// An exclusive `flock(2)` on `<directory>/<job>.lock`; the kernel releases it when the holder exits, even on
/// SIGKILL. The holder writes `{"host":"box","pid":123,"since":"2026-11-27T07:00:00Z"}` into the file so a second
/// process can name it. flock locks belong to an open file description, so two `JobLock`s for the same job in one
/// process also exclude each other. The file is opened close-on-exec (child processes do not inherit the lock)
/// and is never deleted (deleting a lock file races with processes that have it open).
public final class JobLock: Sendable {
    public let job: String
    public let path: String
    private let descriptor: LockedDescriptor

    private init(job: String, path: String, fd: Int32) {
        self.job = job
        self.path = path
        descriptor = LockedDescriptor(fd)
    }

    /// `<directory>/<job>.lock`
    public static func lockPath(directory: String, job: String) -> String {
        (directory as NSString).appendingPathComponent("\(job).lock")
    }

    /// Takes the lock without waiting; throws ``JobLockError`` `.held` naming the holder if it is taken.
    public static func acquire(directory: String, job: String) throws -> JobLock {
        let path = lockPath(directory: directory, job: job)
        guard !job.isEmpty, !job.contains("/"), job != ".", job != ".." else {
            throw JobLockError(job: job, code: .cannotOpen(path: path, reason: "invalid job name"))
        }
        do {
            try AtomicFile.createDirectories(directory)
        } catch {
            throw JobLockError(job: job, code: .cannotOpen(path: path, reason: "\(error)"))
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw JobLockError(job: job, code: .cannotOpen(path: path, reason: String(cString: strerror(errno))))
        }
        var result: Int32
        repeat { result = flock(fd, LOCK_EX | LOCK_NB) } while result != 0 && errno == EINTR
        if result != 0 {
            let failure = errno
            defer { _ = close(fd) }
            if failure == EWOULDBLOCK {
                let holder = readHolder(fd)
                throw JobLockError(job: job, code: .held(pid: holder.pid, host: holder.host, since: holder.since))
            }
            throw JobLockError(job: job, code: .cannotOpen(path: path, reason: String(cString: strerror(failure))))
        }
        writeHolder(fd)
        return JobLock(job: job, path: path, fd: fd)
    }

    /// Waits until the lock is free, trying every `interval`. Throws `CancellationError` when the task is
    /// cancelled, and ``JobLockError`` `.cannotOpen` at once.
    public static func acquire(directory: String, job: String, waitingEvery interval: Duration) async throws -> JobLock {
        while true {
            try Task.checkCancellation()
            do {
                return try acquire(directory: directory, job: job)
            } catch let error as JobLockError {
                guard case .held = error.code else { throw error }
            }
            try await Task.sleep(for: interval)
        }
    }

    /// Whether this instance still holds the lock.
    public var isHeld: Bool { descriptor.isOpen }

    /// Releases the lock (clearing the holder details). Idempotent; also done on deinit.
    public func release() {
        descriptor.closeOnce { fd in
            _ = ftruncate(fd, 0)
            _ = flock(fd, LOCK_UN)
        }
    }

    deinit {
        release()
    }

    // MARK: - Holder details

    private static func writeHolder(_ fd: Int32) {
        var hostBuffer = [CChar](repeating: 0, count: 256)
        let host = gethostname(&hostBuffer, hostBuffer.count - 1) == 0 ? String(decoding: hostBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "unknown"
        let holder: JSONValue = .object([
            "pid": .int(Int64(getpid())),
            "host": .string(host),
            "since": .string(ReportFormatting.timestamp(Date()) ?? ""),
        ])
        let data = Data((holder.jsonString() + "\n").utf8)
        // Best effort: the lock works without the details.
        if ftruncate(fd, 0) == 0 {
            data.withUnsafeBytes { buffer in _ = pwrite(fd, buffer.baseAddress, buffer.count, 0) }
        }
    }

    private static func readHolder(_ fd: Int32) -> (pid: Int32?, host: String?, since: Date?) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0, let value = try? JSONValue.parse(Data(buffer[0..<count])) else { return (nil, nil, nil) }
        let pid = value["pid"]?.intValue.flatMap { Int32(exactly: $0) }
        let host = value["host"]?.stringValue
        let since = value["since"]?.stringValue.flatMap { text -> Date? in
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime]
            return formatter.date(from: text)
        }
        return (pid, host, since)
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
