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
        try await ledger.finishRun(run, exitCode: 1)
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
            ["retry", "--json"], ["list", "--json", "--state", "pending"],
        ]
        for command in commands {
            let onSQLite = try await CLI.run(command + ["--db", sqlite])
            let onPostgres = try await CLI.run(command + ["--db", location.description])
            #expect(onSQLite.status == 0 && onPostgres.status == 0, "\(command): \(onSQLite.stderr) \(onPostgres.stderr)")
            #expect(!onSQLite.stdout.isEmpty)
            // `retry` stamps the requeued documents with the wall clock of its own process: those times may differ.
            let requeuedAt = #/"updated_at" : "[^"]*"/#
            func normalized(_ text: String, _ location: String) -> String {
                let text = text.replacingOccurrences(of: location, with: "DB")
                return command.contains("pending") ? text.replacing(requeuedAt, with: "\"updated_at\" : \"T\"") : text
            }
            #expect(normalized(onSQLite.stdout, sqlite) == normalized(onPostgres.stdout, location.description),
                    "\(command.joined(separator: " ")) differs between SQLite and PostgreSQL")
        }
        await TestPostgres.dropDatabase(location, on: server)
    }
}
