import ArgumentParser
import DifyBatch
import DifyBatchPostgres
import Foundation
import Logging

/// `--db PATH|URL` and `--json`, shared by the reading commands.
struct LedgerOptions: ParsableArguments {
    @Option(name: .long, help: "The ledger: an SQLite file, or postgres://USER@HOST:PORT/DB (default: $DIFY_BATCH_DB, else $XDG_STATE_HOME/dify-batch/dify-batch.sqlite).")
    var db: String?

    /// `--db`, `$DIFY_BATCH_DB` or the default path, as given (a URL is shown through ``location`` instead).
    var path: String { LedgerLocation.resolve(db) }

    /// Where the ledger is; exits 2 with the reason for a malformed PostgreSQL URL.
    func url() throws -> LedgerURL {
        do {
            return try LedgerURL.parse(path)
        } catch {
            Console.error("dify-batch: \(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
    }

    /// The ledger's location without secrets, for reports and messages.
    var location: String { (try? LedgerURL.parse(path).description) ?? path }

    /// Runs `body` with the existing ledger, or calls `missing` (after telling the user on stderr) when an SQLite
    /// ledger does not exist yet. A PostgreSQL ledger's client runs for the duration of `body`.
    func withExisting(missing: () throws -> Void, _ body: (any Ledger) async throws -> Void) async throws {
        switch try url() {
        case .sqlite(let path):
            guard FileManager.default.fileExists(atPath: path) else {
                Console.error("dify-batch: no ledger at \(path) yet: nothing has been processed. Run `dify-batch run jobs/<job>.yaml` (or give --db).")
                try missing()
                return
            }
            let store: SQLiteLedger
            do {
                store = try SQLiteLedger(path: path)
            } catch {
                Console.error("dify-batch: \(error)")
                throw ExitCode(((error as? LedgerError)?.exitStatus ?? .usage).rawValue)
            }
            // Read commands write too (`retry`, a migration on open): the file alone holds everything at the end.
            defer { store.checkpoint() }
            try await body(store)
        case .postgres(let location):
            try await PostgresSession.with(location, lease: .seconds(30)) { ledger in try await body(ledger) }
        }
    }
}

/// A PostgreSQL ledger for a short command: its client runs in a child task while `body` runs.
enum PostgresSession {
    static func with(_ location: PostgresLocation, lease: Duration, _ body: (PostgresLedger) async throws -> Void) async throws {
        let ledger: PostgresLedger
        do {
            ledger = try PostgresLedger(location: location, leaseDuration: lease,
                                        logger: Logger(label: "dify-batch.postgres", factory: { _ in SwiftLogNoOpLogHandler() }))
        } catch {
            Console.error("dify-batch: \(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await ledger.runClient() }
            defer { group.cancelAll() }
            do {
                try await ledger.prepare(timeout: .seconds(20))
            } catch {
                Console.error("dify-batch: \(error)")
                throw ExitCode(((error as? LedgerError)?.exitStatus ?? .usage).rawValue)
            }
            try await body(ledger)
        }
    }
}

extension PostgresSession {
    /// Runs `body` on a PostgreSQL ledger for a background reader (the metrics scrape): nil on any error, nothing printed.
    static func read<T: Sendable>(_ location: PostgresLocation, _ body: @escaping @Sendable (PostgresLedger) async throws -> T) async -> T? {
        try? await reading(location, body)
    }

    /// Runs `body` on a PostgreSQL ledger for a reader that reports failures itself (`check`).
    /// - Throws: the ``LedgerError`` of a server that cannot be reached or refuses this user; what `body` throws.
    static func reading<T: Sendable>(_ location: PostgresLocation, _ body: @escaping @Sendable (PostgresLedger) async throws -> T) async throws -> T {
        let ledger = try PostgresLedger(location: location, leaseDuration: .seconds(30),
                                        logger: Logger(label: "dify-batch.postgres", factory: { _ in SwiftLogNoOpLogHandler() }))
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { await ledger.runClient(); return nil }
            defer { group.cancelAll() }
            try await ledger.prepare(timeout: .seconds(10))
            return try await body(ledger)
        }
    }
}

/// Output helpers: data to stdout, diagnostics to stderr.
enum Console {
    static func out(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }
}
