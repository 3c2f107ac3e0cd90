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

        let result = try await CLI.run(["demo", "--dir", demo], in: scratch.path, environment: ["HOME": scratch.path])
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
        // The run is recorded with the exit code `dify-batch run` would end with (1: a rejection), the status
        // table shows it, and the summary says so, why the document was rejected, and why the demo exits 0 anyway.
        let runs = try await ledger.lastRuns()
        #expect(runs.values.map(\.run.exitCode) == [1], "\(runs)")
        #expect(result.stdout.contains("exit 1") && !result.stdout.contains("exit 0 "), "\(result.stdout)")
        #expect(result.stdout.contains("Run #1 ended with exit 1, as `dify-batch run` would: 1 document(s) rejected before upload:\n"
                                       + "  \(rejectedSample): file_type_not_allowed: Dify detects .png files as image"), "\(result.stdout)")
        #expect(result.stdout.contains("The demo itself exits 0: that rejection is part of it"), "\(result.stdout)")
        #expect(result.stderr.contains("[\(files.count)/\(files.count)]"), "\(result.stderr)")
        #expect(!result.stdout.contains("\u{1B}["), "no escape codes into a pipe")
    }

    @Test func demo_withoutSamples_exits2WithAClearMessage() async throws {
        let scratch = try Scratch()
        let result = try await CLI.run(["demo", "--dir", scratch.file("d"), "--samples", scratch.file("nowhere")], in: scratch.path)
        #expect(result.status == 2)
        #expect(result.stderr.contains("cannot find the samples/ folder"), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }
}
