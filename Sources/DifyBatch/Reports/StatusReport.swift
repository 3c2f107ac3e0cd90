import Foundation

/// `dify-batch status`: per job, counts by state, usage and the last run.
public struct StatusReport: Encodable, Sendable {
    public struct Job: Encodable, Sendable {
        public var name: String
        public var specPath: String
        public var appMode: String?
        /// Every public state, zero included.
        public var counts: [String: Int]
        public var total: Int
        public var usage: UsageJSON
        public var lastRun: LastRun?
        /// When the longest-paused run of this job was first seen paused (issue 10); nil when none is paused.
        public var pausedSince: Date? = nil

        enum CodingKeys: String, CodingKey {
            case name, specPath = "spec_path", appMode = "app_mode", counts, total, usage, lastRun = "last_run"
            case pausedSince = "paused_since"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(specPath, forKey: .specPath)
            try container.encode(appMode, forKey: .appMode)
            try container.encode(counts, forKey: .counts)
            try container.encode(total, forKey: .total)
            try container.encode(usage, forKey: .usage)
            try container.encode(lastRun, forKey: .lastRun)
            try container.encode(pausedSince.flatMap { ReportFormatting.timestamp($0) }, forKey: .pausedSince)
        }
    }

    public struct LastRun: Encodable, Sendable {
        public var id: Int64
        public var command: String
        public var startedAt: String?
        public var endedAt: String?
        public var pid: Int
        public var host: String
        public var exitCode: Int?
        /// `running`, `ended`, or `gone` (not ended, yet its process on this host no longer exists).
        public var state: RunLiveness = .running
        public var succeeded: Int
        public var failed: Int
        public var dead: Int
        public var rejected: Int
        public var skipped: Int
        /// Inbox files `match.include`/`exclude` left out at that run's last scan.
        public var notMatched: Int = 0
        /// Files that run saw still changing at its last look (issue 16), the oldest and how long it has been
        /// changing (until the run ended, or until now while it runs).
        public var unsettled = UnsettledFiles.none

        enum CodingKeys: String, CodingKey {
            case id, command, startedAt = "started_at", endedAt = "ended_at", pid, host, exitCode = "exit_code", state
            case succeeded, failed, dead, rejected, skipped, notMatched = "not_matched", unsettled
        }

        struct UnsettledJSON: Encodable {
            var files: UnsettledFiles
            enum CodingKeys: String, CodingKey { case count, oldest, changingSeconds = "changing_seconds" }
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(files.count, forKey: .count)
                try container.encode(files.oldestPath, forKey: .oldest)
                try container.encode(files.oldestPath == nil ? nil : Int64(files.oldestFor.seconds.rounded(.down)), forKey: .changingSeconds)
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(command, forKey: .command)
            try container.encode(startedAt, forKey: .startedAt)
            try container.encode(endedAt, forKey: .endedAt)
            try container.encode(pid, forKey: .pid)
            try container.encode(host, forKey: .host)
            try container.encode(exitCode, forKey: .exitCode)
            try container.encode(state, forKey: .state)
            try container.encode(succeeded, forKey: .succeeded)
            try container.encode(failed, forKey: .failed)
            try container.encode(dead, forKey: .dead)
            try container.encode(rejected, forKey: .rejected)
            try container.encode(skipped, forKey: .skipped)
            try container.encode(notMatched, forKey: .notMatched)
            try container.encode(UnsettledJSON(files: unsettled), forKey: .unsettled)
        }
    }

    public var database: String
    public var jobs: [Job]

    public init(database: String, jobs: [Job]) {
        self.database = database
        self.jobs = jobs
    }

    /// Reads the report from a ledger.
    public static func build(from ledger: any LedgerReader, database: String) async throws -> StatusReport {
        let jobs = try await ledger.jobs()
        let counts = try await ledger.stateCounts()
        let lastRuns = try await ledger.lastRuns()
        let usage = try await ledger.usageTotals(matching: UsageFilter(), by: .job)
        var pausedSince: [Int64: Date] = [:]
        for document in try await ledger.documents(matching: DocumentFilter(states: [.paused])) {
            let since = document.pausedAt ?? document.updatedAt
            pausedSince[document.jobID] = min(pausedSince[document.jobID] ?? since, since)
        }
        return StatusReport(database: database, jobs: jobs.map { job in
            var stateCounts: [String: Int] = [:]
            for state in DocumentState.allCases { stateCounts[state.rawValue] = counts[job.id]?[state] ?? 0 }
            let jobUsage = usage.filter { $0.group == job.name }
            let last = lastRuns[job.id].map { entry in
                var run = LastRun(id: entry.run.id, command: entry.run.command, startedAt: ReportFormatting.timestamp(entry.run.startedAt),
                        endedAt: ReportFormatting.timestamp(entry.run.endedAt), pid: entry.run.pid, host: entry.run.host,
                        exitCode: entry.run.exitCode, succeeded: entry.counts.succeeded, failed: entry.counts.failed,
                        dead: entry.counts.dead, rejected: entry.counts.rejected, skipped: entry.counts.skipped,
                        notMatched: entry.counts.notMatched)
                run.state = RunLiveness.of(endedAt: entry.run.endedAt, pid: entry.run.pid, host: entry.run.host)
                if entry.counts.unsettled > 0 {
                    let until = entry.run.endedAt ?? Date()
                    let changing = entry.counts.unsettledSince.map { max(0, until.timeIntervalSince($0)) } ?? 0
                    run.unsettled = UnsettledFiles(count: entry.counts.unsettled, oldestPath: entry.counts.unsettledOldest,
                                                   oldestFor: .milliseconds(Int64(changing * 1000)))
                }
                return run
            }
            return Job(name: job.name, specPath: job.specPath, appMode: job.appMode, counts: stateCounts,
                       total: stateCounts.values.reduce(0, +), usage: UsageReport.combine(jobUsage), lastRun: last,
                       pausedSince: pausedSince[job.id])
        })
    }

    /// The human table.
    public func renderText() -> String {
        guard !jobs.isEmpty else { return "No jobs in the ledger \(database) yet.\n" }
        let shown: [DocumentState] = [.pending, .running, .recovering, .failed, .paused, .succeeded, .skipped, .dead, .rejected, .unresolved]
        let headers = ["JOB"] + shown.map { $0.rawValue.uppercased() } + ["TOKENS", "PRICE", "LAST RUN"]
        let rows = jobs.map { job -> [String] in
            let inFlight = (job.counts["uploading"] ?? 0) + (job.counts["uploaded"] ?? 0) + (job.counts["running"] ?? 0)
            let cells = shown.map { state -> String in
                state == .running ? String(inFlight) : String(job.counts[state.rawValue] ?? 0)
            }
            let price = job.usage.totalPrice.map { "\($0) \(job.usage.currency ?? "")".trimmingCharacters(in: .whitespaces) } ?? "-"
            let last = job.lastRun.map { run in
                let exit: String
                switch run.state {
                case .gone: exit = "ended (process gone)"
                case .running: exit = "in progress"
                case .ended: exit = run.exitCode.map { "exit \($0)" } ?? "ended"
                }
                return "\(run.command) #\(run.id) \(run.startedAt ?? "") \(exit)".trimmingCharacters(in: .whitespaces)
            } ?? "never"
            return [job.name] + cells + [job.usage.totalTokens.map(String.init) ?? "-", price, last]
        }
        var text = ReportFormatting.table(headers: headers, rows: rows)
        for job in jobs {
            if let since = job.pausedSince {
                let waited = HumanDuration.format(.seconds(max(0, Int64(Date().timeIntervalSince(since)))))
                text += "\(job.name): \(job.counts["paused"] ?? 0) run(s) paused in Dify waiting for human input, the oldest for \(waited); they are polled, never re-sent\n"
            }
            if let lastRun = job.lastRun, let waiting = lastRun.unsettled.summary {
                text += "\(job.name): \(lastRun.state == .running ? "" : "at the end of the last run: ")\(waiting)\n"
            }
            if let notMatched = job.lastRun?.notMatched, notMatched > 0 {
                text += "\(job.name): not matched: \(notMatched) file(s) in the inbox at the last run (match.include/exclude); see dify-batch check\n"
            }
        }
        return text
    }
}
