import DifyBatch
import Foundation
import Testing

/// `dify-batch demo` run as a user would: the real binary, from a clean folder that has no `samples/`.
@Suite struct DemoEndToEndTests {
    /// The repository's `samples/` folder.
    static let samples: String = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("samples").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
        }
        return "samples"
    }()

    /// Every sample file (relative paths); the image is the one the demo shows being rejected.
    static func sampleFiles() -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: samples)
        var files: [String] = []
        while let item = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: (samples as NSString).appendingPathComponent(item), isDirectory: &isDirectory),
               !isDirectory.boolValue, !item.split(separator: "/").contains(where: { $0.hasPrefix(".") }) {
                files.append(item)
            }
        }
        return files.sorted()
    }

    @Test func demo_fromACleanFolder_endsWithEverySampleInItsExpectedState() async throws {
        let scratch = try Scratch()
        let demo = scratch.file("my demo")
        let files = Self.sampleFiles()
        #expect(files.count >= 6)
        let rejectedSample = "scans/receipt photo.png"
        #expect(files.contains(rejectedSample))

        let result = try await AsyncCLI.run(["demo", "--dir", demo], in: scratch.path, environment: ["HOME": scratch.path])
        #expect(result.status == 0, "stdout:\n\(result.stdout)\nstderr:\n\(result.stderr)")

        // The ledger: every sample once, each in its expected state.
        let ledger = try SQLiteLedger(path: (demo as NSString).appendingPathComponent("ledger.sqlite"))
        let documents = try await ledger.documents(matching: DocumentFilter())
        #expect(documents.map(\.path).sorted() == files)
        for document in documents {
            if document.path == rejectedSample {
                #expect(document.state == .rejected)
                #expect(document.lastError?.code == "file_type_not_allowed")
            } else {
                #expect(document.state == .succeeded, "\(document.path): \(document.lastError?.message ?? "")")
            }
        }
        // The outputs exist: one result per success (source moved to done/), an error document for the rejection.
        let outbox = (demo as NSString).appendingPathComponent("outbox")
        for file in files where file != rejectedSample {
            let output = (outbox as NSString).appendingPathComponent(file + ".json")
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output))) as? [String: Any]
            #expect(object?["status"] as? String == "succeeded", "\(file)")
            #expect(FileManager.default.fileExists(atPath: (demo as NSString).appendingPathComponent("done/" + file)))
        }
        #expect(FileManager.default.fileExists(atPath: (outbox as NSString).appendingPathComponent(rejectedSample + ".error.json")))
        // The spec never holds the key.
        let spec = try String(contentsOfFile: (demo as NSString).appendingPathComponent("demo.yaml"), encoding: .utf8)
        #expect(spec.contains("api_key_env: DIFY_BATCH_DEMO_KEY") && !spec.contains("app-simulator-key"))

        // What it prints: per-document results with the rejection's reason, the status table, where things are, usage.
        for fragment in ["rejected", rejectedSample, "does not accept", "Status\n", "SUCCEEDED", "Usage\n", "TOTAL",
                         "outputs:  \(outbox)/", "ledger:   \(demo)/ledger.sqlite"] {
            #expect(result.stdout.contains(fragment), "missing \(fragment) in:\n\(result.stdout)")
        }
        #expect(result.stderr.contains("[\(files.count)/\(files.count)]"), "\(result.stderr)")
        #expect(!result.stdout.contains("\u{1B}["), "no escape codes into a pipe")
    }

    @Test func demo_withoutSamples_exits2WithAClearMessage() async throws {
        let scratch = try Scratch()
        let result = try await AsyncCLI.run(["demo", "--dir", scratch.file("d"), "--samples", scratch.file("nowhere")], in: scratch.path)
        #expect(result.status == 2)
        #expect(result.stderr.contains("cannot find the samples/ folder"), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }
}

/// Runs the built binary without blocking a thread of the cooperative pool while it runs (an in-process
/// simulator needs those threads to answer the child), optionally in another working directory.
enum AsyncCLI {
    static func run(_ arguments: [String], in directory: String? = nil, environment: [String: String] = [:]) async throws -> CLI.Result {
        let scratch = try Scratch()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        env["HOME"] = ProcessInfo.processInfo.environment["HOME"]
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let outPath = scratch.file("stdout"), errPath = scratch.file("stderr")
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        defer { try? out.close(); try? err.close() }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { finished in continuation.resume(returning: finished.terminationStatus) }
            do { try process.run() } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        return CLI.Result(status: status, stdout: try String(contentsOfFile: outPath, encoding: .utf8),
                          stderr: try String(contentsOfFile: errPath, encoding: .utf8))
    }
}
