import DifyBatch
import DifyBatchPostgres
import DifySimulator
import Foundation
import PostgresNIO
import PostgresTestSupport
import Testing

/// Several real `dify-batch` processes on one PostgreSQL ledger and one inbox.
@Suite(.serialized) struct PostgresProcessEndToEndTests {
    /// A new database on the test server for one test, dropped afterwards; nil (skipped locally) without a server.
    func withDatabase(_ body: (PostgresLocation) async throws -> Void) async throws {
        guard let server = TestPostgres.server() else { return }
        let location = try await TestPostgres.createDatabase(on: server)
        do {
            try await body(location)
        } catch {
            await TestPostgres.dropDatabase(location, on: server)
            throw error
        }
        await TestPostgres.dropDatabase(location, on: server)
    }

    func documents(_ location: PostgresLocation) async throws -> [DocumentRecord] {
        var result: [DocumentRecord] = []
        try await TestPostgres.withLedger(at: location, owner: "test-reader") { ledger in
            result = try await ledger.documents(matching: DocumentFilter())
        }
        return result
    }

    /// The value of a one-column integer query; 0 while the processes have not created the schema yet.
    func count(_ location: PostgresLocation, _ sql: String) async throws -> Int64 {
        var value: Int64 = 0
        try await TestPostgres.admin(location) { client in
            guard try await client.query("SELECT to_regclass('documents') IS NOT NULL").decode(Bool.self).reduce(false, { $1 }) else { return }
            for try await n in try await client.query(PostgresQuery(unsafeSQL: sql)).decode(Int64?.self) { value = n ?? 0 }
        }
        return value
    }

    /// The values of a one-column text query.
    func strings(_ location: PostgresLocation, _ sql: String) async throws -> [String] {
        var values: [String] = []
        try await TestPostgres.admin(location) { client in
            for try await value in try await client.query(PostgresQuery(unsafeSQL: sql)).decode(String.self) { values.append(value) }
        }
        return values
    }

    @Test func watchWithMetrics_onAPostgreSQLLedger_servesTheLedgersDocumentCounts() async throws {
        try await withDatabase { location in
            try await withDifySimulator { _, baseURL in
                let workspace = try Workspace(baseURL: baseURL)
                try workspace.drop("m.txt", documentText(5))
                let child = try Child(["watch", "--db", location.description, "--metrics", "127.0.0.1:0", "--progress", "never", workspace.specPath],
                                      environment: workspace.environment, stderrPath: workspace.scratch.file("watch.log"))
                let port = try await metricsPort(of: child)
                #expect(port > 0, "\(child.stderr)")
                #expect(try await waitUntil { workspace.outputs().count == 1 })
                var metrics = ""
                let found = try await waitUntil {
                    metrics = try httpGet(port: port, path: "/metrics").body
                    return metrics.contains(#"dify_batch_ledger_documents{job="docs",state="succeeded"} 1"#)
                }
                #expect(found, "the ledger's counts are read from PostgreSQL at the scrape: \(metrics)")
                child.signal(SIGTERM)
                #expect(try await child.exitStatus() == 0, "\(child.stderr)")
            }
        }
    }

    @Test func check_onAPostgreSQLLedger_countsTheInboxFilesAlreadyInIt() async throws {
        try await withDatabase { location in
            try await withDifySimulator { _, baseURL in
                let workspace = try Workspace(baseURL: baseURL, extra: "after_success: keep")
                try workspace.drop("done.txt", documentText(1))
                let run = try await CLI.run(["run", "--db", location.description, "--progress", "never", workspace.specPath],
                                            environment: workspace.environment)
                #expect(run.status == 0, "\(run.stderr)")
                try workspace.drop("new.txt", documentText(2))
                let check = try await CLI.run(["check", "--db", location.description, workspace.specPath], environment: workspace.environment)
                #expect(check.status == 0, "\(check.stderr)")
                #expect(check.stdout.contains("(1 already in the ledger)"), "\(check.stdout)")
            }
        }
    }

    @Test func run_whenThePostgreSQLServerDoesNotAnswer_exits4NamingIt_andTouchesNothing() async throws {
        // Nothing listens on port 1: the client keeps trying to connect until the (shortened) wait runs out.
        let workspace = try Workspace(baseURL: "http://127.0.0.1:1/v1")
        try workspace.drop("kept.txt", documentText(1))
        let result = try await CLI.run(["run", "--db", "postgres://batch@127.0.0.1:1/ledger?sslmode=disable", "--busy-timeout", "300ms",
                                        "--progress", "never", workspace.specPath], environment: workspace.environment)
        #expect(result.status == 4, "\(result.stderr)")
        #expect(result.stderr.contains("cannot reach the PostgreSQL ledger at 127.0.0.1:1 (postgres://batch@127.0.0.1:1/ledger"), "\(result.stderr)")
        #expect(workspace.outputs().isEmpty && FileManager.default.fileExists(atPath: workspace.inbox + "/kept.txt"))
    }

    @Test func threeRunProcesses_onOneJobAndInbox_processSixHundredFilesExactlyOnce() async throws {
        try await withDatabase { location in
            try await withDifySimulator(SimulatorConfiguration()) { simulator, baseURL in
                let workspace = try Workspace(baseURL: baseURL, concurrency: 8)
                for index in 0..<600 { try workspace.drop("batch/f\(index).txt", documentText(index)) }
                var children: [Child] = []
                for index in 0..<3 {
                    children.append(try Child(["run", "--db", location.description, "--progress", "never", workspace.specPath],
                                              environment: workspace.environment, stderrPath: workspace.scratch.file("p\(index).log")))
                }
                for child in children {
                    // A hang guard, not a timing assertion: ~15 s on a quiet machine, over a minute on a loaded one.
                    let status = try await child.exitStatus(timeout: .seconds(300))
                    #expect(status == 0, "\(child.stderr)")
                }
                #expect(workspace.outputs().count == 600)
                let runs = simulator.stats.runsBySHA256
                #expect(runs.count == 600, "every file ran")
                #expect(runs.values.allSatisfy { $0 == 1 }, "no file ran twice: \(runs.values.filter { $0 > 1 }.count) did")
                let stored = try await documents(location)
                #expect(stored.count == 600 && stored.allSatisfy { $0.state == .succeeded })
                #expect(try await count(location, "SELECT sum(succeeded)::bigint FROM run_jobs") == 600, "each document counted by one process")
                #expect(try await count(location, "SELECT count(*) FROM runs WHERE exit_code = 0") == 3)
            }
        }
    }

    @Test func killNineOfOneProcess_othersTakeOverItsLeasedDocumentsAfterTheLease_withoutDuplicateRuns() async throws {
        var faults = FaultPlan()
        faults.latency = .milliseconds(300)
        try await withDatabase { location in
            try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
                let workspace = try Workspace(baseURL: baseURL, concurrency: 4, recoverDeadline: "8s")
                for index in 0..<40 { try workspace.drop("k\(index).txt", documentText(index)) }
                var children: [Child] = []
                for index in 0..<3 {
                    children.append(try Child(["run", "--db", location.description, "--lease", "2s", "--progress", "never", workspace.specPath],
                                              environment: workspace.environment, stderrPath: workspace.scratch.file("k\(index).log")))
                }
                let victim = children[0]
                let pid = victim.process.processIdentifier
                // Freeze it while it holds documents whose run was sent (state running), note them, then kill it: those
                // documents must be taken over through recovery (looked up at Dify, never sent again).
                let holding = try await waitUntil(timeout: .seconds(60)) {
                    workspace.outputs().count >= 4 && simulator.stats.activeRuns > 0
                }
                #expect(holding)
                let sentByVictim = "lease_owner LIKE '%:\(pid):%' AND state = 'running' AND run_posts > 0 AND workflow_run_id IS NOT NULL"
                var frozen: [String] = []
                let frozenBy = ContinuousClock.now + .seconds(60)
                while frozen.isEmpty && ContinuousClock.now < frozenBy {
                    if try await count(location, "SELECT count(*) FROM documents WHERE \(sentByVictim)") > 0 {
                        victim.signal(SIGSTOP)
                        frozen = try await strings(location, "SELECT sha256 FROM documents WHERE \(sentByVictim)")
                        if frozen.isEmpty { victim.signal(SIGCONT) }
                    }
                    if frozen.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
                }
                #expect(!frozen.isEmpty, "the victim held documents with a sent run when it was killed")
                victim.signal(SIGKILL)
                #expect(try await victim.exitStatus() != 0)
                var statuses: [Int32] = []
                for child in children.dropFirst() { statuses.append(try await child.exitStatus(timeout: .seconds(120))) }
                let stored = try await documents(location)
                let runs = simulator.stats.runsBySHA256
                #expect(stored.count == 40)
                #expect(workspace.outputs().count + workspace.errorOutputs().count == 40, "nothing lost: one visible outcome per file")
                for document in stored {
                    let ran = runs[document.sha256 ?? ""] ?? 0
                    #expect(ran <= 1, "no duplicate run: \(document.path) ran \(ran) times")
                    // The freeze can land between recording a send and the request leaving the victim: that run never
                    // reached Dify, cannot be proven absent, and is parked unresolved (never sent again), as after a
                    // crash on SQLite (issue 10). Every other document succeeded.
                    #expect(document.state == .succeeded || (document.state == .unresolved && ran == 0),
                            "\(document.path): \(document.state.rawValue), \(ran) run(s) at the server")
                }
                #expect(stored.allSatisfy { $0.duplicateRuns == 0 })
                let unresolved = stored.contains { $0.state == .unresolved }
                for (index, status) in statuses.enumerated() {
                    #expect(status == 0 || (unresolved && status == 1), "\(children[index + 1].stderr)")
                }
                for sha in frozen {
                    #expect(runs[sha] == 1, "a run the victim had sent was looked up by the taker, not sent again")
                    let document = stored.first { $0.sha256 == sha }
                    #expect(document?.state == .succeeded && document?.runPosts == 1)
                }
                let log = children[1].stderr + children[2].stderr
                #expect(log.contains("took over"), "a survivor took over the victim's documents")
                #expect(log.contains("sent run(s) are looked up, not sent again"))
            }
        }
    }

    @Test func processStoppedPastItsLease_noticesTheLostLeasesAndAbandonsThoseDocumentsWithoutWriting() async throws {
        var faults = FaultPlan()
        faults.latency = .milliseconds(1500)
        try await withDatabase { location in
            try await withDifySimulator(SimulatorConfiguration(faults: faults)) { simulator, baseURL in
                let workspace = try Workspace(baseURL: baseURL, concurrency: 4)
                for index in 0..<12 { try workspace.drop("s\(index).txt", documentText(index)) }
                let stopped = try Child(["run", "--db", location.description, "--lease", "2s", "--progress", "never", "--log-format", "json", workspace.specPath],
                                        environment: workspace.environment, stderrPath: workspace.scratch.file("stopped.log"))
                let pid = stopped.process.processIdentifier
                let ownedByStopped = "lease_owner LIKE '%:\(pid):%' AND state IN ('running', 'recovering')"
                // Stop it while runs it sent are in flight (a partition from PostgreSQL and Dify alike), at a moment when
                // every send it recorded has reached the server: a process frozen between recording a send and making
                // it is the known narrower window (README; its run is parked `unresolved` by the taker), which a loaded
                // machine hit here now and then — not what this test is about.
                var held: Int64 = 0
                let heldBy = ContinuousClock.now + .seconds(60)
                while ContinuousClock.now < heldBy {
                    held = try await count(location, "SELECT count(*) FROM documents WHERE \(ownedByStopped)")
                    if held >= 2 {
                        stopped.signal(SIGSTOP)
                        held = try await count(location, "SELECT count(*) FROM documents WHERE \(ownedByStopped)")
                        let recorded = try await count(location, "SELECT coalesce(sum(run_posts), 0)::bigint FROM documents")
                        if held >= 2 && recorded == Int64(simulator.stats.runRequestsReceived) { break }
                        stopped.signal(SIGCONT)
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(held >= 2)
                // Its documents with a sent run: the taker recovers and settles them; it must never settle them itself.
                let sentByStopped = Set(try await strings(location, "SELECT id::text FROM documents WHERE \(ownedByStopped)").compactMap { Int($0) })
                let survivor = try Child(["run", "--db", location.description, "--lease", "2s", "--progress", "never", workspace.specPath],
                                         environment: workspace.environment, stderrPath: workspace.scratch.file("survivor.log"))
                // The survivor takes the stopped process's documents over once their lease expired.
                var remaining = held
                let takenBy = ContinuousClock.now + .seconds(90)
                while remaining > 0 && ContinuousClock.now < takenBy {
                    try await Task.sleep(for: .milliseconds(20))
                    remaining = try await count(location, "SELECT count(*) FROM documents WHERE lease_owner LIKE '%:\(pid):%' AND state NOT IN ('succeeded', 'dead', 'rejected', 'skipped', 'pending', 'failed')")
                }
                #expect(remaining == 0, "the survivor took over")
                stopped.signal(SIGCONT)
                #expect(try await stopped.exitStatus(timeout: .seconds(120)) == 0, "\(stopped.stderr)")
                #expect(try await survivor.exitStatus(timeout: .seconds(120)) == 0, "\(survivor.stderr)")
                // It noticed the documents it lost, and settled none of those whose run it had sent (a document whose run
                // was not sent yet goes back to the queue when taken over, and anyone, this process too, may claim it again).
                let records = stopped.stderr.split(separator: "\n").compactMap {
                    try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                }
                func documentIDs(_ matching: (String) -> Bool) -> Set<Int> {
                    Set(records.filter { matching($0["message"] as? String ?? "") }.compactMap { $0["document"] as? Int })
                }
                let lost = documentIDs { $0.contains("lost its lease") || $0.contains("taken over by") }
                let settledByStopped = documentIDs { $0 == "succeeded" || $0.hasPrefix("skipped ") }
                #expect(!lost.isEmpty, "the stopped process noticed its lost leases: \(stopped.stderr)")
                #expect(!sentByStopped.isEmpty && sentByStopped.isDisjoint(with: settledByStopped),
                        "a document whose run it sent before it was stopped was settled by it too: \(sentByStopped) \(settledByStopped)")
                #expect(workspace.outputs().count == 12)
                let stored = try await documents(location)
                #expect(stored.count == 12 && stored.allSatisfy { $0.state == .succeeded })
                #expect(try await count(location, "SELECT sum(succeeded)::bigint FROM run_jobs") == 12, "no document settled by both")
                let runs = simulator.stats.runsBySHA256
                #expect(runs.count == 12 && runs.values.allSatisfy { $0 == 1 }, "recovery looked the runs up instead of sending them again")
            }
        }
    }
}
