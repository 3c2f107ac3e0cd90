import ArgumentParser
import DifyBatch
import Foundation

/// The ledger's share of a document alone (issue 14): the calls the pipeline makes for one document, in its order,
/// replayed against an on-disk SQLite ledger with no network, outbox or simulator, one document after the other.
/// Far less noisy than `overhead` on a shared machine, so a change to the ledger can be measured in isolation.
struct LedgerOpsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-ops",
        abstract: "CPU ms per document of the pipeline's ledger calls alone (SQLite on disk, WAL), replayed in the pipeline's order.",
        discussion: """
            Per document, as DocumentProcessor, DocumentSettler and JobRunner call it at concurrency 1: the scan's \
            batched insert (256 per transaction), the claim, the upload's end with the run's send, the run ids \
            (streaming), the stored result with the usage, the settle, and the loop's reads after each event. \
            Keep it in step with the pipeline when its calls change. Prints CPU per document and write \
            transactions per document; the ledger file is kept in a folder under /tmp.
            """)

    @Option(help: "Documents.") var files = 2000
    @Option(name: .customLong("response-mode"), help: "streaming or blocking.") var responseMode = "streaming"
    @Option(name: .customLong("repeat"), help: "Repetitions (fresh ledger each).") var repetitions = 3
    @Option(name: .customLong("sql-trace"), help: "Write every distinct SQL statement, its count and time per document, to this file (the trace costs CPU: do not compare such a run's CPU).")
    var sqlTrace: String?

    func run() async throws {
        var rows: [[String]] = []
        for _ in 0..<max(1, repetitions) {
            rows.append(try await Self.measure(files: files, streaming: responseMode != "blocking", sqlTrace: sqlTrace))
            note("  → \(rows.last!.joined(separator: "  "))")
        }
        say(Table.render(headers: ["mode", "documents", "ledger CPU ms/doc", "user/sys (s)", "write tx/doc", "load avg"], rows: rows))
    }

    static func measure(files: Int, streaming: Bool, sqlTrace: String? = nil) async throws -> [String] {
        let statements = StatementCounter()
        let folder = NSTemporaryDirectory() + "dify-batch-ledger-ops-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        note("ledger-ops: \(files) documents, \(streaming ? "streaming" : "blocking"), ledger in \(folder)")
        let ledger = try SQLiteLedger(path: folder + "/ledger.sqlite", traceStatements: sqlTrace == nil ? nil : statements.count)
        let job = try await ledger.register(JobRegistration(name: "bench", specPath: folder + "/job.yaml", specHash: "x",
                                                            baseURL: "http://127.0.0.1:1", difyUser: "bench",
                                                            inbox: folder + "/in", outbox: folder + "/out"))
        let runID = try await ledger.beginRun(command: "run", pid: Int(getpid()), host: "bench", jobIDs: [job.id])
        let usage0 = ProcessStats.selfUsage()
        let writes0 = ledger.writeTransactions
        // The scan: each new file checked for a succeeded document of its content, then inserted 256 per
        // transaction (each checked for a twin of its content).
        func sha(_ i: Int) -> String { String(repeating: String(format: "%08x", i), count: 8) }
        for chunk in stride(from: 0, to: files, by: 256) {
            for i in chunk..<min(chunk + 256, files) {
                _ = try await ledger.succeededDocument(jobID: job.id, sha256: sha(i), excluding: nil)
            }
            let batch = (chunk..<min(chunk + 256, files)).map { i in
                var new = NewDocument(jobID: job.id, path: String(format: "doc-%06d.txt", i),
                                      sha256: sha(i), size: 100,
                                      mtimeNanoseconds: 1_700_000_000_000_000_000 + Int64(i), device: 1, inode: UInt64(1000 + i))
                new.sameContent = .waitForProcessingOrSucceeded
                return new
            }
            _ = try await ledger.insertRows(batch)
        }
        for _ in 0..<files {
            guard let claimed = try await ledger.claimCountingAttempts(jobID: job.id, limit: 1, now: Date(), maxActive: nil,
                                                                       tableFilesUncounted: false).first else {
                throw BenchError("the claim found no document")
            }
            _ = try await ledger.waitingCount(jobID: job.id)
            // The upload's end, the run's send and its attempt row: one transaction before the run POST.
            let sentAt = Date()
            let begun = try await ledger.write([
                .attempt(documentID: claimed.id, runID: runID, phase: .upload, elapsedMilliseconds: 1, AttemptResult(outcome: "ok")),
                .transition(claimed.id, from: .uploading, to: .uploaded, [.uploadFileID("file-\(claimed.id)"), .difyClockOffsetMilliseconds(0)]),
                .transition(claimed.id, from: .uploaded, to: .running,
                            [.runSentAt(sentAt), .workflowRunID(nil), .taskID(nil), .messageID(nil), .incrementRunPosts]),
                .beginAttempt(documentID: claimed.id, runID: runID, phase: .run),
            ])
            let document = begun.document!
            let runIDText = "run-\(document.id)"
            if streaming {
                try await ledger.update(document.id, in: .running, [.workflowRunID(runIDText), .taskID("task-\(document.id)"), .messageID(nil)])
            }
            // The run's end, its ids, usage and the stored result: one transaction before any local work.
            _ = try await ledger.write([
                .finishAttempt(begun.attemptIDs[0], AttemptResult(outcome: "ok", httpStatus: 200)),
                .update(document.id, in: .running, [.workflowRunID(runIDText), .taskID("task-\(document.id)"), .messageID(nil)]),
                .recordUsage(documentID: document.id, jobID: job.id, runID: runID, difyRunID: runIDText,
                             UsageAmounts(promptTokens: 10, completionTokens: 20, totalTokens: 30, totalPrice: Decimal(string: "0.00012"),
                                          currency: "USD", latencyMilliseconds: 5, source: "run")),
                .storeResult(documentID: document.id, status: "succeeded", outputsJSON: #"{"text":"ok"}"#),
            ])
            // The outbox document's usage, then the settle.
            _ = try await ledger.usage(documentID: document.id)
            _ = try await ledger.write([
                .transition(document.id, from: .running, to: .succeeded,
                            [.outputPath("out/\(document.path).json"), .lastError(nil), .nextAttemptAt(nil), .localFailures(0)]),
                .countInRun(runID: runID, jobID: job.id, state: .succeeded),
            ])
            // The job loop after a success: copies waiting for it, then the queue gauge.
            _ = try await ledger.heldDuplicates(jobID: job.id)
            _ = try await ledger.waitingCount(jobID: job.id)
        }
        let usage1 = ProcessStats.selfUsage()
        func secs(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        let user = secs(usage1.ru_utime) - secs(usage0.ru_utime)
        let system = secs(usage1.ru_stime) - secs(usage0.ru_stime)
        let n = Double(files)
        if let sqlTrace {
            try statements.report(perDocument: n).write(toFile: sqlTrace, atomically: true, encoding: .utf8)
            note("  SQL statements: \(fmt(Double(statements.total) / n, 2)) per document, listed in \(sqlTrace)")
        }
        return [streaming ? "streaming" : "blocking", String(files), fmt((user + system) * 1000 / n, 4),
                "\(fmt(user, 2))/\(fmt(system, 2))", fmt(Double(ledger.writeTransactions - writes0) / n, 2), ProcessStats.loadAverage()]
    }
}
