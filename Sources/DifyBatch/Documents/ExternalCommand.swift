import Foundation

/// Runs an extractor program with a deadline. Output goes to temporary files (no pipe can fill up and stall
/// the child); the caller gets stdout's bytes, the exit status and the end of stderr.
enum ExternalCommand {
    struct Output: Sendable {
        var status: Int32
        var timedOut: Bool
        var stdout: Data
        /// The last 400 bytes of stderr, as text.
        var stderrTail: String
    }

    /// Finds `name` on `PATH` (nil when absent).
    static func which(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let candidate = String(folder) + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Foundation starts the child in its own process group: killing the group also stops what it started.
    private static func killGroup(_ pid: Int32) {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
    }

    /// Runs `executable arguments…`; stdout is limited to `maxOutput` bytes (the rest is cut off).
    static func run(_ executable: String, _ arguments: [String], timeout: Duration, maxOutput: Int = 64 << 20) async throws -> Output {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("dify-batch-extract-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("out"), errURL = scratch.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        defer { try? out.close(); try? err.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        let waiter = ExitWaiter()
        process.terminationHandler = { _ in waiter.exited() }
        try process.run()
        let finished = await withTaskCancellationHandler {
            await withTaskGroup(of: Bool.self) { group in
                group.addTask { await waiter.wait(); return true }
                group.addTask {
                    try? await Task.sleep(for: timeout)
                    return false
                }
                let first = await group.next() ?? true
                if !first { Self.killGroup(process.processIdentifier) }
                group.cancelAll()
                await group.waitForAll()
                return first
            }
        } onCancel: {
            Self.killGroup(process.processIdentifier)
        }
        try Task.checkCancellation()
        let reader = try FileHandle(forReadingFrom: outURL)
        defer { try? reader.close() }
        let stdout = try reader.read(upToCount: maxOutput) ?? Data()
        let errData = (try? Data(contentsOf: errURL)) ?? Data()
        let tail = String(decoding: errData.suffix(400), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return Output(status: process.terminationStatus, timedOut: !finished, stdout: stdout, stderrTail: tail)
    }
}

/// One process exit, awaited once (the exit may come before the wait starts).
private final class ExitWaiter: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    private var continuation: CheckedContinuation<Void, Never>?

    func exited() {
        let waiting: CheckedContinuation<Void, Never>? = lock.withLock {
            done = true
            defer { continuation = nil }
            return continuation
        }
        waiting?.resume()
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow: Bool = lock.withLock {
                if done { return true }
                self.continuation = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}
