import GRDB

/// The shape of a database as SQLite reports it, for comparing a ledger with `schema.sql`.
public struct SchemaDescription: Equatable, Sendable, CustomStringConvertible {
    public struct Column: Equatable, Sendable {
        public var name: String
        public var type: String
        public var notNull: Bool
        public var defaultValue: String?
        public var primaryKey: Int
    }

    /// Table name → its columns in order.
    public var tables: [String: [Column]]
    /// Index name → "table(col, col)"; a partial or expression index adds its `CREATE INDEX` text (whitespace
    /// collapsed), so its condition and expressions are compared too.
    public var indexes: [String: String]
    /// Trigger name → the table it is on (issue 14: the running totals are kept by triggers).
    public var triggers: [String: String]

    init(_ db: Database) throws {
        tables = [:]
        indexes = [:]
        triggers = [:]
        for row in try Row.fetchAll(db, sql: "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'") {
            triggers[row["name"]] = row["tbl_name"]
        }
        let names = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        for name in names {
            tables[name] = try Row.fetchAll(db, sql: "SELECT * FROM pragma_table_info(?) ORDER BY cid", arguments: [name]).map { row in
                Column(name: row["name"], type: row["type"], notNull: row["notnull"] != 0, defaultValue: row["dflt_value"],
                       primaryKey: row["pk"])
            }
            for index in try Row.fetchAll(db, sql: "SELECT name, partial FROM pragma_index_list(?) WHERE origin = 'c'", arguments: [name]) {
                let indexName: String = index["name"]
                // An expression column has no name.
                let columns = try Optional<String>.fetchAll(db, sql: "SELECT name FROM pragma_index_info(?) ORDER BY seqno", arguments: [indexName])
                var description = "\(name)(\(columns.map { $0 ?? "<expression>" }.joined(separator: ", ")))"
                if (index["partial"] as Int) != 0 || columns.contains(nil),
                   let sql = try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", arguments: [indexName]) {
                    description += " " + sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
                }
                indexes[indexName] = description
            }
        }
    }

    /// Describes the database that `sql` creates in a fresh in-memory database.
    public static func of(sql: String) throws -> SchemaDescription {
        let queue = try DatabaseQueue()
        return try queue.write { db in
            try db.execute(sql: sql)
            return try SchemaDescription(db)
        }
    }

    public var description: String {
        var lines: [String] = []
        for (table, columns) in tables.sorted(by: { $0.key < $1.key }) {
            lines.append("\(table): " + columns.map { "\($0.name) \($0.type)\($0.notNull ? " NOT NULL" : "")" }.joined(separator: ", "))
        }
        for (index, target) in indexes.sorted(by: { $0.key < $1.key }) {
            lines.append("index \(index) on \(target)")
        }
        for (trigger, table) in triggers.sorted(by: { $0.key < $1.key }) {
            lines.append("trigger \(trigger) on \(table)")
        }
        return lines.joined(separator: "\n")
    }
}
