import DifyBatch
import PostgresNIO

/// A statement built piece by piece with numbered parameters (`$1`, `$2`, …), for the queries whose shape depends
/// on a filter or a change list.
struct PostgresStatement {
    private(set) var sql = ""
    private(set) var binds = PostgresBindings()
    private var count = 0

    init(_ sql: String = "") { self.sql = sql }

    /// Appends SQL text.
    mutating func append(_ text: String) { sql += text }

    /// Binds a value and returns its placeholder.
    mutating func bind<Value: PostgresDynamicTypeEncodable>(_ value: Value?) -> String {
        binds.append(value)
        count += 1
        return "$\(count)"
    }

    var query: PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: binds) }
}

/// A PostgreSQL row as the ledger's records read it.
struct PostgresLedgerRow: LedgerRow {
    let row: PostgresRandomAccessRow

    init(_ row: PostgresRow) { self.row = row.makeRandomAccess() }

    func int64(_ column: String) throws -> Int64? {
        guard row.contains(column) else { throw LedgerError(.invalidValue, "the ledger query returned no column \(column)") }
        return try row[column].decode(Int64?.self)
    }

    func string(_ column: String) throws -> String? {
        guard row.contains(column) else { throw LedgerError(.invalidValue, "the ledger query returned no column \(column)") }
        return try row[column].decode(String?.self)
    }
}
