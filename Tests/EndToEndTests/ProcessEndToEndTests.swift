import DifyBatch
import DifySimulator
import Foundation
import Testing

/// A `dify-batch` child process we can signal.
final class Child: @unchecked Sendable {
    let process = Process()
    let stderrPath: String

    init(_ arguments: [String], environment: [String: String], stderrPath: String) throws {
        self.stderrPath = stderrPath
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = arguments
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        for (key, value) in environment { env[key] = value }
        process.environment = env
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for exit without blocking a cooperative thread for long.
    func exitStatus(timeout: Duration = .seconds(60)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                signal(SIGKILL)
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
}

func waitUntil(timeout: Duration = .seconds(30), _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return false
}

@Suite(.serialized) struct ProcessEndToEndTests {
    @Test func runKilledWithSIGKILL_andRestarted_finishesTheBatchWithEveryFileExactlyOnce() async throws {
        var faults = FaultPlan()
        faults.latency = .milliseconds(150)
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 4)
            for index in 0..<40 { try workspace.drop("batch/file \(index).txt", documentText(index)) }
            let first = try Child(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment,
                                  stderrPath: workspace.scratch.file("first.log"))
            #expect(try await waitUntil { workspace.outputs().count >= 8 })
            first.signal(SIGKILL)
            let killed = try await first.exitStatus()
            #expect(killed != 0)
            #expect(workspace.outputs().count < 40, "killed mid-batch")

            let second = try Child(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment,
                                   stderrPath: workspace.scratch.file("second.log"))
            let status = try await second.exitStatus()
            #expect(status == 0, "\(second.stderr)")
            let outputs = workspace.outputs()
            #expect(outputs.count == 40)
            #expect(Set(outputs).count == 40)
            #expect(workspace.files(in: workspace.outbox).allSatisfy { !$0.contains(".tmp") }, "no partial files left")
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            let documents = try await ledger.documents(matching: DocumentFilter())
            #expect(documents.count == 40 && documents.allSatisfy { $0.state == .succeeded })
            // Every file ran once, except runs lost with the killed process that recovery could not find.
            let runs = simulator.stats.runsBySHA256.values.reduce(0, +)
            let duplicates = documents.reduce(0) { $0 + $1.duplicateRuns }
            #expect(runs == 40 + duplicates)
            #expect(duplicates == 0, "runs left in flight had their ids recorded and were recovered")
        }
    }

    @Test func watch_onSIGTERM_drainsInFlightDocumentsAndExitsZero() async throws {
        var faults = FaultPlan()
        faults.latency = .seconds(2)  // a window the poll below sees on a loaded machine too
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 4)
            let child = try Child(["watch", "--db", workspace.dbPath, "--grace", "20s", workspace.specPath],
                                  environment: workspace.environment, stderrPath: workspace.scratch.file("watch.log"))
            try await Task.sleep(for: .milliseconds(500))
            for index in 0..<4 { try workspace.drop("w\(index).txt", documentText(index)) }
            #expect(try await waitUntil { simulator.stats.activeRuns > 0 })
            child.signal(SIGTERM)
            let status = try await child.exitStatus()
            #expect(status == 0, "\(child.stderr)")
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            let documents = try await ledger.documents(matching: DocumentFilter())
            #expect(!documents.isEmpty)
            #expect(documents.allSatisfy { !$0.state.isInFlight }, "\(documents.map { ($0.path, $0.state) })")
            #expect(workspace.outputs().count == documents.filter { $0.state == .succeeded }.count)
        }
    }

    @Test func secondRunOnAHeldJob_exitsWith5NamingTheHolder_andSendsNothing() async throws {
        var faults = FaultPlan()
        faults.latency = .milliseconds(400)
        try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 1)
            for index in 0..<6 { try workspace.drop("h\(index).txt", documentText(index)) }
            let holder = try Child(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment,
                                   stderrPath: workspace.scratch.file("holder.log"))
            #expect(try await waitUntil { simulator.stats.uploads > 0 })
            let uploads = simulator.stats.uploads
            let second = try await CLI.run(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment)
            #expect(second.status == 5)
            #expect(second.stderr.contains("pid \(holder.process.processIdentifier)"), "\(second.stderr)")
            #expect(simulator.stats.uploads <= uploads + 1, "the second process sent nothing")
            #expect(try await holder.exitStatus() == 0)
        }
    }

    @Test func run_withABadSpec_exits2BeforeTouchingAnything() async throws {
        let scratch = try Scratch()
        try FileManager.default.createDirectory(atPath: scratch.file("in"), withIntermediateDirectories: true)
        try "inbox: in\noutbox: out\ndify: {base_url: http://127.0.0.1:9/v1}\nconcurrency: -2\n".write(toFile: scratch.file("bad.yaml"), atomically: true, encoding: .utf8)
        let result = try await CLI.run(["run", "--db", scratch.file("l.sqlite"), scratch.file("bad.yaml")])
        #expect(result.status == 2)
        #expect(result.stderr.contains("bad.yaml:4: concurrency: must be a whole number from 1 to 256 (got -2)"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.file("l.sqlite")))
    }

    @Test func runReport_writesOneJSONLinePerDocumentTouched() async throws {
        try await withDifySimulator { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("ok.txt", "fine")
            try workspace.drop("empty.txt", "")
            let report = workspace.scratch.file("report.jsonl")
            let result = try await CLI.run(["run", "--db", workspace.dbPath, "--report", report, workspace.specPath], environment: workspace.environment)
            #expect(result.status == 1, "one rejected document: \(result.stderr)")
            #expect(result.stderr.contains("docs: succeeded 1, skipped 0, dead 0, rejected 1"))
            #expect(result.stdout.isEmpty)
            let lines = try String(contentsOfFile: report, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 2)
            let states = try lines.map { line -> String in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                return "\(object?["path"] as? String ?? ""):\(object?["state"] as? String ?? "")"
            }
            #expect(Set(states) == ["ok.txt:succeeded", "empty.txt:rejected"])
        }
    }
}
