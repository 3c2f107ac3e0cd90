import DifyBatch
import Foundation
import Testing

@Suite struct LedgerURLTests {
    @Test func parse_whenPostgresURL_givesLocationAndNeverAFilePath() throws {
        let url = try LedgerURL.parse("postgres://batch@127.0.0.1:5433/ledger?password_file=/run/secrets/pg&sslmode=disable")
        guard case .postgres(let location) = url else { Issue.record("taken as \(url)"); return }
        #expect(location.user == "batch")
        #expect(location.host == "127.0.0.1")
        #expect(location.port == 5433)
        #expect(location.database == "ledger")
        #expect(location.passwordFile == "/run/secrets/pg")
        #expect(location.tls == .disable)
        #expect(try LedgerURL.parse("postgresql://u@db.example/x") == .postgres(PostgresLocation(user: "u", host: "db.example", port: 5432, database: "x")))
        #expect(try LedgerURL.parse("/var/lib/dify-batch/ledger.sqlite") == .sqlite(path: "/var/lib/dify-batch/ledger.sqlite"))
        #expect(try LedgerURL.parse("relative/ledger.sqlite") == .sqlite(path: "relative/ledger.sqlite"))
    }

    @Test func parse_whenPasswordInURLOrPartsMissing_refusesWithTheFix() {
        for bad in ["postgres://batch:secret@h/db", "postgres://h/db", "postgres://u@h/", "postgres://u@h/db?colour=red"] {
            #expect(throws: LedgerError.self) { try LedgerURL.parse(bad) }
        }
        do {
            _ = try LedgerURL.parse("postgres://batch:hunter2@h/db")
        } catch {
            #expect(!"\(error)".contains("hunter2"))
            #expect("\(error)".contains("password_file"))
        }
    }

    @Test func password_comesFromFileThenEnvironmentThenPgpass() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pgpass-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/password"
        try "from-file\nignored\n".write(toFile: file, atomically: true, encoding: .utf8)
        let pgpass = folder + "/.pgpass"
        try "# comment\nother:5432:ledger:batch:wrong\n127.0.0.1:*:ledger:batch:from\\:pgpass\n".write(toFile: pgpass, atomically: true, encoding: .utf8)

        let withFile = PostgresLocation(user: "batch", host: "127.0.0.1", port: 5433, database: "ledger", passwordFile: file)
        #expect(try withFile.password(environment: ["PGPASSWORD": "from-env"]) == "from-file")
        let plain = PostgresLocation(user: "batch", host: "127.0.0.1", port: 5433, database: "ledger")
        #expect(try plain.password(environment: ["PGPASSWORD": "from-env", "HOME": folder]) == "from-env")
        #expect(try plain.password(environment: ["HOME": folder]) == "from:pgpass")
        #expect(try plain.password(environment: ["HOME": folder + "/none"]) == nil)
        let missing = PostgresLocation(user: "batch", host: "h", database: "d", passwordFile: folder + "/absent")
        #expect(throws: LedgerError.self) { try missing.password(environment: [:]) }
    }

    @Test func description_neverShowsAPassword() throws {
        let url = try LedgerURL.parse("postgres://batch@db:5432/ledger?password_file=/secret/file")
        #expect(url.description == "postgres://batch@db:5432/ledger?password_file=/secret/file")
    }
}
