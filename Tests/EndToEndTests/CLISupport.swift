import Foundation

/// Runs the built `dify-batch` binary and captures its output.
struct CLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static let binary: String = {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dify-batch").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent(".build/debug/dify-batch").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return beside
    }()

    /// Runs `dify-batch arguments...` (optionally in another working directory) with the environment given plus
    /// PATH and HOME. Output goes through files, so nothing is a terminal and no pipe can fill up; the wait never
    /// blocks a thread of the cooperative pool, which an in-process simulator needs to answer the child.
    static func run(_ arguments: [String], in directory: String? = nil, environment: [String: String] = [:],
                    timeout: Duration = .seconds(90)) async throws -> Result {
        try await runProgram(binary, arguments, in: directory, environment: environment, timeout: timeout)
    }

    /// Runs any program the way ``run(_:in:environment:timeout:)`` does; killed after `timeout`.
    static func runProgram(_ path: String, _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:],
                           timeout: Duration = .seconds(90)) async throws -> Result {
        let scratch = try Scratch()
        let outPath = scratch.file("stdout"), errPath = scratch.file("stderr")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        env["HOME"] = ProcessInfo.processInfo.environment["HOME"]
        for (key, value) in environment { env[key] = value }
        process.environment = env
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        defer { try? out.close(); try? err.close() }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        return Result(status: process.terminationStatus, stdout: read(outPath), stderr: read(errPath))
    }
}

/// A temporary folder removed when the value is released.
final class Scratch: @unchecked Sendable {
    let path: String

    init() throws {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("dify-batch-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
