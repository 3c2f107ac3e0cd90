import DifyBatch
import DifyBatchPostgres
import Foundation
import PostgresTestSupport
import Testing

/// The read commands give the same `--json` on SQLite and PostgreSQL for the same ledger contents.
@Suite struct PostgresReadCommandsEndToEndTests {
    /// Two jobs, documents in several states with attempts, usage, a stored result and runs, at fixed times.
    static func seed(_ ledger: any Ledger) async throws {
        let invoices = try await ledger.register(JobRegistration(name: "invoices", specPath: "/jobs/invoices.yaml", specHash: "h1",
                                                                 baseURL: "http://127.0.0.1:9/v1", difyUser: "u", inbox: "/in/i", outbox: "/out/i"))
        let letters = try await ledger.register(JobRegistration(name: "Letters", specPath: "/jobs/letters.yaml", specHash: "h2",
                                                                baseURL: "http://127.0.0.1:9/v1", difyUser: "u", inbox: "/in/l", outbox: "/out/l"))
        try await ledger.setAppMode(jobID: invoices.id, mode: "workflow")
        let run = try await ledger.beginRun(command: "run", pid: 7, host: "host-a", jobIDs: [invoices.id, letters.id])
        for index in 0..<4 {
            let job = index % 2 == 0 ? invoices : letters
            let doc = try await ledger.insert(NewDocument(jobID: job.id, path: "ä/doc \(index).txt", sha256: "sha\(index)", size: Int64(10 + index), mtimeNanoseconds: 5))
            try await ledger.transition(doc.id, from: .pending, to: .uploading, [.incrementAttempts])
            let upload = try await ledger.beginAttempt(documentID: doc.id, runID: run, phase: .upload)
            try await ledger.finishAttempt(upload, AttemptResult(outcome: "ok", httpStatus: 201))
            try await ledger.transition(doc.id, from: .uploading, to: .uploaded, [.uploadFileID("file-\(index)")])
            try await ledger.transition(doc.id, from: .uploaded, to: .running, [.workflowRunID("wr-\(index)"), .runSentAt(Date(timeIntervalSince1970: 1_795_000_100))])
            if index == 3 {
                try await ledger.transition(doc.id, from: .running, to: .dead, [.lastError(RecordedError(errorClass: "permanent", code: "bad", message: "no", httpStatus: 400)),
                                                                                .outputPath("/out/l/doc 3.error.json")])
                try await ledger.countInRun(runID: run, jobID: job.id, state: .dead)
                continue
            }
            try await ledger.recordUsage(documentID: doc.id, jobID: job.id, runID: run, difyRunID: "wr-\(index)",
                                         UsageAmounts(promptTokens: 10, completionTokens: index, totalTokens: 10 + index,
                                                      totalPrice: Decimal(string: "0.00\(index + 1)"), currency: "USD", latencyMilliseconds: 100 * index))
            try await ledger.storeResult(documentID: doc.id, status: "succeeded", outputsJSON: #"{"text":"r\#(index)"}"#)
            try await ledger.transition(doc.id, from: .running, to: .succeeded, [.outputPath("/out/doc \(index).json")])
            try await ledger.countInRun(runID: run, jobID: job.id, state: .succeeded)
        }
        _ = try await ledger.insert(NewDocument(jobID: letters.id, path: "waiting.txt", sha256: "w", size: 1, mtimeNanoseconds: 1))
        try await seedSpendOnceStates(ledger, invoices: invoices, letters: letters, run: run)
        try await ledger.finishRun(run, exitCode: 1)
    }

    /// The states and columns of spend-once, text inputs and local failures (issues 10, 12, 16): a run paused in Dify,
    /// an unresolved run with a duplicate, a failed document waiting for its retry, not-matched files, usage by source.
    static func seedSpendOnceStates(_ ledger: any Ledger, invoices: JobRecord, letters: JobRecord, run: Int64) async throws {
        let sent = Date(timeIntervalSince1970: 1_795_000_200)
        func sendRun(_ job: JobRecord, _ path: String, _ sha: String) async throws -> DocumentRecord {
            let doc = try await ledger.insert(NewDocument(jobID: job.id, path: path, sha256: sha, size: 3, mtimeNanoseconds: 9))
            try await ledger.transition(doc.id, from: .pending, to: .uploading, [.incrementAttempts, .text(sha256: "t-\(sha)", length: 42)])
            try await ledger.transition(doc.id, from: .uploading, to: .uploaded, [.uploadFileID("file-\(sha)")])
            return try await ledger.transition(doc.id, from: .uploaded, to: .running,
                                               [.workflowRunID("wr-\(sha)"), .runSentAt(sent), .incrementRunPosts, .difyClockOffsetMilliseconds(-1500)])
        }
        let paused = try await sendRun(invoices, "paused.txt", "p")
        try await ledger.transition(paused.id, from: .running, to: .paused, [.pausedAt(sent.addingTimeInterval(30))])
        let lost = try await sendRun(letters, "lost.txt", "u")
        try await ledger.transition(lost.id, from: .running, to: .recovering, [])
        try await ledger.transition(lost.id, from: .recovering, to: .unresolved,
                                    [.outcomeUnknown(true), .duplicateRuns(1), .runPosts(2),
                                     .lastError(RecordedError(errorClass: "unknown_outcome", code: nil, message: "the run could not be found", httpStatus: nil))])
        try await ledger.countInRun(runID: run, jobID: letters.id, state: .unresolved)
        let retrying = try await sendRun(invoices, "retrying.txt", "r")
        try await ledger.transition(retrying.id, from: .running, to: .failed,
                                    [.nextAttemptAt(sent.addingTimeInterval(600)), .localFailures(2),
                                     .lastError(RecordedError(errorClass: "retryable", code: "timeout", message: "slow", httpStatus: 504))])
        try await ledger.recordUsage(documentID: paused.id, jobID: invoices.id, runID: run, difyRunID: "wr-p",
                                     UsageAmounts(promptTokens: 5, completionTokens: 1, totalTokens: 6, totalPrice: Decimal(string: "0.0105"),
                                                  currency: "EUR", latencyMilliseconds: 7, source: "run_detail"))
        try await ledger.recordNotMatched(runID: run, jobID: invoices.id, count: 3)
    }

    @Test func readCommands_giveIdenticalJSON_onSQLiteAndPostgreSQL() async throws {
        guard let server = TestPostgres.server() else { return }
        let fixed: @Sendable () -> Date = { Date(timeIntervalSince1970: 1_795_000_000) }
        let scratch = try Scratch()
        let sqlite = scratch.file("ledger.sqlite")
        try await Self.seed(try SQLiteLedger(path: sqlite, now: fixed))
        let location = try await TestPostgres.createDatabase(on: server)
        try await TestPostgres.withLedger(at: location, owner: "seed", now: fixed) { try await Self.seed($0) }
        let commands: [[String]] = [
            ["status", "--json"], ["list", "--json"], ["list", "--json", "--state", "succeeded", "--path", "ä/*"],
            ["show", "1", "--json"], ["show", "ä/doc 3.txt", "--json"],
            ["usage", "--json", "--by", "job"], ["usage", "--json", "--by", "run"], ["usage", "--json", "--by", "day"],
            ["list", "--json", "--state", "paused,unresolved,failed"], ["show", "paused.txt", "--json"], ["show", "lost.txt", "--json"],
            ["show", "retrying.txt", "--json"], ["status"], ["list"], ["show", "lost.txt"], ["usage", "--by", "job"],
            ["retry", "--json"], ["retry", "--json", "--state", "unresolved"], ["list", "--json", "--state", "pending"],
        ]
        for command in commands {
            let onSQLite = try await CLI.run(command + ["--db", sqlite])
            let onPostgres = try await CLI.run(command + ["--db", location.description])
            #expect(onSQLite.status == 0 && onPostgres.status == 0, "\(command): \(onSQLite.stderr) \(onPostgres.stderr)")
            #expect(!onSQLite.stdout.isEmpty)
            // `retry` stamps the requeued documents with the wall clock of its own process: those times may differ.
            let requeuedAt = #/"updated_at" : "[^"]*"/#
            func normalized(_ text: String, _ location: String) -> String {
                // The human status says how long the oldest run has been paused, measured at the moment it prints.
                let pausedFor = #/the oldest for [^;]*;/#
                let text = text.replacingOccurrences(of: location, with: "DB").replacing(pausedFor, with: "the oldest for T;")
                return command.contains("pending") ? text.replacing(requeuedAt, with: "\"updated_at\" : \"T\"") : text
            }
            #expect(normalized(onSQLite.stdout, sqlite) == normalized(onPostgres.stdout, location.description),
                    "\(command.joined(separator: " ")) differs between SQLite and PostgreSQL")
        }
        await TestPostgres.dropDatabase(location, on: server)
    }
}
