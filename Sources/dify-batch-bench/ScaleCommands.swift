import ArgumentParser
import DifyBatch
import DifySimulator
import Foundation
import GRDB

/// 4a. Scan of a large inbox whose files are all already known to the ledger.
struct ScanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Time to scan an inbox of N files that the ledger already knows (no hashing).",
        discussion: """
            Creates N small files (1000 per folder), lists them with InboxScanner and prefills the ledger with one \
            `succeeded` row per file with the same size and mtime (one SQL transaction), then times: the inbox \
            walk alone (InboxScanner.scanReport), the ledger lookup alone (knownFiles, what the scanner uses), and a whole \
            `dify-batch run` in-process (open ledger, preflight against the in-process simulator, scan, find \
            nothing to do, exit). Each is repeated --repeat times.
            """)

    @Option(help: "Files in the inbox.") var files = 100_000
    @Option(name: .customLong("repeat"), help: "Repetitions of each timing.") var repetitions = 3

    func run() async throws {
        let files = self.files
        let repetitions = max(1, repetitions)
        let rows: [[String]] = try await withDifySimulator { simulator, baseURL in
            let workspace = try BenchWorkspace()
            defer { workspace.remove() }
            try workspace.writeSpec(baseURL: baseURL, concurrency: 8)
            note("scan: writing \(files) files…")
            try workspace.dropSmallFiles(files)
            let spec = try JobSpecLoader.load(path: workspace.specPath)
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            let job = try await ledger.register(JobRegistration(name: spec.name, specPath: spec.specPath, specHash: spec.specHash,
                                                                baseURL: spec.dify.baseURL, difyUser: spec.dify.user,
                                                                inbox: spec.inbox, outbox: spec.outbox))
            let scanner = InboxScanner(inbox: spec.inbox, rules: spec.match, excluding: [spec.outbox, spec.archive])
            let listed = try scanner.scan()
            guard listed.count == files else { throw BenchError("the scanner listed \(listed.count) files, expected \(files)") }
            note("scan: prefilling the ledger…")
            let prefill = ContinuousClock.now
            try LedgerFiller.prefill(dbPath: workspace.dbPath, jobID: job.id, files: listed)
            note("scan: prefilled \(listed.count) rows in \(fmt((ContinuousClock.now - prefill).seconds, 2)) s")

            var walk: [Double] = [], lookup: [Double] = [], whole: [Double] = []
            for _ in 0..<repetitions {
                var t = ContinuousClock.now
                _ = try scanner.scanReport()
                walk.append((ContinuousClock.now - t).seconds)
                t = ContinuousClock.now
                let known = try await ledger.knownFiles(jobID: job.id)
                lookup.append((ContinuousClock.now - t).seconds)
                guard known.count == files else { throw BenchError("ledger knows \(known.count) files") }
                simulator.resetStats()
                t = ContinuousClock.now
                let (pipeline, _) = try workspace.makePipeline(mode: .once)
                let result = try await pipeline.run()
                whole.append((ContinuousClock.now - t).seconds)
                let uploads = simulator.stats.uploads
                guard uploads == 0, result.exitStatus == .success else {
                    throw BenchError("the run was not a no-op: \(uploads) uploads, exit \(result.exitStatus)")
                }
            }
            func cell(_ values: [Double]) -> String { "\(fmt(percentile(values, 50), 3)) (min \(fmt(values.min() ?? .nan, 3)))" }
            var breakdown: [[String]] = [[String(files), cell(walk), cell(lookup), cell(whole)]]
            // Where the time of the lookup goes: the same SQL without building records, and a narrow query.
            let report = try scanner.scanReport()
            var settle: [Double] = []
            for _ in 0..<repetitions {
                var tracker = SettleTracker(settle: .zero)
                let t = ContinuousClock.now
                _ = tracker.observe(report.files, now: ContinuousClock.now, wallNow: Date())
                settle.append((ContinuousClock.now - t).seconds)
            }
            let queue = try DatabaseQueue(path: workspace.dbPath)
            func sqlTime(_ sql: String) async throws -> [Double] {
                var samples: [Double] = []
                for _ in 0..<repetitions {
                    let t = ContinuousClock.now
                    let n = try await queue.read { db in
                        var n = 0
                        let cursor = try Row.fetchCursor(db, sql: sql, arguments: [job.id])
                        while try cursor.next() != nil { n += 1 }
                        return n
                    }
                    samples.append((ContinuousClock.now - t).seconds)
                    guard n == files else { throw BenchError("\(n) rows from \(sql)") }
                }
                return samples
            }
            let current = try await sqlTime("""
                SELECT d.*, j.name AS job_name FROM documents d JOIN jobs j ON j.id = d.job_id
                WHERE d.job_id = ? AND d.id = (SELECT max(id) FROM documents WHERE job_id = d.job_id AND path = d.path)
                """)
            let narrow = "SELECT path, id, size, mtime_ns, state FROM documents WHERE job_id = ? ORDER BY path, id"
            let narrowTimes = try await sqlTime(narrow)
            try await queue.write { try $0.execute(sql: "CREATE INDEX bench_documents_scan ON documents(job_id, path, id, size, mtime_ns, state)") }
            let covered = try await sqlTime(narrow)
            try await queue.write { try $0.execute(sql: "DROP INDEX bench_documents_scan") }
            try queue.close()
            breakdown.append(["parts:", "SettleTracker.observe \(cell(settle))", "same SQL, rows not decoded \(cell(current))",
                              "narrow query \(cell(narrowTimes)); + covering index \(cell(covered))"])
            return breakdown
        }
        say(Table.render(headers: ["files known", "inbox walk (s)", "ledger knownFiles (s)", "whole `run`, nothing to do (s)"],
                         rows: rows))
    }
}

/// 4b. `status` and `list --state failed` on a ledger with many documents.
struct QueriesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queries",
        abstract: "Times of `status` and `list --state failed` on a large ledger (built with direct SQL).",
        discussion: """
            Builds (or reuses, with --db) a ledger of --documents rows spread over --jobs jobs: 97.5% succeeded \
            (each with a usage row), 1% failed, 0.5% dead, 0.5% rejected, 0.3% skipped, 0.2% pending; updated_at \
            spread over 30 days; 1000 runs. Each query opens the ledger as the CLI does (SQLiteLedger(path:)) \
            and builds the same report (StatusReport.build / DocumentListReport.build with limit 100), \
            --repeat times; the parts of `status` are timed separately. --index runs extra SQL first (e.g. a \
            CREATE INDEX to try); --plan prints EXPLAIN QUERY PLAN of each statement.
            """)

    @Option(help: "Documents in the ledger.") var documents = 1_000_000
    @Option(help: "Jobs they belong to.") var jobs = 4
    @Option(help: "Use (and keep) this ledger file; built only when missing.") var db: String?
    @Option(name: .customLong("index"), help: "Extra SQL to run before measuring (repeatable).") var extraSQL: [String] = []
    @Option(name: .customLong("repeat"), help: "Repetitions.") var repetitions = 5
    @Flag(help: "Print EXPLAIN QUERY PLAN for the statements behind each query.") var plan = false

    func run() async throws {
        let folder = db == nil ? try BenchWorkspace() : nil
        defer { folder?.remove() }
        let path = db ?? folder!.dbPath
        if !FileManager.default.fileExists(atPath: path) {
            note("queries: building a ledger of \(documents) documents at \(path)…")
            let start = ContinuousClock.now
            _ = try SQLiteLedger(path: path)
            try LedgerFiller.build(dbPath: path, documents: documents, jobs: jobs)
            note("queries: built in \(fmt((ContinuousClock.now - start).seconds, 1)) s")
        }
        let queue = try DatabaseQueue(path: path)
        for sql in extraSQL {
            note("queries: \(sql)")
            let start = ContinuousClock.now
            try await queue.write { try $0.execute(sql: sql) }
            note("  took \(fmt((ContinuousClock.now - start).seconds, 2)) s")
        }
        try await queue.write { try $0.execute(sql: "ANALYZE") }
        let size = ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0) >> 20
        let count = try await queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM documents") ?? 0 }
        if plan {
            for (name, sql) in LedgerFiller.statements {
                let rows = try queue.read { try Row.fetchAll($0, sql: "EXPLAIN QUERY PLAN " + sql) }
                note("plan of \(name):\n" + rows.map { "  " + ($0["detail"] as String? ?? "") }.joined(separator: "\n"))
            }
        }
        try queue.close()

        var rows: [[String]] = []
        func time(_ name: String, _ body: () async throws -> Void) async throws {
            var samples: [Double] = []
            for _ in 0..<max(1, repetitions) {
                let start = ContinuousClock.now
                try await body()
                samples.append(milliseconds(ContinuousClock.now - start))
            }
            rows.append([name, String(count), fmt(samples.first ?? .nan), fmt(percentile(samples, 50)), fmt(samples.max() ?? .nan)])
        }
        try await time("`status` (open + StatusReport.build)") {
            let ledger = try SQLiteLedger(path: path)
            _ = try await StatusReport.build(from: ledger, database: path).renderText()
        }
        try await time("`list --state failed` (open + list, limit 100)") {
            let ledger = try SQLiteLedger(path: path)
            _ = try await DocumentListReport.build(from: ledger, filter: DocumentFilter(states: [.failed], limit: 100)).renderText()
        }
        let ledger = try SQLiteLedger(path: path)
        try await time("  part: open the ledger") { _ = try SQLiteLedger(path: path) }
        try await time("  part: jobs()") { _ = try await ledger.jobs() }
        try await time("  part: stateCounts()") { _ = try await ledger.stateCounts() }
        try await time("  part: lastRuns()") { _ = try await ledger.lastRuns() }
        try await time("  part: usageTotals(by: .job)") { _ = try await ledger.usageTotals(matching: UsageFilter(), by: .job) }
        // Alternatives for the slow part of `status` (raw SQL, rows fetched, nothing decoded).
        let raw = try DatabaseQueue(path: path)
        for (name, sql) in [
            ("  alt: usage sums per job without DISTINCT", """
                SELECT job_id, count(*), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens),
                       sum(total_price_nanos), count(total_price_nanos), min(currency), max(currency)
                FROM usage GROUP BY job_id
                """),
            ("  alt: count(DISTINCT document_id) per job alone", "SELECT job_id, count(DISTINCT document_id) FROM usage GROUP BY job_id"),
        ] {
            try await time(name) { _ = try raw.read { try Row.fetchAll($0, sql: sql) } }
        }
        try raw.close()
        say("ledger: \(path) (\(size) MB, \(count) documents)" + (extraSQL.isEmpty ? "" : "; extra: " + extraSQL.joined(separator: "; ")))
        say(Table.render(headers: ["query", "documents", "first (ms)", "median (ms)", "max (ms)"], rows: rows))
    }
}

/// Fills ledgers with direct SQL (one transaction), much faster than one `insert` per row.
enum LedgerFiller {
    /// Statements behind `status` and `list --state failed`, for EXPLAIN QUERY PLAN.
    static let statements: [(String, String)] = [
        ("stateCounts", "SELECT job_id, state, count(*) AS n FROM documents GROUP BY job_id, state"),
        ("lastRuns", """
            SELECT rj.job_id, rj.succeeded, rj.failed, rj.dead, rj.rejected, rj.skipped, r.*
            FROM run_jobs rj JOIN runs r ON r.id = rj.run_id
            WHERE rj.run_id = (SELECT max(run_id) FROM run_jobs WHERE job_id = rj.job_id)
            """),
        ("usageTotals by job", """
            SELECT j.name AS grp, group_concat(DISTINCT u.currency) AS currencies,
                   count(DISTINCT u.currency) AS currency_count, count(DISTINCT u.document_id) AS docs, count(*) AS runs,
                   coalesce(sum(u.prompt_tokens), 0) AS p, coalesce(sum(u.completion_tokens), 0) AS c,
                   coalesce(sum(u.total_tokens), 0) AS t, sum(u.total_price_nanos) AS price,
                   count(u.total_price_nanos) AS priced
            FROM usage u JOIN jobs j ON j.id = u.job_id GROUP BY grp ORDER BY grp
            """),
        ("list --state failed", """
            SELECT d.*, j.name AS job_name FROM documents d JOIN jobs j ON j.id = d.job_id
            WHERE d.state IN ('failed') ORDER BY d.updated_at DESC, d.id DESC LIMIT 100
            """),
    ]

    /// One `succeeded` row per listed file, same size and mtime, so a scan finds nothing new.
    static func prefill(dbPath: String, jobID: Int64, files: [InboxFile]) throws {
        let queue = try DatabaseQueue(path: dbPath)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try queue.inTransaction { db in
            let statement = try db.makeStatement(sql: """
                INSERT INTO documents (job_id, path, sha256, size, mtime_ns, state, attempts, created_at, updated_at, finished_at)
                VALUES (?, ?, ?, ?, ?, 'succeeded', 1, ?, ?, ?)
                """)
            for (index, file) in files.enumerated() {
                try statement.execute(arguments: [jobID, file.relativePath, fakeSHA(index), file.size, file.mtimeNanoseconds, now, now, now])
            }
            return .commit
        }
        try queue.close()
    }

    static func fakeSHA(_ index: Int) -> String {
        let hex = String(index, radix: 16)
        return String(repeating: "0", count: 64 - hex.count) + hex
    }

    /// A ledger of `documents` rows over `jobs` jobs (see `QueriesCommand`'s discussion for the mix).
    static func build(dbPath: String, documents: Int, jobs: Int) throws {
        let queue = try DatabaseQueue(path: dbPath)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let span: Int64 = 30 * 24 * 3600 * 1000
        var random = SplitMix(seed: 7)
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = OFF") }
        try queue.inTransaction { db in
            for job in 1...jobs {
                try db.execute(sql: """
                    INSERT INTO jobs (id, name, spec_path, spec_hash, app_mode, base_url, dify_user, inbox, outbox, created_at, updated_at)
                    VALUES (?, ?, ?, 'hash', 'workflow', 'http://127.0.0.1/v1', 'bench', ?, ?, ?, ?)
                    """, arguments: [job, "job\(job)", "/jobs/job\(job).yaml", "/in/job\(job)", "/out/job\(job)", now - span, now])
            }
            let runs = 1000
            for run in 1...runs {
                let started = now - span + Int64(run) * span / Int64(runs)
                try db.execute(sql: "INSERT INTO runs (id, command, started_at, ended_at, pid, host, exit_code) VALUES (?, 'run', ?, ?, ?, 'bench', 0)",
                               arguments: [run, started, started + 60_000, 1000 + run])
                try db.execute(sql: "INSERT INTO run_jobs (run_id, job_id, succeeded) VALUES (?, ?, ?)",
                               arguments: [run, (run - 1) % jobs + 1, documents / runs])
            }
            let document = try db.makeStatement(sql: """
                INSERT INTO documents (id, job_id, path, sha256, size, mtime_ns, state, attempts, next_attempt_at, upload_file_id,
                    workflow_run_id, output_path, last_error_class, last_error_code, last_error_message, last_http_status,
                    created_at, updated_at, finished_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            let usage = try db.makeStatement(sql: """
                INSERT INTO usage (document_id, job_id, run_id, dify_run_id, prompt_tokens, completion_tokens, total_tokens,
                    total_price, total_price_nanos, currency, latency_ms, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'USD', ?, ?)
                """)
            for id in 1...documents {
                let job = (id - 1) % jobs + 1
                let roll = Int(random.next() % 1000)
                let state: String
                switch roll {
                case 0..<10: state = "failed"
                case 10..<15: state = "dead"
                case 15..<20: state = "rejected"
                case 20..<23: state = "skipped"
                case 23..<25: state = "pending"
                default: state = "succeeded"
                }
                let updated = now - span + Int64(id) * span / Int64(documents) - Int64(random.next() % 600_000)
                let created = updated - 5000
                let failed = state == "failed" || state == "dead"
                let terminal = state != "failed" && state != "pending"
                let runID = "\(UInt64(id) &* 0x9E37_79B9)-run"
                let path = "batch\(id / 1000)/document-\(id).pdf"
                try document.execute(arguments: [
                    id, job, path, fakeSHA(id), 1000 + id % 50_000, updated * 1_000_000, state,
                    failed ? 2 : 1, state == "failed" ? updated + 60_000 : nil, state == "succeeded" ? "file-\(id)" : nil,
                    state == "succeeded" ? runID : nil, state == "succeeded" ? "/out/\(path).json" : nil,
                    failed ? "retryable" : (state == "rejected" ? "rejected" : nil), failed ? "internal_server_error" : nil,
                    failed ? "Dify answered 500 internal_server_error" : nil, failed ? 500 : nil,
                    created, updated, terminal ? updated : nil,
                ])
                if state == "succeeded" {
                    let tokens = 100 + id % 900
                    try usage.execute(arguments: [id, job, (id % 1000) + 1, runID, tokens / 2, tokens - tokens / 2, tokens,
                                                  "0.000\(tokens)", Int64(tokens) * 1000, 1200 + id % 800, updated])
                }
            }
            return .commit
        }
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try queue.close()
    }
}

/// A tiny deterministic RNG.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
