import Foundation

/// `schema.sql` as released at schema version 1 (commit e893a69), kept once in `Tests/Fixtures/ledger-schema-v1.sql`,
/// to prove old ledgers migrate forward.
var ledgerSchemaVersion1SQL: String {
    get throws { try String(contentsOfFile: repositoryRoot + "/Tests/Fixtures/ledger-schema-v1.sql", encoding: .utf8) }
}
