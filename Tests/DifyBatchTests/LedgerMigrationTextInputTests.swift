import Foundation
import GRDB
import Testing

@testable import DifyBatch

/// Migration 4 (issue 12): a v1 ledger gains the text, usage-source and not-matched columns and keeps its rows.
@Suite struct LedgerMigrationTextInputTests {
    @Test func v1Ledger_migratesToTheFreshSchema_andKeepsItsRows() throws {
        let dir = try TemporaryDirectory()
        let oldPath = dir.file("v1.sqlite")
        let v1 = try String(contentsOfFile: repositoryRoot + "/Tests/Fixtures/ledger-schema-v1.sql", encoding: .utf8)
        let queue = try DatabaseQueue(path: oldPath)
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: v1)
            try db.execute(sql: """
                PRAGMA user_version = 1;
                INSERT INTO jobs (id, name, spec_path, spec_hash, base_url, dify_user, inbox, outbox, created_at, updated_at)
                    VALUES (1, 'j', 'j.yaml', 'h', 'http://x/v1', 'u', '/in', '/out', 1, 1);
                INSERT INTO documents (id, job_id, path, sha256, size, mtime_ns, state, created_at, updated_at)
                    VALUES (7, 1, 'a.txt', 'abc', 3, 1, 'succeeded', 1, 1);
                INSERT INTO runs (id, command, started_at, pid, host) VALUES (1, 'run', 1, 1, 'h');
                INSERT INTO run_jobs (run_id, job_id, succeeded) VALUES (1, 1, 1);
                INSERT INTO usage (document_id, job_id, dify_run_id, total_tokens, recorded_at) VALUES (7, 1, 'r', 78, 1);
                """)
        }
        try queue.close()

        let migrated = try SQLiteLedger(path: oldPath)
        let fresh = try SQLiteLedger(path: dir.file("fresh.sqlite"))
        #expect(try migrated.schemaDescription() == (try fresh.schemaDescription()))
        let check = try DatabaseQueue(path: oldPath)
        let (version, path, text, notMatched, usage) = try check.read { db in
            (try Int.fetchOne(db, sql: "PRAGMA user_version"),
             try String.fetchOne(db, sql: "SELECT path FROM documents WHERE id = 7"),
             try Row.fetchOne(db, sql: "SELECT text_sha256, text_length FROM documents WHERE id = 7"),
             try Int.fetchOne(db, sql: "SELECT not_matched FROM run_jobs"),
             try Row.fetchOne(db, sql: "SELECT total_tokens, usage_source FROM usage"))
        }
        #expect(version == SQLiteLedger.schemaVersion)
        #expect(path == "a.txt")
        #expect(text == ["text_sha256": nil, "text_length": nil])
        #expect(notMatched == 0)
        #expect(usage == ["total_tokens": 78, "usage_source": nil])
    }
}
