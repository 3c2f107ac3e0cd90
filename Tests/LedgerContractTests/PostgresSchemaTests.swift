import DifyBatch
import DifyBatchPostgres
import Foundation
import PostgresNIO
import PostgresTestSupport
import Testing

/// schema.postgres.sql must describe the same ledger as schema.sql: same tables, same columns in the same order,
/// same states, same version. Only the documented PostgreSQL-only parts (leases, ledger_meta) may differ.
@Suite struct PostgresSchemaTests {
    static let postgresOnlyTables: Set<String> = ["ledger_meta", "scanner_leases"]
    static let postgresOnlyColumns: [String: [String]] = ["documents": ["lease_owner", "lease_until"]]
    /// SQLite only (issue 14, schema 10): running totals kept by triggers. SQLite has one writer; in PostgreSQL,
    /// counter rows updated by every transition would serialize the processes sharing a job (and could deadlock
    /// across transitions), so the PostgreSQL ledger counts with queries.
    static let sqliteOnlyTables: Set<String> = ["job_state_counts", "job_usage_totals", "job_usage_documents"]

    static func file(_ name: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent(name), encoding: .utf8)
    }

    @Test func embeddedSchema_isIdenticalToSchemaPostgresSQL() throws {
        #expect(PostgresSchema.sql == (try Self.file("schema.postgres.sql")).trimmingCharacters(in: .newlines),
                "schema.postgres.sql changed: run .ci/gen-schema-swift to regenerate Sources/DifyBatchPostgres/PostgresSchema.swift")
    }

    /// The `CHECK (column IN (...))` value lists of a schema text, by column.
    static func checkedValues(_ sql: String) -> [String: Set<String>] {
        var result: [String: Set<String>] = [:]
        let pattern = try! NSRegularExpression(pattern: #"(\w+)\s+TEXT[^,]*?CHECK \(\1 IN \(([^)]*)\)\)"#, options: [.dotMatchesLineSeparators])
        for match in pattern.matches(in: sql, range: NSRange(sql.startIndex..., in: sql)) {
            guard let column = Range(match.range(at: 1), in: sql), let list = Range(match.range(at: 2), in: sql) else { continue }
            result[String(sql[column])] = Set(sql[list].split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " \n'")) })
        }
        return result
    }

    @Test func schemaVersionsAndStates_matchSQLite() throws {
        let sqlite = try Self.file("schema.sql")
        let postgres = try Self.file("schema.postgres.sql")
        func version(_ text: String) -> String? {
            text.split(separator: "\n").first { $0.hasPrefix("-- schema-version:") }.map { String($0) }
        }
        #expect(version(sqlite) == version(postgres), "schema-version lines differ")
        #expect(PostgresLedger.schemaVersion == SQLiteLedger.schemaVersion)
        let sqliteChecks = Self.checkedValues(sqlite)
        #expect(sqliteChecks["state"] == Set(DocumentState.allCases.map(\.rawValue)))
        #expect(Self.checkedValues(postgres) == sqliteChecks, "the CHECKed states/phases differ between schema.sql and schema.postgres.sql")
    }

    @Test func newPostgresLedger_hasTheTablesAndColumnsOfSchemaSQL() async throws {
        let expected = try SchemaDescription.of(sql: LedgerSchema.sql)
        try await TestPostgres.withLedger(owner: "schema") { _, location in
            var actual: [String: [String]] = [:]
            try await TestPostgres.admin(location) { client in
                let rows = try await client.query("""
                    SELECT table_name::text, column_name::text FROM information_schema.columns
                    WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position
                    """)
                for try await (table, column) in rows.decode((String, String).self) { actual[table, default: []].append(column) }
            }
            #expect(Set(actual.keys) == Set(expected.tables.keys).subtracting(Self.sqliteOnlyTables).union(Self.postgresOnlyTables))
            for (table, columns) in expected.tables where !Self.sqliteOnlyTables.contains(table) {
                #expect(actual[table] == columns.map(\.name) + (Self.postgresOnlyColumns[table] ?? []),
                        "table \(table): schema.postgres.sql must have the columns of schema.sql in the same order (PostgreSQL-only columns last)")
            }
        }
    }
}
