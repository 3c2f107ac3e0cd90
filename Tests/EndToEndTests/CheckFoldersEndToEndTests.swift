import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Issue 11: `check` says what `run` would refuse or fail on locally: unwritable folders, names that do not fit.
@Suite struct CheckFoldersEndToEndTests {
    @Test func check_measuresTheLongestName_andWhenTheOutboxIsNotWritable_exits2_andSaysWhich() async throws {
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

            // 80 three-byte characters: 240 bytes. Long names are cut to fit in the outbox, so check measures and passes.
            let long = String(repeating: "日", count: 80) + ".txt"
            try CheckEndToEndTests.drop(scratch, long, "long")
            let measured = try await CLI.run(["check", "--json", "--db", scratch.file("none.sqlite"), spec], environment: environment)
            #expect(measured.status == 0, "\(measured.stderr)")
            let measuredJobs = try #require(try CheckEndToEndTests.json(measured.stdout)["jobs"] as? [[String: Any]])
            let measuredLongest = try #require((measuredJobs.first?["inbox"] as? [String: Any])?["longest_name"] as? [String: Any])
            #expect(measuredLongest["path"] as? String == long && measuredLongest["fits"] as? Bool == true)
            #expect((measuredLongest["bytes"] as? Int ?? 999) <= 255)
            try FileManager.default.removeItem(atPath: scratch.file("in/" + long))

            try Data("a file where the outbox folder should be".utf8).write(to: URL(fileURLWithPath: scratch.file("out")))
            let blocked = try await CLI.run(["check", "--db", scratch.file("none.sqlite"), spec], environment: environment)
            #expect(blocked.status == 2, "\(blocked.stderr)")
            #expect(blocked.stderr.contains("`outbox:` \(scratch.file("out")) is not writable"), "\(blocked.stderr)")
            #expect(simulator.stats.requestsByEndpoint["POST /v1/workflows/run"] == nil)
        }
    }
}
