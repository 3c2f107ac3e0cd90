import DifyBatch
import DifySimulator
import Foundation
import Logging
import Synchronization

/// A throw-away job workspace: `in/`, `out/`, `done/`, `stage/`, `jobs/job.yaml`, `state/ledger.sqlite`.
struct BenchWorkspace {
    static let keyVariable = "DIFY_BENCH_KEY"
    static let jobName = "bench"

    let root: String
    var inbox: String { root + "/in" }
    var outbox: String { root + "/out" }
    var stage: String { root + "/stage" }
    var specPath: String { root + "/jobs/job.yaml" }
    var dbPath: String { root + "/state/ledger.sqlite" }

    /// Creates a fresh workspace under `parent` (default: the system temp folder).
    init(parent: String? = nil) throws {
        let base = parent ?? NSTemporaryDirectory()
        root = (base as NSString).appendingPathComponent("dify-batch-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        for folder in ["in", "out", "jobs", "state", "stage"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
    }

    /// Writes the job spec. `settle: 0s` always; everything else as given.
    func writeSpec(baseURL: String, concurrency: Int, afterSuccess: String = "keep", maxSize: String? = nil,
                   responseMode: String = "streaming") throws {
        let spec = """
            name: \(Self.jobName)
            inbox: ../in
            outbox: ../out
            dify:
              base_url: \(baseURL)
              api_key_env: \(Self.keyVariable)
              response_mode: \(responseMode)
            match:
              settle: 0s
            \(maxSize.map { "  max_size: \($0)" } ?? "")
            concurrency: \(concurrency)
            retry: {max_attempts: 3, base_delay: 100ms, max_delay: 1s}
            timeout: 10m
            after_success: \(afterSuccess)
            """
        try spec.write(toFile: specPath, atomically: true, encoding: .utf8)
    }

    /// Writes `count` small text files (~100–300 bytes, distinct contents) into `in/`, 1000 per folder.
    func dropSmallFiles(_ count: Int, into folder: String? = nil) throws {
        let target = folder ?? inbox
        for index in 0..<count {
            let dir = target + "/d\(index / 1000)"
            if index % 1000 == 0 { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            try Self.writeFile(Self.smallText(index), to: dir + "/doc-\(index).txt")
        }
    }

    static func smallText(_ index: Int) -> String {
        var text = "Document \(index)\n"
        let words = ["invoice", "total", "amount", "due", "data", "line", "summary", "report"]
        for line in 0..<(index % 5 + 2) {
            text += (0..<8).map { words[($0 + line + index) % words.count] }.joined(separator: " ") + "\n"
        }
        return text
    }

    static func writeFile(_ text: String, to path: String) throws {
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BenchError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes = Array(text.utf8)
        let written = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw BenchError("short write to \(path)") }
    }

    /// Writes a file of `bytes` bytes in 1 MB chunks (never holding it in memory).
    static func writeLarge(path: String, bytes: Int) throws {
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BenchError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        for i in chunk.indices { chunk[i] = UInt8(ascii: "a") &+ UInt8(i % 26) }
        for i in stride(from: 0, to: chunk.count, by: 64) { chunk[i] = UInt8(ascii: "\n") }
        var left = bytes
        while left > 0 {
            let n = min(left, chunk.count)
            let written = chunk.withUnsafeBytes { write(fd, $0.baseAddress, n) }
            guard written == n else { throw BenchError("short write to \(path)") }
            left -= n
        }
    }

    var environment: [String: String] { [Self.keyVariable: SimulatedApp.defaultAPIKey] }

    /// Builds the in-process pipeline the way `dify-batch run`/`watch` does (default options unless changed).
    func makePipeline(mode: PipelineOptions.Mode, observers: [any PipelineObserver] = [],
                      statements: StatementCounter? = nil,
                      configure: (inout PipelineOptions) -> Void = { _ in }) throws -> (Pipeline, SQLiteLedger) {
        let specs = try JobSpecLoader.load(paths: [specPath])
        let ledger = try SQLiteLedger(path: dbPath, traceStatements: statements.map { $0.count })
        var options = PipelineOptions(mode: mode)
        options.seed = 42
        configure(&options)
        var logger = Logger(label: "dify-batch-bench")
        logger.logLevel = .error
        let pipeline = Pipeline(specs: specs, ledger: ledger, options: options, logger: logger, environment: environment, observers: observers)
        return (pipeline, ledger)
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Process measurements

enum ProcessStats {
    /// User + system CPU seconds of this process (every thread, including an in-process simulator).
    static func cpuSeconds() -> Double {
        let usage = selfUsage()
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// getrusage(RUSAGE_SELF).
    static func selfUsage() -> rusage {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        return usage
    }

    /// getrusage(RUSAGE_CHILDREN): finished and waited-for child processes.
    static func childrenUsage() -> rusage {
        var usage = rusage()
        getrusage(Int32(RUSAGE_CHILDREN.rawValue), &usage)
        return usage
    }

    private static func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1_000_000 }

    /// Kernel CPU in µs per file creation (open O_CREAT, a 300-byte write, close; no fsync), measured on `count`
    /// files created in `folder` (kept: deleting them would cause the very effect measured). On an ext4 without a
    /// journal (this machine) the inode allocator skips every inode deleted in the last 60-360 s with one
    /// buffer-cache lookup each, so right after a build or a test suite each creation costs up to ~0.5 ms more
    /// kernel CPU than on a quiet filesystem (~20-40 µs): the daemon creates one outbox file per document, so its
    /// sys CPU then rises with it (BENCHMARKS.md §15).
    static func fileCreateMicroseconds(in folder: String, count: Int = 200) -> Double {
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let bytes = [UInt8](repeating: 0x78, count: 300)
        let before = selfUsage().ru_stime
        for index in 0..<count {
            let fd = open("\(folder)/probe-\(index)", O_WRONLY | O_CREAT | O_EXCL, 0o644)
            guard fd >= 0 else { continue }
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        let after = selfUsage().ru_stime
        return (seconds(after) - seconds(before)) * 1_000_000 / Double(count)
    }

    /// User + system CPU seconds of another process, from `/proc/PID/stat` (clock ticks).
    static func cpuSeconds(pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, utime field 14, stime field 15 (1-based in proc(5)).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The 1-minute load average (`/proc/loadavg`), printed beside each figure (the machine is shared).
    static func loadAverage() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "-" }
        return String(text.split(separator: " ").first ?? "-")
    }

    /// A `/proc/<pid>/status` field in kB (`VmHWM`, `VmRSS`).
    static func statusKB(_ field: String, pid: String = "self") -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
        }
        return nil
    }

    /// Resets this process's peak RSS (VmHWM) to the current RSS (`echo 5 > /proc/self/clear_refs`, Linux ≥ 4.0).
    @discardableResult
    static func resetPeakRSS() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }
}

/// Samples a process's RSS every few milliseconds (a cross-check of VmHWM).
final class RSSSampler: Sendable {
    private let peak = Mutex<Int>(0)
    var peakKB: Int { peak.withLock { $0 } }

    func run(every interval: Duration = .milliseconds(20)) async {
        while !Task.isCancelled {
            if let rss = ProcessStats.statusKB("VmRSS") { peak.withLock { $0 = max($0, rss) } }
            try? await Task.sleep(for: interval)
        }
    }
}

// MARK: - The simulator as a child process (this binary's hidden `simulator` subcommand)

/// A `dify-batch-bench simulator` child: the daemon's CPU and memory can then be measured on this process alone.
final class SimulatorChild: @unchecked Sendable {
    let process = Process()
    let baseURL: String
    private let output: Pipe

    init(latency: String = "0ms", jitter: String = "0ms", fileMB: Int = 15) throws {
        process.executableURL = URL(fileURLWithPath: Self.executablePath)
        process.arguments = ["simulator", "--latency", latency, "--jitter", jitter, "--file-mb", String(fileMB)]
        output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // The first stdout line is the base URL.
        var line = Data()
        let handle = output.fileHandleForReading
        while true {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty { throw BenchError("the simulator child exited before printing its URL") }
            if byte.first == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        baseURL = String(decoding: line, as: UTF8.self)
    }

    /// A simulator already running at `url` (no child: its CPU is not measured). For `valgrind`, which cannot
    /// start a child through Foundation's Process ("Bad file descriptor" from its posix_spawn file actions).
    init(external url: String) {
        output = Pipe()
        baseURL = url
    }

    /// The child's pid; 0 for an external simulator.
    var pid: Int32 { process.processIdentifier }

    /// SIGTERM, then waits (at most 10 s, then SIGKILL) until the child is gone. Not `Process.waitUntilExit()`: it
    /// learns of the exit through the main dispatch queue, which `main.swift`'s loop drains but a thread blocked in
    /// waitUntilExit on a cooperative thread never saw change (the bench hung at its end).
    func stop() {
        let pid = process.processIdentifier
        guard pid > 0, kill(pid, 0) == 0 else { return }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(10)
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            // Reaped here, or already reaped by Foundation (ECHILD), or gone.
            if reaped == pid || (reaped < 0 && errno == ECHILD) || kill(pid, 0) != 0 { return }
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return
            }
            usleep(5_000)
        }
    }

    static var executablePath: String {
        let argument = CommandLine.arguments[0]
        if argument.contains("/") { return URL(fileURLWithPath: argument).standardizedFileURL.path }
        return (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? argument
    }
}

// MARK: - Observation

/// Counts pipeline events and keeps the monotonic start instants of uploads.
final class BenchObserver: PipelineObserver {
    struct State {
        var settled = 0
        var succeeded = 0
        var firstUploadStart: ContinuousClock.Instant?
        /// Process CPU seconds when the first upload finished (≈ the end of preflight + first scan).
        var cpuAtFirstUpload: Double?
        var lastSettle: ContinuousClock.Instant?
        var uploadStarts: [ContinuousClock.Instant] = []
        var settledPaths: [String] = []
        var jobStarted = false
        /// Sum of attempt durations and count, per phase (`upload`, `run`, `recover`).
        var phaseSeconds: [String: Double] = [:]
        var phaseCount: [String: Int] = [:]
        var keepPaths = false
    }
    let state = Mutex(State())

    init(keepPaths: Bool = false) { state.withLock { $0.keepPaths = keepPaths } }

    /// Mean attempt duration of a phase in ms.
    func meanMilliseconds(_ phase: String) -> Double {
        state.withLock { s in (s.phaseSeconds[phase] ?? 0) * 1000 / Double(max(s.phaseCount[phase] ?? 0, 1)) }
    }

    func record(_ event: PipelineEvent) {
        let now = ContinuousClock.now
        if case .attemptFinished(_, let phase, _, let seconds) = event {
            state.withLock {
                $0.phaseSeconds[phase.rawValue, default: 0] += seconds
                $0.phaseCount[phase.rawValue, default: 0] += 1
            }
        }
        switch event {
        case .attemptFinished(_, let phase, _, let seconds) where phase == .upload:
            let start = now - .nanoseconds(Int64(seconds * 1e9))
            let first = state.withLock {
                $0.uploadStarts.append(start)
                if $0.firstUploadStart == nil { $0.firstUploadStart = start; return true }
                return false
            }
            if first {
                let cpu = ProcessStats.cpuSeconds()
                state.withLock { $0.cpuAtFirstUpload = cpu }
            }
        case .documentSettled(_, let document):
            state.withLock {
                $0.settled += 1
                if document.state == .succeeded { $0.succeeded += 1 }
                $0.lastSettle = now
                if $0.keepPaths { $0.settledPaths.append(document.path) }
            }
        case .jobStarted:
            state.withLock { $0.jobStarted = true }
        default:
            break
        }
    }
}

// MARK: - Output

enum Table {
    /// A Markdown table.
    static func render(headers: [String], rows: [[String]]) -> String {
        var out = "| " + headers.joined(separator: " | ") + " |\n"
        out += "|" + headers.map { _ in "---" }.joined(separator: "|") + "|\n"
        for row in rows { out += "| " + row.joined(separator: " | ") + " |\n" }
        return out
    }
}

func fmt(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }

func parseDuration(_ text: String) throws -> Duration {
    guard let duration = HumanDuration.parse(text) else { throw BenchError("'\(text)' is not a duration like 200ms or 2s") }
    return duration
}

func milliseconds(_ duration: Duration) -> Double { duration.seconds * 1000 }

/// Prints to stdout at once (no buffering surprises when stdout is a pipe).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
}

/// Progress and notes go to stderr so stdout stays the table.
func note(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Median and percentile of a sample.
func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let rank = min(sorted.count - 1, max(0, Int((p / 100 * Double(sorted.count - 1)).rounded())))
    return sorted[rank]
}
