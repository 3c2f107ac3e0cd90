import ArgumentParser
import DifyBatch
import Foundation

/// `dify-batch retry`: puts documents back in the queue (`pending`, attempts reset, history kept). The next
/// `run`/`watch` of their job sends them again.
struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Put dead, rejected or failed documents back in the queue (attempts reset, history kept).",
        discussion: """
            With IDs or inbox-relative paths, those documents (the newest version of a path) are requeued if they are \
            in one of the --state states (default for named documents: dead, rejected or failed). Without, every \
            document of the job (or of all jobs) in the --state states (default: dead) is requeued. The next \
            `dify-batch run` sends them. `unresolved` documents (a run was sent and its outcome could not be \
            established: it may have run and been billed) are re-sent only when asked by name: --state unresolved; \
            that send is counted in duplicate_runs. A requeued document gets a fresh retry.max_attempts budget of \
            run requests. Exit codes: 0 done (also when nothing was in those states); 1 an ID or \
            path matched no document; 2 usage error.
            """)

    static let retryable: [DocumentState] = [.dead, .rejected, .failed, .unresolved]
    /// Without --state: named documents in these states are requeued (never `unresolved`: that must be asked for).
    static let defaultForNamed: [DocumentState] = [.dead, .rejected, .failed]

    @OptionGroup var ledger: LedgerOptions
    @Option(name: .long, help: "Only documents of this job.") var job: String?
    @Option(name: .long, help: "Only documents in these states (repeatable or comma-separated): dead, rejected, failed, unresolved. Default: dead (or dead, rejected, failed for named documents); unresolved only when named here.")
    var state: [String] = []
    @Argument(help: "Document ids, or paths relative to the job's inbox.") var references: [String] = []
    @Flag(name: .long, help: "Print JSON: {\"moved\", \"documents\": [{\"id\", \"job\", \"path\", \"from\"}]}.") var json = false

    var states: [String] { state.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } }

    func validate() throws {
        for name in states where !Self.retryable.map(\.rawValue).contains(name) {
            throw ValidationError("--state: '\(name)' cannot be retried; use dead, rejected, failed or unresolved")
        }
    }

    struct Moved: Encodable {
        var id: Int64
        var job: String
        var path: String
        var from: String
    }

    struct Output: Encodable {
        var moved: Int
        var documents: [Moved]
    }

    func run() async throws {
        try await ledger.withExisting(missing: {
            if json { Console.out(try ReportFormatting.json(Output(moved: 0, documents: []))) }
            if !references.isEmpty { throw ExitCode(ExitStatus.documentsFailed.rawValue) }
        }) { store in try await retry(in: store) }
    }

    private func retry(in store: any Ledger) async throws {
        let explicit = Set(states.compactMap(DocumentState.init(rawValue:)))
        let allowed = explicit.isEmpty ? (references.isEmpty ? [.dead] : Set(Self.defaultForNamed)) : explicit
        if let job, !(try await store.jobs()).contains(where: { $0.name == job }) {
            Console.error("dify-batch: no job named '\(job)' in \(ledger.location). `dify-batch status` lists the jobs.")
            throw ExitCode(ExitStatus.documentsFailed.rawValue)
        }

        var candidates: [DocumentRecord] = []
        var unmatched: [String] = []
        if references.isEmpty {
            candidates = try await store.documents(matching: DocumentFilter(jobName: job, states: allowed))
        } else {
            for reference in references {
                let found = try await resolve(reference, in: store)
                if found.isEmpty { unmatched.append(reference) }
                for document in found where !candidates.contains(where: { $0.id == document.id }) {
                    if allowed.contains(document.state) {
                        candidates.append(document)
                    } else {
                        Console.error("dify-batch: #\(document.id) \(document.jobName) \(document.path) is \(document.state.rawValue), not \(allowed.map(\.rawValue).sorted().joined(separator: "/")); left as it is")
                    }
                }
            }
        }
        candidates.sort { $0.id < $1.id }

        var moved: [Moved] = []
        if !candidates.isEmpty {
            _ = try await store.requeue(ids: candidates.map(\.id), from: allowed)
            // Report exactly what moved: a document another process changed meanwhile is left alone.
            for document in candidates {
                if let now = try await store.document(id: document.id), now.state == .pending, now.attempts == 0 {
                    moved.append(Moved(id: document.id, job: document.jobName, path: document.path, from: document.state.rawValue))
                }
            }
        }

        if json {
            Console.out(try ReportFormatting.json(Output(moved: moved.count, documents: moved)))
        } else {
            let scope = allowed.map(\.rawValue).sorted().joined(separator: "/")
            Console.out("Requeued \(moved.count) document\(moved.count == 1 ? "" : "s") (\(scope) → pending).\n")
            if !moved.isEmpty {
                Console.out(ReportFormatting.table(headers: ["JOB", "ID", "PATH", "WAS"],
                                                   rows: moved.map { [$0.job, "\($0.id)", $0.path, $0.from] }))
            }
        }
        if !moved.isEmpty {
            let jobs = Set(moved.map(\.job)).sorted().joined(separator: ", ")
            Console.error("dify-batch: the next `dify-batch run` of \(jobs) sends them again (a rejected file is sent as it is now in the inbox).")
        }
        if !unmatched.isEmpty {
            Console.error("dify-batch: no document with id or path \(unmatched.map { "'\($0)'" }.joined(separator: ", ")). `dify-batch list` shows what the ledger holds.")
            throw ExitCode(ExitStatus.documentsFailed.rawValue)
        }
    }

    /// A document id, or the newest version of an inbox-relative path in each job (only `--job` when given).
    private func resolve(_ reference: String, in store: any Ledger) async throws -> [DocumentRecord] {
        if let id = Int64(reference), let document = try await store.document(id: id) {
            return job == nil || document.jobName == job ? [document] : []
        }
        let versions = try await store.documents(path: reference).filter { job == nil || $0.jobName == job }
        // A file literally named like a table row (`x.csv#2`) beside that row: which one is meant only its id says.
        for name in Set(versions.map(\.jobName)).sorted() {
            let ofJob = versions.filter { $0.jobName == name }
            let rows = ofJob.filter { $0.rowOf != nil }.map(\.id), files = ofJob.filter { $0.rowOf == nil }.map(\.id)
            guard !rows.isEmpty, !files.isEmpty else { continue }
            Console.error("dify-batch: '\(reference)' names both a file of that name (document \(files.map(String.init).joined(separator: ", "))) and a table row (document \(rows.map(String.init).joined(separator: ", "))) in job \(name); give the document's id instead")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        var newest: [String: DocumentRecord] = [:]
        for document in versions where (newest[document.jobName]?.id ?? Int64.min) < document.id {
            newest[document.jobName] = document
        }
        return newest.values.sorted { $0.id < $1.id }
    }
}
