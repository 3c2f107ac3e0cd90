import ArgumentParser
import DifyBatch
import Foundation

/// `dify-batch check SPEC...`: validates each spec, reads its key, asks Dify `GET /info` and `GET /parameters`,
/// and reports whether the job can work. Makes no upload and no run.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check job specs against their Dify apps without uploading or running anything.",
        discussion: """
            Prints per job: the app mode, the file input and the types/extensions it accepts, the other inputs and \
            whether the spec provides them, the upload size limits, and which files now in the inbox would be \
            rejected and why. Exit codes: 0 every job can work; 2 spec or key error; 3 Dify refused the key or the \
            app does not fit the spec; 4 Dify unreachable or quota exhausted, or the PostgreSQL ledger named by --db or \
            DIFY_BATCH_DB cannot be reached (a server that rejects the user: 2).
            """)

    @OptionGroup var ledger: LedgerOptions
    @Argument(help: "Job spec files or folders of *.yaml specs.") var specs: [String]
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        let loaded: [JobSpec]
        do {
            loaded = try JobSpecLoader.load(paths: specs)
            try FolderOverlap.check(loaded)
        } catch let error as SpecError {
            Console.error("dify-batch: \(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        var ledgerFailure: (any Error)?
        let known: [String: [PathKey: DocumentRecord]]?
        do { known = try await knownVersions() } catch {
            // Only a PostgreSQL ledger given by --db or DIFY_BATCH_DB gets here: the user named it, so a server
            // that is down or refuses the user is reported (the checks of the jobs still run).
            known = nil
            ledgerFailure = error
        }
        var reports: [JobCheckReport] = []
        for spec in loaded {
            reports.append(await JobCheck.run(spec: spec, known: known?[spec.name] ?? (known == nil ? nil : [:])))
        }
        if json {
            Console.out(try JobCheckReport.json(reports))
        } else {
            Console.out(reports.map { $0.renderText() }.joined(separator: "\n"))
        }
        for report in reports where report.verdict != .ok {
            Console.error("dify-batch: job \(report.job): \(report.problems.joined(separator: "; "))")
        }
        var code = JobCheck.exitCode(reports)
        if let ledgerFailure {
            Console.error("dify-batch: ledger: \(ledgerFailure)")
            // A job's own problem decides first; else the ledger's (LedgerError.exitStatus).
            if code == 0 {
                code = ((ledgerFailure as? LedgerError)?.exitStatus ?? .usage).rawValue
            }
        }
        if code != 0 { throw ExitCode(code) }
    }

    /// The ledger's latest version of each inbox path per job name, when a ledger exists (never creates one).
    /// - Throws: why a PostgreSQL ledger cannot be read (an SQLite file that cannot be read is skipped silently).
    private func knownVersions() async throws -> [String: [PathKey: DocumentRecord]]? {
        switch try? LedgerURL.parse(ledger.path) {
        case .postgres(let location)?:
            return try await PostgresSession.reading(location) { try await Self.knownVersions(in: $0) }
        case .sqlite(let path)?:
            guard FileManager.default.fileExists(atPath: path), let store = try? SQLiteLedger(path: path) else { return nil }
            return try? await Self.knownVersions(in: store)
        case nil:
            return nil
        }
    }

    private static func knownVersions(in store: any Ledger) async throws -> [String: [PathKey: DocumentRecord]] {
        var result: [String: [PathKey: DocumentRecord]] = [:]
        for job in try await store.jobs() {
            result[job.name] = (try? await store.latestVersions(jobID: job.id)) ?? [:]
        }
        return result
    }
}
