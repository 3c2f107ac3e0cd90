import Foundation
import Testing
@testable import DifyBatch

@Suite struct LedgerSchemaTests {
    @Test func embeddedSchema_isIdenticalToTopLevelSchemaSQL() throws {
        let file = try String(contentsOfFile: repositoryRoot + "/schema.sql", encoding: .utf8)
        #expect(LedgerSchema.sql == file.trimmingCharacters(in: .newlines),
                "schema.sql changed: run .ci/gen-schema-swift to regenerate Sources/DifyBatch/Ledger/LedgerSchema.swift")
    }

    @Test func newLedger_hasExactlyTheTablesColumnsAndIndexesOfSchemaSQL() throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("ledger.sqlite"))
        let file = try String(contentsOfFile: repositoryRoot + "/schema.sql", encoding: .utf8)
        let expected = try SchemaDescription.of(sql: file)
        let actual = try ledger.schemaDescription()
        #expect(actual == expected)
        #expect(Set(actual.tables.keys) == ["jobs", "documents", "results", "runs", "run_jobs", "attempts", "usage",
                                            "job_state_counts", "job_usage_totals", "job_usage_documents", "ledger_identity"])
        #expect(actual.triggers.count == 5)
        #expect(actual.indexes["documents_by_job_state"] == "documents(job_id, state, next_attempt_at)")
    }

    /// Schema 14 (issue 14): documents_by_row holds only rows (a file's state changes no longer rewrite an entry of
    /// it), and a table's rows are still found through it.
    @Test func rowIndex_isPartialOverRows_andServesTheRowsOfATable() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("ledger.sqlite")
        let ledger = try SQLiteLedger(path: path)
        #expect(try ledger.schemaDescription().indexes["documents_by_row"]?.contains("WHERE row_of IS NOT NULL") == true)
        let plan = try await DatabaseQueue(path: path).read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT id FROM documents WHERE row_of = 7 AND state = 'pending'")
                .map { $0["detail"] as String }
        }
        #expect(plan.contains { $0.contains("documents_by_row") }, "\(plan)")
    }

    @Test func newLedger_usesWALAndRecordsSchemaVersionAndIsPrivate() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("state/nested/ledger.sqlite")
        let ledger = try SQLiteLedger(path: path)
        #expect(try ledger.journalMode() == "wal")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        // Reopening keeps the data and the version.
        let reopened = try SQLiteLedger(path: path)
        #expect(try reopened.schemaDescription() == (try ledger.schemaDescription()))
    }

    @Test func openingALedgerFromANewerVersion_failsWithAClearMessage() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("ledger.sqlite")
        _ = try SQLiteLedger(path: path)
        try runSQLite(path, "PRAGMA user_version = 99")
        #expect {
            _ = try SQLiteLedger(path: path)
        } throws: { error in
            (error as? LedgerError)?.code == .schemaTooNew && "\(error)".contains("upgrade dify-batch")
        }
    }

    @Test func openingAForeignSQLiteFile_isRefused() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("other.sqlite")
        try runSQLite(path, "CREATE TABLE notes (id INTEGER)")
        #expect(throws: LedgerError.self) { _ = try SQLiteLedger(path: path) }
    }
}

import GRDB

func runSQLite(_ path: String, _ sql: String) throws {
    let queue = try DatabaseQueue(path: path)
    try queue.writeWithoutTransaction { db in try db.execute(sql: sql) }
}
