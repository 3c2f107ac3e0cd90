import ArgumentParser
import DifyBatch
import Foundation

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Per job: documents by state, token usage and the last run.")

    @OptionGroup var ledger: LedgerOptions
    @Flag(name: .long, help: "Print JSON (stable keys) instead of a table.") var json = false
    @Flag(name: .long, help: "Keep printing the status every --interval until interrupted (redrawn in place on a terminal).")
    var watch = false
    @Option(name: .long, help: "With --watch: how often to refresh (default 2s).") var interval: String = "2s"

    func validate() throws {
        guard let every = HumanDuration.parse(interval), every >= .milliseconds(100) else {
            throw ValidationError("--interval: expected a duration of at least 100ms, such as 2s")
        }
    }

    func run() async throws {
        guard watch else {
            try await ledger.withExisting(missing: {
                if json { Console.out(try ReportFormatting.json(StatusReport(database: ledger.location, jobs: []))) }
            }) { store in
                Console.out(try render(try await StatusReport.build(from: store, database: ledger.location)))
            }
            return
        }
        if case .postgres(let location) = try ledger.url() {
            try await PostgresSession.with(location, lease: .seconds(30)) { store in try await watchLoop { store } }
        } else {
            var store: SQLiteLedger?
            try await watchLoop {
                if store == nil, FileManager.default.fileExists(atPath: ledger.path) { store = try SQLiteLedger(path: ledger.path) }
                return store
            }
        }
    }

    /// Prints the status every `--interval`; `store` gives the ledger once it exists.
    private func watchLoop(_ store: () throws -> (any Ledger)?) async throws {
        let every = HumanDuration.parse(interval) ?? .seconds(2)
        let terminal = isatty(STDOUT_FILENO) == 1 && !json
        while true {
            var report = StatusReport(database: ledger.location, jobs: [])
            if let store = try store() { report = try await StatusReport.build(from: store, database: ledger.location) }
            let body = try render(report)
            if terminal {
                // Home + clear screen, then the table and the time: a live view.
                Console.out("\u{1B}[H\u{1B}[2J" + body + "\n\(ReportFormatting.timestamp(Date()) ?? "")  (every \(interval); Ctrl-C to stop)\n")
            } else {
                Console.out(body + (json ? "" : "\n"))
            }
            try await Task.sleep(for: every)
        }
    }

    private func render(_ report: StatusReport) throws -> String {
        if json {
            // One compact document per line with --watch, so the output is valid JSON Lines.
            return watch ? try ReportFormatting.jsonLine(report) : try ReportFormatting.json(report)
        }
        return report.renderText()
    }
}

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List documents, most recently updated first.")

    @OptionGroup var ledger: LedgerOptions
    @Option(name: .long, help: "Only this job.") var job: String?
    @Option(name: .long, help: "Only these states (repeatable or comma-separated): \(DocumentState.allCases.map(\.rawValue).joined(separator: ", ")).")
    var state: [String] = []
    @Option(name: .long, help: "Only paths matching this glob (relative to the inbox), e.g. 'invoices/*.pdf'.") var path: String?
    @Option(name: .long, help: "Only documents updated since (2026-11-27, RFC 3339, or an age like 24h).") var since: String?
    @Option(name: .long, help: "Only documents updated before this time.") var until: String?
    @Option(name: .long, help: "At most this many rows (default 100; 0 = all).") var limit: Int = 100
    @Flag(name: .long, help: "Print JSON (an array of documents).") var json = false

    func validate() throws {
        for name in states where DocumentState(rawValue: name) == nil {
            throw ValidationError("unknown state '\(name)'; use one of \(DocumentState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let since, DateArgument.parse(since) == nil { throw ValidationError("--since: expected a date like 2026-11-27, an RFC 3339 time, or an age like 24h") }
        if let until, DateArgument.parse(until) == nil { throw ValidationError("--until: expected a date like 2026-11-27, an RFC 3339 time, or an age like 24h") }
        guard limit >= 0 else { throw ValidationError("--limit must be 0 or more") }
    }

    var states: [String] { state.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } }

    func run() async throws {
        let filter = DocumentFilter(jobName: job, states: states.isEmpty ? nil : Set(states.compactMap(DocumentState.init(rawValue:))),
                                    pathPattern: path, updatedSince: since.flatMap { DateArgument.parse($0) },
                                    updatedUntil: until.flatMap { DateArgument.parse($0) }, limit: limit == 0 ? nil : limit)
        try await ledger.withExisting(missing: { if json { Console.out("[]\n") } }) { store in
            let report = try await DocumentListReport.build(from: store, filter: filter)
            Console.out(json ? try ReportFormatting.json(report) : report.renderText())
        }
    }
}

struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one document (by id, or every version of an inbox-relative path) with its attempt history.")

    @OptionGroup var ledger: LedgerOptions
    @Argument(help: "A document id, or a path relative to the job's inbox.") var reference: String
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        try await ledger.withExisting(missing: { throw ExitCode(ExitStatus.documentsFailed.rawValue) }) { store in
            let reports = try await DocumentDetailReport.build(from: store, reference: reference)
            guard !reports.isEmpty else {
                Console.error("dify-batch: no document with id or path '\(reference)'. `dify-batch list` shows what the ledger holds.")
                throw ExitCode(ExitStatus.documentsFailed.rawValue)
            }
            if let note = DocumentDetailReport.ambiguity(reports, reference: reference) { Console.error("dify-batch: note: \(note)") }
            if json {
                Console.out(reports.count == 1 ? try ReportFormatting.json(reports[0]) : try ReportFormatting.json(reports))
            } else {
                Console.out(reports.map { $0.renderText() }.joined(separator: "\n"))
            }
        }
    }
}

struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Tokens and price, summed exactly, by day, job or run.")

    @OptionGroup var ledger: LedgerOptions
    @Option(name: .long, help: "Only this job.") var job: String?
    @Option(name: .long, help: "From this time (2026-11-27, RFC 3339, or an age like 7d).") var since: String?
    @Option(name: .long, help: "Up to (not including) this time.") var until: String?
    @Option(name: .long, help: "Group by day, job or run (default: day).") var by: String = "day"
    @Flag(name: .long, help: "Print JSON.") var json = false
    @Flag(name: .long, help: "Print CSV.") var csv = false

    func validate() throws {
        guard let grouping = UsageGrouping(rawValue: by), grouping != .none else { throw ValidationError("--by must be day, job or run") }
        if let since, DateArgument.parse(since) == nil { throw ValidationError("--since: expected a date like 2026-11-27, an RFC 3339 time, or an age like 7d") }
        if let until, DateArgument.parse(until) == nil { throw ValidationError("--until: expected a date like 2026-11-27, an RFC 3339 time, or an age like 7d") }
        if json && csv { throw ValidationError("choose one of --json and --csv") }
    }

    func run() async throws {
        let filter = UsageFilter(jobName: job, since: since.flatMap { DateArgument.parse($0) }, until: until.flatMap { DateArgument.parse($0) })
        let grouping = UsageGrouping(rawValue: by) ?? .day
        try await ledger.withExisting(missing: {
            let empty = UsageReport(by: grouping, since: ReportFormatting.timestamp(filter.since), until: ReportFormatting.timestamp(filter.until), groups: [], total: nil)
            if json { Console.out(try ReportFormatting.json(empty)) } else if csv { Console.out(empty.renderCSV()) }
        }) { store in
            let report = try await UsageReport.build(from: store, filter: filter, by: grouping)
            Console.out(json ? try ReportFormatting.json(report) : csv ? report.renderCSV() : report.renderText())
        }
    }
}
