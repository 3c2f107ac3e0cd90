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
                let workspace = try Workspace(baseURL: baseURL, concurrency: 4)
                for index in 0..<40 { try workspace.drop("k\(index).txt", documentText(index)) }
                var children: [Child] = []
                for index in 0..<3 {
                    children.append(try Child(["run", "--db", location.description, "--lease", "2s", "--progress", "never", workspace.specPath],
                                              environment: workspace.environment, stderrPath: workspace.scratch.file("k\(index).log")))
                }
                let victim = children[0]
                let pid = victim.process.processIdentifier
                // Kill it while it holds leased documents with runs in flight.
                let holding = try await waitUntil(timeout: .seconds(60)) {
                    workspace.outputs().count >= 4 && simulator.stats.activeRuns > 0
                }
                #expect(holding)
                var held: Int64 = 0
                for _ in 0..<200 where held == 0 {
                    held = try await count(location, "SELECT count(*) FROM documents WHERE lease_owner LIKE '%:\(pid):%' AND state IN ('running', 'uploading', 'uploaded', 'recovering')")
                    if held == 0 { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(held > 0, "the victim held documents when it was killed")
                victim.signal(SIGKILL)
                #expect(try await victim.exitStatus() != 0)
                for child in children.dropFirst() {
                    let status = try await child.exitStatus(timeout: .seconds(120))
                    #expect(status == 0, "\(child.stderr)")
                }
                #expect(workspace.outputs().count == 40, "nothing lost")
                let stored = try await documents(location)
                #expect(stored.count == 40 && stored.allSatisfy { $0.state == .succeeded })
                let runs = simulator.stats.runsBySHA256
                #expect(runs.count == 40 && runs.values.allSatisfy { $0 == 1 }, "no duplicate run: \(runs.values.filter { $0 > 1 }.count) ran twice")
                #expect(stored.allSatisfy { $0.duplicateRuns == 0 })
                let log = children[1].stderr + children[2].stderr
                #expect(log.contains("took over"), "a survivor took over the victim's documents")
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
                let stopped = try Child(["run", "--db", location.description, "--lease", "2s", "--progress", "never", workspace.specPath],
                                        environment: workspace.environment, stderrPath: workspace.scratch.file("stopped.log"))
                let pid = stopped.process.processIdentifier
                let ownedByStopped = "lease_owner LIKE '%:\(pid):%' AND state IN ('running', 'recovering')"
                // Stop it while runs it sent are in flight (a partition from PostgreSQL and Dify alike).
                var held: Int64 = 0
                for _ in 0..<1000 where held < 2 {
                    held = try await count(location, "SELECT count(*) FROM documents WHERE \(ownedByStopped)")
                    if held < 2 { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(held >= 2)
                stopped.signal(SIGSTOP)
                let survivor = try Child(["run", "--db", location.description, "--lease", "2s", "--progress", "never", workspace.specPath],
                                         environment: workspace.environment, stderrPath: workspace.scratch.file("survivor.log"))
                // The survivor takes the stopped process's documents over once their lease expired.
                var remaining = held
                for _ in 0..<1500 where remaining > 0 {
                    try await Task.sleep(for: .milliseconds(20))
                    remaining = try await count(location, "SELECT count(*) FROM documents WHERE lease_owner LIKE '%:\(pid):%' AND state NOT IN ('succeeded', 'dead', 'rejected', 'skipped', 'pending', 'failed')")
                }
                #expect(remaining == 0, "the survivor took over")
                stopped.signal(SIGCONT)
                #expect(try await stopped.exitStatus(timeout: .seconds(120)) == 0, "\(stopped.stderr)")
                #expect(try await survivor.exitStatus(timeout: .seconds(120)) == 0, "\(survivor.stderr)")
                #expect(stopped.stderr.contains("lost its lease") || stopped.stderr.contains("taken over by"),
                        "the stopped process noticed its lost leases: \(stopped.stderr)")
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
