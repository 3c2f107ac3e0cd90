import DifyBatch
import DifySimulator
import Foundation
import Testing

/// `dify-batch check` against an in-process simulator: what it reports, its exit codes, and that it never
/// uploads or runs anything.
@Suite struct CheckEndToEndTests {
    /// Writes a spec with the given `dify:` lines into a fresh scratch folder with an inbox.
    static func spec(_ scratch: Scratch, baseURL: String, dify extra: String = "", top: String = "") throws -> String {
        try FileManager.default.createDirectory(atPath: scratch.file("in"), withIntermediateDirectories: true)
        let path = scratch.file("check.yaml")
        try """
            name: checked
            inbox: in
            outbox: out
            dify:
              base_url: \(baseURL)
              api_key_env: DIFY_TEST_KEY
            \(extra.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            \(top)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func drop(_ scratch: Scratch, _ name: String, _ content: String) throws {
        let path = scratch.file("in/" + name)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(content.utf8).write(to: URL(fileURLWithPath: path))
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func check_fittingApp_reportsAppInputsLimitsAndInboxRejections_exit0_withoutUploadOrRun() async throws {
        try await withDifySimulator { simulator, baseURL in
            let scratch = try Scratch()
            let spec = try Self.spec(scratch, baseURL: baseURL, dify: "inputs: {language: de}", top: "match: {max_size: 1MB}")
            try Self.drop(scratch, "a/ok invoice.txt", "Total 12 EUR")
            try Self.drop(scratch, "scans/photo.png", "not really a png")
            try Self.drop(scratch, "empty.md", "")
            let environment = ["DIFY_TEST_KEY": SimulatedApp.defaultAPIKey]

            let text = try await CLI.run(["check", "--db", scratch.file("none.sqlite"), spec], environment: environment)
            #expect(text.status == 0, "\(text.stderr)")
            for fragment in ["job checked", "\"simulated-workflow\", workflow app (dify.app: auto)",
                             "document (file, required, detected) accepts document",
                             "language (text-input, optional): provided by the spec",
                             "document 15MB, image 10MB, audio 50MB, video 100MB; match.max_size 1MB",
                             "3 files, 2 would be rejected", "empty.md: the file is empty",
                             "scans/photo.png: Dify detects .png files as image", "OK, the job can run"] {
                #expect(text.stdout.contains(fragment), "missing \(fragment) in:\n\(text.stdout)")
            }
            #expect(!text.stdout.contains(SimulatedApp.defaultAPIKey) && !text.stderr.contains(SimulatedApp.defaultAPIKey))

            let json = try await CLI.run(["check", "--json", "--db", scratch.file("none.sqlite"), spec], environment: environment)
            #expect(json.status == 0)
            let root = try Self.json(json.stdout)
            #expect(root["ok"] as? Bool == true && root["exit_code"] as? Int == 0)
            let job = try #require((root["jobs"] as? [[String: Any]])?.first)
            #expect(job["verdict"] as? String == "ok")
            #expect(job["api_key"] as? String == "env DIFY_TEST_KEY")
            #expect((job["app"] as? [String: Any])?["mode"] as? String == "workflow")
            let file = try #require(job["file_input"] as? [String: Any])
            #expect(file["variable"] as? String == "document" && file["allowed_file_types"] as? [String] == ["document"])
            let inputs = try #require(job["inputs"] as? [[String: Any]])
            #expect(inputs.first { $0["variable"] as? String == "language" }?["provided_by"] as? String == "spec")
            #expect((job["limits"] as? [String: Any])?["max_size"] as? Int == 1_048_576)
            let inbox = try #require(job["inbox"] as? [String: Any])
            #expect(inbox["files"] as? Int == 3)
            let rejected = try #require(inbox["rejected"] as? [[String: Any]])
            #expect(rejected.map { "\($0["path"] as? String ?? ""):\($0["code"] as? String ?? "")" }
                    == ["empty.md:empty_file", "scans/photo.png:file_type_not_allowed"])

            // Only GET /info and GET /parameters: nothing uploaded, nothing run, no ledger created.
            #expect(simulator.stats.uploads == 0)
            #expect(simulator.stats.runsBySHA256.isEmpty)
            #expect(!FileManager.default.fileExists(atPath: scratch.file("none.sqlite")))
        }
    }

    @Test func check_requiredInputMissing_exit3_andNamesIt() async throws {
        var app = SimulatedApp.workflow(apiKey: "app-topic")
        app.userInputForm.append(.textInput("topic", required: true))
        try await withDifySimulator(SimulatorConfiguration(apps: [app])) { _, baseURL in
            let scratch = try Scratch()
            let spec = try Self.spec(scratch, baseURL: baseURL)
            try Self.drop(scratch, "x.txt", "hello")
            let result = try await CLI.run(["check", "--json", spec], environment: ["DIFY_TEST_KEY": "app-topic", "DIFY_BATCH_DB": scratch.file("l.sqlite")])
            #expect(result.status == 3, "\(result.stderr)")
            let job = try #require((try Self.json(result.stdout)["jobs"] as? [[String: Any]])?.first)
            #expect(job["verdict"] as? String == "configuration")
            #expect((job["problems"] as? [String])?.first?.contains("topic") == true)
            let topic = (job["inputs"] as? [[String: Any]])?.first { $0["variable"] as? String == "topic" }
            #expect(topic?["required"] as? Bool == true && topic?["provided_by"] == nil)
            // The inbox is still judged with what the app said.
            #expect((job["inbox"] as? [String: Any])?["files"] as? Int == 1)
            #expect(result.stderr.contains("topic"))
        }
    }

    @Test func check_wrongAppModeOrWrongKey_exit3() async throws {
        try await withDifySimulator { _, baseURL in
            let scratch = try Scratch()
            let spec = try Self.spec(scratch, baseURL: baseURL, dify: "app: completion")
            let mismatch = try await CLI.run(["check", spec], environment: ["DIFY_TEST_KEY": SimulatedApp.defaultAPIKey, "DIFY_BATCH_DB": scratch.file("l.sqlite")])
            #expect(mismatch.status == 3)
            #expect(mismatch.stdout.contains("the spec says dify.app: completion but the app behind this key is a workflow app"), "\(mismatch.stdout)")

            let other = try Scratch()
            let plain = try Self.spec(other, baseURL: baseURL)
            let wrongKey = try await CLI.run(["check", plain], environment: ["DIFY_TEST_KEY": "app-not-a-key", "DIFY_BATCH_DB": other.file("l.sqlite")])
            #expect(wrongKey.status == 3)
            #expect(wrongKey.stdout.contains("HTTP 401"), "\(wrongKey.stdout)")
            #expect(!wrongKey.stdout.contains("app-not-a-key") && !wrongKey.stderr.contains("app-not-a-key"))
        }
    }

    @Test func check_missingKey_exit2_unreachable_exit4_badSpec_exit2() async throws {
        let scratch = try Scratch()
        let spec = try Self.spec(scratch, baseURL: "http://127.0.0.1:1/v1")
        let environment = ["DIFY_BATCH_DB": scratch.file("l.sqlite")]

        let noKey = try await CLI.run(["check", spec], environment: environment)
        #expect(noKey.status == 2)
        #expect(noKey.stderr.contains("DIFY_TEST_KEY"), "\(noKey.stderr)")

        let unreachable = try await CLI.run(["check", "--json", spec], environment: environment.merging(["DIFY_TEST_KEY": "k"]) { $1 })
        #expect(unreachable.status == 4, "\(unreachable.stderr)")
        let job = try #require((try Self.json(unreachable.stdout)["jobs"] as? [[String: Any]])?.first)
        #expect(job["verdict"] as? String == "unavailable")

        let missing = try await CLI.run(["check", scratch.file("nope.yaml")], environment: environment)
        #expect(missing.status == 2)
        #expect(missing.stdout.isEmpty)
    }
}
