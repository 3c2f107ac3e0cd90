import Foundation
import GRDB
import Testing
@testable import DifyBatch

@Suite struct LedgerMigrationTests {
    @Test func v1Ledger_migratesToTheFreshSchema_andKeepsItsRows() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("v1.sqlite")
        try Self.makeV1Ledger(path)

        let migrated = try SQLiteLedger(path: path)
        let fresh = try SQLiteLedger(path: dir.file("fresh.sqlite"))
        #expect(try migrated.schemaDescription() == (try fresh.schemaDescription()))
        #expect(try Self.userVersion(path) == SQLiteLedger.schemaVersion)
        let document = try await migrated.document(id: 7)
        #expect(document?.state == .succeeded && document?.path == "a.txt")
        #expect(document?.resultStored == false && document?.localFailures == 0)
        #expect(try await migrated.result(documentID: 7)?.outputsJSON == "{\"x\":1}")
    }

    /// A ledger made with the v1 schema.sql (`git show e893a69:schema.sql`), with one job, document and result.
    static func makeV1Ledger(_ path: String) throws {
        let v1 = try ledgerSchemaVersion1SQL
        let queue = try DatabaseQueue(path: path)
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: v1)
            try db.execute(sql: "PRAGMA user_version = 1")
            try db.execute(sql: """
                INSERT INTO jobs (id, name, spec_path, spec_hash, base_url, dify_user, inbox, outbox, created_at, updated_at)
                VALUES (1, 'docs', '/s.yaml', 'h', 'http://x/v1', 'u', '/in', '/out', 1, 1);
                INSERT INTO documents (id, job_id, path, sha256, size, mtime_ns, state, attempts, created_at, updated_at)
                VALUES (7, 1, 'a.txt', 'abc', 3, 5, 'succeeded', 1, 1, 2);
                INSERT INTO results (document_id, status, outputs_json, recorded_at) VALUES (7, 'succeeded', '{"x":1}', 2);
                """)
        }
        try queue.close()
    }

    static func userVersion(_ path: String) throws -> Int? {
        try DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") }
    }
}
