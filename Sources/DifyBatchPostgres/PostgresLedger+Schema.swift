import DifyBatch
import Foundation
import PostgresNIO

/// Creating and migrating the PostgreSQL ledger's schema.
extension PostgresLedger {
    /// Migrations to version N from the version before it, under the same numbers as SQLiteLedger's (gaps are
    /// skipped), each run inside the migrating transaction. Never edit a past entry.
    static let migrations: [Int: String] = [
        // Issue 10 (spend once): states unresolved and paused, send budget, Dify's clock, paused since.
        2: """
            ALTER TABLE documents DROP CONSTRAINT documents_state_check;
            ALTER TABLE documents ADD CONSTRAINT documents_state_check CHECK (state IN (
                'pending', 'uploading', 'uploaded', 'running', 'recovering',
                'succeeded', 'failed', 'dead', 'rejected', 'skipped', 'unresolved', 'paused'));
            ALTER TABLE documents ADD COLUMN run_posts INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE documents ADD COLUMN outcome_unknown INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE documents ADD COLUMN dify_clock_offset_ms BIGINT;
            ALTER TABLE documents ADD COLUMN paused_at BIGINT;
            UPDATE documents SET run_posts = attempts WHERE run_sent_at IS NOT NULL
            """,
        // Issue 11 (files): the pinned identity of each file version, and the scanner's covering index over it.
        3: """
            ALTER TABLE documents ADD COLUMN device BIGINT;
            ALTER TABLE documents ADD COLUMN inode BIGINT;
            DROP INDEX documents_by_job_path;
            CREATE INDEX documents_by_job_path ON documents(job_id, path, id, size, mtime_ns, state, device, inode)
            """,
        // Issue 12: extracted text per document, where a run's usage came from, files not matched per run.
        4: """
            ALTER TABLE documents ADD COLUMN text_sha256 TEXT;
            ALTER TABLE documents ADD COLUMN text_length INTEGER;
            ALTER TABLE run_jobs ADD COLUMN not_matched INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE usage ADD COLUMN usage_source TEXT
            """,
        // Issue 11: a paid result is stored before any local work; local failures are retried from it.
        6: """
            ALTER TABLE documents ADD COLUMN result_stored INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE documents ADD COLUMN local_failures INTEGER NOT NULL DEFAULT 0
            """,
        // Issue 16: the node a failed workflow run named; files that do not settle are named in `status`.
        8: """
            ALTER TABLE attempts ADD COLUMN failed_node TEXT;
            ALTER TABLE run_jobs ADD COLUMN unsettled INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE run_jobs ADD COLUMN unsettled_oldest TEXT;
            ALTER TABLE run_jobs ADD COLUMN unsettled_since BIGINT
            """,
        // Issue 13 (rows as runs): one document per row of a table file, its index and its inputs.
        9: """
            ALTER TABLE documents ADD COLUMN row_of BIGINT REFERENCES documents(id) ON DELETE CASCADE;
            ALTER TABLE documents ADD COLUMN row_index INTEGER;
            ALTER TABLE documents ADD COLUMN row_inputs TEXT;
            CREATE INDEX documents_by_row ON documents(row_of, state)
            """,
        // Session 5 (`integrity`): the ledger's identity, named in the inboxes it owns (InboxOwnership).
        11: """
            CREATE TABLE ledger_identity (
                id          INTEGER PRIMARY KEY CHECK (id = 1),
                ledger_id   TEXT    NOT NULL,
                created_at  BIGINT  NOT NULL
            )
            """,
        // Issue 14: the copies waiting for an original, found without walking every pending document of the job.
        13: "CREATE INDEX documents_by_copy ON documents(duplicate_of) WHERE duplicate_of IS NOT NULL",
    ]

    /// Creates the schema in an empty database (from `schema.postgres.sql`) or migrates an older one, under an
    /// advisory lock so processes starting together do it once.
    /// - Throws: ``LedgerError/Code/schemaTooNew`` for a database written by a newer dify-batch;
    ///   ``LedgerError/Code/cannotOpen`` for a database that has tables but is not a ledger, or cannot be reached.
    public func prepare() async throws {
        try await inTransaction(limitingIdleTime: false) { run in
            // 0x646966792d6c6467 = "dify-ldg": one lock id for every dify-batch process on this database.
            _ = try await run("SELECT pg_advisory_xact_lock(7235439436597043303)")
            try await self.migrate(run)
        }
    }

    private func migrate(_ run: Statements) async throws {
        let hasMeta = try await run("SELECT to_regclass('ledger_meta') IS NOT NULL AS present")
            .first.map { try $0.makeRandomAccess()["present"].decode(Bool.self) } ?? false
        guard hasMeta else {
            let tables = try await run("""
                SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = current_schema()
                """).first.map { try $0.makeRandomAccess()["n"].decode(Int64.self) } ?? 0
            guard tables == 0 else {
                throw LedgerError(.cannotOpen, "PostgreSQL ledger \(location): the database (schema \"public\" or the user's) already has \(tables) tables but no dify-batch ledger_meta; give dify-batch its own database or schema")
            }
            for statement in Self.statements(PostgresSchema.sql) {
                _ = try await run(PostgresQuery(unsafeSQL: statement))
            }
            _ = try await run("INSERT INTO ledger_meta (key, value) VALUES ('schema_version', \(String(Self.schemaVersion)))")
            return
        }
        let text = try await run("SELECT value FROM ledger_meta WHERE key = 'schema_version'")
            .first.map { try $0.makeRandomAccess()["value"].decode(String.self) }
        guard let version = text.flatMap(Int.init) else {
            throw LedgerError(.cannotOpen, "PostgreSQL ledger \(location): ledger_meta has no schema_version; the database is damaged or not a ledger")
        }
        if version > Self.schemaVersion {
            throw LedgerError(.schemaTooNew, "the ledger \(location) has schema version \(version) but this dify-batch knows only up to \(Self.schemaVersion); upgrade dify-batch or use another --db")
        }
        for next in Self.migrations.keys.sorted() where next > version && next <= Self.schemaVersion {
            for statement in Self.statements(Self.migrations[next] ?? "") {
                _ = try await run(PostgresQuery(unsafeSQL: statement))
            }
        }
        if version < Self.schemaVersion {
            _ = try await run("UPDATE ledger_meta SET value = \(String(Self.schemaVersion)) WHERE key = 'schema_version'")
        }
    }

    /// The statements of a schema file: `--` comments removed, split at `;` (the schema has no `;` inside strings).
    static func statements(_ sql: String) -> [String] {
        let code = sql.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            guard let comment = line.range(of: "--") else { return line }
            return line[..<comment.lowerBound]
        }.joined(separator: "\n")
        return code.split(separator: ";").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }
}
