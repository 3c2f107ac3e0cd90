import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Issue 16: `watch` on a jobs folder loads its specs again on SIGHUP (polling is made hour-long here, so only the
/// signal can do it): a bad spec is reported and skipped, a fixed or new spec starts its job, a removed spec stops
/// its job, and the daemon never exits on SIGHUP. Real binary; counts at the simulator.
@Suite(.serialized) struct SpecReloadEndToEndTests {
    struct Folder {
        let scratch: Scratch
        let baseURL: String

        func spec(_ name: String, extra: String = "") -> String {
            """
            inbox: ../\(name)-in
            outbox: ../\(name)-out
            archive: ../\(name)-done
            dify:
              base_url: \(baseURL)
              api_key_env: DIFY_TEST_KEY
            match:
              settle: 0s
            \(extra)
            retry: {max_attempts: 3, base_delay: 10ms, max_delay: 10ms}
            """
        }

        func write(_ relativePath: String, _ text: String) throws {
            let path = scratch.file(relativePath)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }

        func outputs(_ job: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: scratch.file("\(job)-out"))) ?? [])
                .filter { $0.hasSuffix(".json") && !$0.hasSuffix(".error.json") }
        }
    }

    @Test func watch_onSIGHUP_reportsABadSpec_startsTheFixedAndTheNewJob_stopsARemovedOne_andNeverExits() async throws {
        try await withDifySimulator { simulator, baseURL in
            let folder = Folder(scratch: try Scratch(), baseURL: baseURL)
            for name in ["a", "b", "c"] {
                try FileManager.default.createDirectory(atPath: folder.scratch.file("\(name)-in"), withIntermediateDirectories: true)
            }
            try folder.write("jobs/a.yaml", folder.spec("a"))
            let child = try Child(["watch", "--db", folder.scratch.file("ledger.sqlite"), "--progress", "never", "--spec-poll", "1h",
                                   folder.scratch.file("jobs")],
                                  environment: ["DIFY_TEST_KEY": SimulatedApp.defaultAPIKey], stderrPath: folder.scratch.file("watch.log"))
            defer { if child.process.isRunning { child.signal(SIGKILL) } }
            try folder.write("a-in/one.txt", "first job's document")
            #expect(try await waitUntil { folder.outputs("a").count == 1 }, "\(child.stderr)")

            // A bad spec with two mistakes: both reported at once, in file order; the running job is untouched.
            try folder.write("jobs/b.yaml", folder.spec("b", extra: "concurrency: -2\nretries: 3"))
            child.signal(SIGHUP)
            #expect(try await waitUntil { child.stderr.contains("retries") }, "\(child.stderr)")
            let log = child.stderr
            let concurrency = try #require(log.range(of: "b.yaml:9: concurrency"), "\(log)")
            let unknown = try #require(log.range(of: "b.yaml:10: retries"), "\(log)")
            #expect(concurrency.lowerBound < unknown.lowerBound)
            #expect(child.process.isRunning)

            // Fixed, plus a new spec: both jobs start on the next SIGHUP and process their inboxes.
            try folder.write("jobs/b.yaml", folder.spec("b"))
            try folder.write("jobs/c.yaml", folder.spec("c"))
            try folder.write("b-in/two.txt", "second job's document")
            try folder.write("c-in/three.txt", "third job's document")
            child.signal(SIGHUP)
            #expect(try await waitUntil { folder.outputs("b").count == 1 && folder.outputs("c").count == 1 }, "\(child.stderr)")
            #expect(simulator.stats.runRequestsReceived == 3)
            #expect(child.process.isRunning, "SIGHUP never ends the daemon")

            // A removed spec stops its job; the others keep running.
            try FileManager.default.removeItem(atPath: folder.scratch.file("jobs/c.yaml"))
            child.signal(SIGHUP)
            #expect(try await waitUntil { child.stderr.contains("the spec of job c") }, "\(child.stderr)")
            try folder.write("a-in/four.txt", "the first job still runs")
            #expect(try await waitUntil { folder.outputs("a").count == 2 }, "\(child.stderr)")
            #expect(child.process.isRunning)

            // A running job's spec made bad: reported, and its previous version keeps running.
            try folder.write("jobs/a.yaml", folder.spec("a", extra: "concurrency: zero"))
            child.signal(SIGHUP)
            #expect(try await waitUntil { child.stderr.contains("job a keeps running its previous version") }, "\(child.stderr)")
            try folder.write("a-in/five.txt", "still processed by the previous version")
            #expect(try await waitUntil { folder.outputs("a").count == 3 }, "\(child.stderr)")

            // Fixed with a change: the job restarts with the new version and goes on.
            try folder.write("jobs/a.yaml", folder.spec("a", extra: "concurrency: 2"))
            child.signal(SIGHUP)
            #expect(try await waitUntil { child.stderr.contains("the spec of job a changed") }, "\(child.stderr)")
            try folder.write("a-in/six.txt", "processed by the new version")
            #expect(try await waitUntil { folder.outputs("a").count == 4 }, "\(child.stderr)")
            #expect(simulator.stats.runRequestsReceived == 6)

            child.signal(SIGTERM)
            #expect(try await child.exitStatus() == 0, "fixed during the session: not an exit 2. \(child.stderr)")
        }
    }

    @Test func watch_withMetrics_aJobStartedBySIGHUP_hasItsLabelsAndLedgerCountsAtTheMetricsEndpoint() async throws {
        try await withDifySimulator { simulator, baseURL in
            let folder = Folder(scratch: try Scratch(), baseURL: baseURL)
            try folder.write("jobs/a.yaml", folder.spec("a"))
            try folder.write("a-in/one.txt", "first job's document")
            let child = try Child(["watch", "--db", folder.scratch.file("ledger.sqlite"), "--progress", "never", "--spec-poll", "1h",
                                   "--metrics", "127.0.0.1:0", folder.scratch.file("jobs")],
                                  environment: ["DIFY_TEST_KEY": SimulatedApp.defaultAPIKey], stderrPath: folder.scratch.file("watch.log"))
            defer { if child.process.isRunning { child.signal(SIGKILL) } }
            let port = try await metricsPort(of: child)
            #expect(try await waitUntil(timeout: .seconds(90)) { folder.outputs("a").count == 1 }, "\(child.stderr)")

            // A new spec, loaded on SIGHUP: its job runs, and the metrics carry its labels like the first job's.
            try folder.write("jobs/b.yaml", folder.spec("b"))
            try folder.write("b-in/two.txt", "second job's document")
            child.signal(SIGHUP)
            #expect(try await waitUntil(timeout: .seconds(90)) { folder.outputs("b").count == 1 }, "\(child.stderr)")
            var metrics = ""
            let found = try await waitUntil(timeout: .seconds(90)) {
                metrics = try httpGet(port: port, path: "/metrics").body
                return metrics.contains(#"dify_batch_ledger_documents{job="b",state="succeeded"} 1"#)
            }
            #expect(found, "the reloaded job's ledger counts: \(metrics)")
            for line in [#"dify_batch_ledger_documents{job="a",state="succeeded"} 1"#, #"dify_batch_ledger_documents{job="b",state="pending"} 0"#,
                         #"dify_batch_job_running{job="b"} 1"#, #"dify_batch_documents_settled_total{job="b",state="succeeded"} 1"#] {
                #expect(metrics.contains(line), "\(line) in:\n\(metrics)")
            }
            #expect(simulator.stats.runRequestsReceived == 2)
            child.signal(SIGTERM)
            #expect(try await child.exitStatus() == 0, "\(child.stderr)")
        }
    }

    @Test func watch_whenItsOnlyJobStopsByItself_stillExitsWithThatJobsCode() async throws {
        try await withDifySimulator { _, baseURL in
            // A wrong key stops the job (configuration, exit 3); reloads do not keep an empty daemon alive.
            let workspace = try Workspace(baseURL: baseURL, key: "app-not-the-right-key")
            let result = try await CLI.run(["watch", "--db", workspace.dbPath, "--progress", "never", workspace.specPath],
                                           environment: workspace.environment, timeout: .seconds(60))
            #expect(result.status == 3, "\(result.stderr)")
        }
    }
}
