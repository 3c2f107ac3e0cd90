import DifyBatch
import DifySimulator
import Foundation
import GRDB
import Testing

/// What an operator sees of a daemon's life: status after a crash, signals during waits (issue 16).
@Suite(.serialized) struct OperatorEndToEndTests {
    static func lastRun(_ text: String) throws -> [String: Any] {
        let root = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let job = try #require((root["jobs"] as? [[String: Any]])?.first)
        return try #require(job["last_run"] as? [String: Any])
    }

    @Test func status_showsALiveWatchAsRunning_andAKilledOneAsGone() async throws {
        try await withDifySimulator { _, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            let daemon = try Child(["watch", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment,
                                   stderrPath: workspace.scratch.file("watch.log"))
            try workspace.drop("a.txt", documentText(1))
            #expect(try await waitUntil { workspace.outputs().count == 1 }, "\(daemon.stderr)")

            let alive = try await CLI.run(["status", "--json", "--db", workspace.dbPath])
            #expect(try Self.lastRun(alive.stdout)["state"] as? String == "running", "\(alive.stdout)")

            daemon.signal(SIGKILL)
            _ = try await daemon.exitStatus()
            let gone = try await CLI.run(["status", "--json", "--db", workspace.dbPath])
            let run = try Self.lastRun(gone.stdout)
            #expect(run["state"] as? String == "gone", "\(gone.stdout)")
            #expect(run["ended_at"] is NSNull && run["exit_code"] is NSNull)
            let table = try await CLI.run(["status", "--db", workspace.dbPath])
            #expect(table.stdout.contains("ended (process gone)") && !table.stdout.contains("in progress"), "\(table.stdout)")

            // A run that ended says so.
            let finished = try await CLI.run(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment)
            #expect(finished.status == 0, "\(finished.stderr)")
            let ended = try await CLI.run(["status", "--json", "--db", workspace.dbPath])
            #expect(try Self.lastRun(ended.stdout)["state"] as? String == "ended")
        }
    }

    @Test func watch_whenDifyIsDown_SIGTERMEndsTheRetryWaitAtOnce() async throws {
        // Dify down and a 10-minute backoff: the daemon must not sleep through SIGTERM.
        let workspace = try Workspace(baseURL: "http://127.0.0.1:1/v1", retry: "{max_attempts: 3, base_delay: 10m, max_delay: 10m}")
        let daemon = try Child(["watch", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment,
                               stderrPath: workspace.scratch.file("watch.log"))
        #expect(try await waitUntil { daemon.stderr.contains("retrying in") }, "\(daemon.stderr)")
        // The first failure is logged at once, in one sentence naming the URL and the fix.
        #expect(daemon.stderr.contains("cannot connect to http://127.0.0.1:1/v1: connection refused"), "\(daemon.stderr)")
        daemon.signal(SIGTERM)
        // Far below the 10-minute wait; the bound only proves the wait was cut short.
        let status = try await daemon.exitStatus(timeout: .seconds(60))
        #expect(status == 0, "\(daemon.stderr)")
    }

    /// Runs `body` while another program (think: an sqlite3 shell) holds a write transaction on the ledger, on a
    /// thread of its own.
    static func whileAnotherProgramHoldsAWriteTransaction<T>(on path: String, _ body: () async throws -> T) async throws -> T {
        let other = try DatabaseQueue(path: path)
        let locked = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        Thread {
            try? other.inDatabase { db in
                try db.execute(sql: "BEGIN IMMEDIATE")
                locked.signal()
                release.wait()
                try db.execute(sql: "ROLLBACK")
            }
            done.signal()
        }.start()
        locked.wait()
        defer {
            release.signal()
            done.wait()
        }
        return try await body()
    }

    @Test func run_whenAnotherProgramHoldsTheLedgerWriteLock_waitsTheBusyTimeoutThenExits4NamingIt() async throws {
        let workspace = try Workspace(baseURL: "http://127.0.0.1:1/v1")
        _ = try SQLiteLedger(path: workspace.dbPath)
        let result = try await Self.whileAnotherProgramHoldsAWriteTransaction(on: workspace.dbPath) {
            try await CLI.run(["run", "--db", workspace.dbPath, "--busy-timeout", "300ms", workspace.specPath],
                              environment: workspace.environment)
        }
        #expect(result.status == 4, "\(result.stderr)")
        #expect(result.stderr.contains("stayed locked by another program"), "\(result.stderr)")
        #expect(!result.stderr.contains("SQLITE_BUSY") && !result.stderr.contains("database is locked"))
    }

    @Test func status_whileAnotherProgramHoldsTheLedgerWriteLock_answersWithoutWaitingForIt() async throws {
        let workspace = try Workspace(baseURL: "http://127.0.0.1:1/v1")
        // A daemon that has written (its WAL is not empty while it keeps the ledger open) ...
        let daemon = try SQLiteLedger(path: workspace.dbPath)
        _ = try await daemon.beginRun(command: "watch", pid: 1, host: "h", jobIDs: [])
        // ... and another program is in the middle of a write transaction: a reader of a current ledger takes no
        // write lock (it used to wait the busy timeout, then exit).
        let (result, opened) = try await Self.whileAnotherProgramHoldsAWriteTransaction(on: workspace.dbPath) {
            (try await CLI.run(["status", "--db", workspace.dbPath], environment: workspace.environment),
             Result { try SQLiteLedger(path: workspace.dbPath, busyTimeout: 0.1) })
        }
        #expect(result.status == 0, "\(result.stderr)")
        #expect((try? opened.get()) != nil, "opening a current ledger needs no write lock")
    }

    @Test func run_aJobsFolderWithABadSpec_runsTheGoodJob_reportsEveryErrorOfTheBadOne_exits2() async throws {
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            try workspace.drop("a.txt", documentText(1))
            try "inbox: ../in\noutbox: ../out2\nconcurency: 2\ndify:\n  base_url: \(baseURL)\n  resonse_mode: blocking\n"
                .write(toFile: workspace.scratch.file("jobs/bad.yaml"), atomically: true, encoding: .utf8)
            let folder = workspace.scratch.file("jobs")
            let result = try await CLI.run(["run", "--db", workspace.dbPath, folder], environment: workspace.environment)
            #expect(result.status == 2, "\(result.stderr)")
            #expect(workspace.outputs().count == 1, "the good job ran")
            #expect(simulator.stats.runsBySHA256.values.reduce(0, +) == 1)
            let lines = result.stderr.split(separator: "\n").map(String.init)
            let first = try #require(lines.firstIndex { $0.contains("bad.yaml:3: concurency: unknown key (did you mean concurrency?)") }, "\(result.stderr)")
            let second = try #require(lines.firstIndex { $0.contains("bad.yaml:6: dify.resonse_mode: unknown key") }, "\(result.stderr)")
            #expect(first < second, "in file order")
            #expect(result.stderr.contains("1 spec file(s) did not load and are skipped"))
        }
    }
}
