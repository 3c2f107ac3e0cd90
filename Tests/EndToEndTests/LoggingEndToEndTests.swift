import DifyBatch
import DifySimulator
import Foundation
import Testing

@Suite(.serialized) struct LoggingEndToEndTests {
    @Test func jsonLogs_areOneObjectPerLine_andDocumentLinesCarryJobPathAndDocument() async throws {
        try await withDifySimulator { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", documentText(1))
            try workspace.drop("sub/b.txt", documentText(2))
            try workspace.drop("empty.txt", "")
            let result = try await CLI.run(["run", "--db", workspace.dbPath, "--log-format", "json", "--log-level", "debug", "--progress-interval", "20ms",
                                      workspace.specPath], environment: workspace.environment)
            #expect(result.status == 1, "empty.txt is rejected: \(result.stderr)")
            var objects: [[String: Any]] = []
            for line in result.stderr.split(separator: "\n") {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
                objects.append(object)
            }
            #expect(!objects.isEmpty)
            for object in objects {
                for key in ["time", "level", "label", "message"] { #expect(object[key] is String, "\(key) in \(object)") }
                if object["document"] != nil || object["path"] != nil {
                    #expect(object["job"] as? String == "docs", "\(object)")
                }
                if object["document"] != nil { #expect(object["path"] is String && object["document"] is Int, "\(object)") }
            }
            let succeeded = objects.filter { $0["message"] as? String == "succeeded" }
            #expect(Set(succeeded.compactMap { $0["path"] as? String }) == ["a.txt", "sub/b.txt"])
            #expect(succeeded.allSatisfy { $0["document"] is Int && $0["job"] as? String == "docs" && $0["level"] as? String == "info" })
            // Numbers stay JSON numbers (issue 16).
            #expect(objects.contains { $0["message"] as? String == "progress" && $0["succeeded"] is Int && $0["in_flight"] is Int }, "\(result.stderr)")
            let summary = try #require(objects.first { $0["message"] as? String == "summary" })
            #expect(summary["job"] as? String == "docs" && summary["succeeded"] as? Int == 2 && summary["rejected"] as? Int == 1, "\(summary)")
            #expect(summary["unresolved"] as? Int == 0 && summary["paused"] as? Int == 0, "every terminal count, as the text line names them: \(summary)")
            let rejected = try #require(objects.first { ($0["message"] as? String)?.hasPrefix("rejected") == true })
            #expect(rejected["path"] as? String == "empty.txt" && rejected["document"] is Int && rejected["job"] as? String == "docs")
        }
    }

    @Test func humanLogs_putJobPathAndDocumentFirst() async throws {
        try await withDifySimulator { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", documentText(1))
            let result = try await CLI.run(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment)
            #expect(result.status == 0, "\(result.stderr)")
            let line = try #require(result.stderr.split(separator: "\n").first { $0.hasSuffix("succeeded") || $0.contains(" succeeded ") })
            #expect(line.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ info job=docs path=a\.txt document=\d+ succeeded"#,
                               options: .regularExpression) != nil, "\(line)")
        }
    }

    @Test func theApiKeyNeverAppearsInLogs_atTraceLevel_inEitherFormat_norWhenDifyRefusesIt() async throws {
        try await withDifySimulator { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", documentText(1))
            try workspace.drop("b.txt", documentText(2))
            for format in ["json", "human"] {
                let result = try await CLI.run(["run", "--db", workspace.dbPath, "--reprocess", "--log-format", format, "--log-level", "trace",
                                          "--progress", "always", "--progress-interval", "50ms", workspace.specPath], environment: workspace.environment)
                #expect(result.status == 0, "\(result.stderr)")
                #expect(!result.stderr.isEmpty)
                #expect(!result.stderr.contains(workspace.key) && !result.stdout.contains(workspace.key))
                #expect(!result.stderr.contains("Authorization") && !result.stderr.contains("Bearer"))
                if format == "json" {
                    // One trace record per HTTP request: method, path, status and duration, as numbers (issue 16).
                    let requests = try result.stderr.split(separator: "\n").compactMap {
                        try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                    }.filter { $0["message"] as? String == "http request" }
                    let seen = Set(requests.compactMap { request -> String? in
                        guard let method = request["method"] as? String, let path = request["path"] as? String,
                              request["status"] is Int, request["duration_ms"] is Int else { return nil }
                        return "\(method) \(path)"
                    })
                    #expect(seen.isSuperset(of: ["GET /info", "GET /parameters", "POST /files/upload", "POST /workflows/run"]), "\(requests)")
                    #expect(requests.allSatisfy { $0["job"] as? String == "docs" && $0["level"] as? String == "trace" })
                }
            }
            let wrongKey = "app-WRONG-secret-7f3a9c"
            let refused = try Workspace(baseURL: baseURL, key: wrongKey)
            try refused.drop("c.txt", documentText(3))
            let result = try await CLI.run(["run", "--db", refused.dbPath, "--log-level", "trace", refused.specPath], environment: refused.environment)
            #expect(result.status == 3, "\(result.stderr)")
            #expect(!result.stderr.contains(wrongKey) && !result.stdout.contains(wrongKey), "\(result.stderr)")
            #expect(!result.stderr.contains("WRONG-secret"))
        }
    }

    @Test func badLogFlagsAreUsageErrors() async throws {
        let format = try await CLI.run(["run", "--log-format", "xml", "x.yaml"])
        #expect(format.status == 64 || format.status == 2, "\(format.status) \(format.stderr)")
        #expect(format.stderr.contains("--log-format"))
        let progress = try await CLI.run(["run", "--progress", "sometimes", "x.yaml"])
        #expect(progress.stderr.contains("--progress"))
        #expect(progress.status != 0)
    }
}
