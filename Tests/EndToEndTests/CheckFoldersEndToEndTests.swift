import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Issue 11: `check` says what `run` would refuse or fail on locally: unwritable folders, names that do not fit.
@Suite struct CheckFoldersEndToEndTests {
    @Test func check_whenTheOutboxIsNotWritable_orANameCannotFit_exits2_andSaysWhich() async throws {
        try await withDifySimulator { simulator, baseURL in
            let scratch = try Scratch()
            let spec = try CheckEndToEndTests.spec(scratch, baseURL: baseURL)
            try CheckEndToEndTests.drop(scratch, "short.txt", "fine")
            let environment = ["DIFY_TEST_KEY": SimulatedApp.defaultAPIKey]

            let ok = try await CLI.run(["check", "--json", "--db", scratch.file("none.sqlite"), spec], environment: environment)
            #expect(ok.status == 0, "\(ok.stderr)")
            let jobs = try #require(try CheckEndToEndTests.json(ok.stdout)["jobs"] as? [[String: Any]])
            let longest = try #require((jobs.first?["inbox"] as? [String: Any])?["longest_name"] as? [String: Any])
            #expect(longest["path"] as? String == "short.txt" && longest["fits"] as? Bool == true)
            #expect(!FileManager.default.fileExists(atPath: scratch.file("out")), "check creates nothing")

            // 80 three-byte characters: 240 bytes; its outbox names need more than 255.
            let long = String(repeating: "日", count: 80) + ".txt"
            try CheckEndToEndTests.drop(scratch, long, "long")
            let tooLong = try await CLI.run(["check", "--db", scratch.file("none.sqlite"), spec], environment: environment)
            #expect(tooLong.status == 2, "\(tooLong.stderr)")
            #expect(tooLong.stderr.contains("\(long): its outbox file needs a"), "\(tooLong.stderr)")
            try FileManager.default.removeItem(atPath: scratch.file("in/" + long))

            try Data("a file where the outbox folder should be".utf8).write(to: URL(fileURLWithPath: scratch.file("out")))
            let blocked = try await CLI.run(["check", "--db", scratch.file("none.sqlite"), spec], environment: environment)
            #expect(blocked.status == 2, "\(blocked.stderr)")
            #expect(blocked.stderr.contains("`outbox:` \(scratch.file("out")) is not writable"), "\(blocked.stderr)")
            #expect(simulator.stats.requestsByEndpoint["POST /v1/workflows/run"] == nil)
        }
    }
}
