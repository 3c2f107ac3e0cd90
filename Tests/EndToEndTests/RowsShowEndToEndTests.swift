import DifyBatch
import DifySimulator
import Foundation
import Testing

/// `show` of a table row (`x.csv#2`): the row's fields, not a file's; and a file literally named like a row.
@Suite struct RowsShowEndToEndTests {
    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func show_aRow_printsItsTableIndexAndInputs_notFileFields_andAttemptNumbersNotRecordIDs() async throws {
        try await withDifySimulator(SimulatorConfiguration(apps: [RowsEndToEndTests.completionApp])) { _, baseURL in
            // One row at a time, so the second row's attempt record is not the ledger's first.
            let workspace = try RowsEndToEndTests.workspace(baseURL, concurrency: 1, inputs: "{tone: calm}")
            try workspace.drop("notes.csv", "text\nfirst note\nsecond note\n")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .success)
            let table = try #require(try await ledger.documents(path: "notes.csv").first)

            let show = try await CLI.run(["show", "--db", workspace.dbPath, "notes.csv#2"])
            #expect(show.status == 0, "\(show.stderr)")
            #expect(show.stdout.contains("row           2 of the table notes.csv (document \(table.id))"), "\(show.stdout)")
            #expect(show.stdout.contains(#"inputs        {"#) && show.stdout.contains(#""text":"second note""#), "\(show.stdout)")
            #expect(!show.stdout.contains("  bytes ") && !show.stdout.contains("  file  "), "a row has no file of its own:\n\(show.stdout)")
            #expect(show.stdout.contains("(of the row's inputs)"), "\(show.stdout)")

            let detail = try Self.json(try await CLI.run(["show", "--db", workspace.dbPath, "--json", "notes.csv#2"]).stdout)
            let document = try #require(detail["document"] as? [String: Any])
            #expect(document["row_of"] as? Int == Int(table.id))
            #expect(document["row_index"] as? Int == 2)
            #expect((document["row_inputs"] as? [String: Any])?["text"] as? String == "second note", "\(document)")
            let attempts = try #require(detail["attempts"] as? [[String: Any]])
            let run = try #require(attempts.first { $0["phase"] as? String == "run" })
            #expect(run["attempt"] as? Int == 1, "\(attempts)")
            #expect((run["id"] as? Int ?? 0) > 1, "precondition: the record id differs from the attempt number")
            // The attempts table of the text output numbers attempts, not ledger records.
            let runLine = show.stdout.split(separator: "\n").first { $0.contains(" run ") && $0.contains(" ok ") }
            #expect(runLine?.split(separator: " ").first == "1", "\(show.stdout)")

            // A file's JSON has the keys too, null.
            let file = try Self.json(try await CLI.run(["show", "--db", workspace.dbPath, "--json", "notes.csv"]).stdout)
            let fileDocument = try #require(file["document"] as? [String: Any])
            #expect(fileDocument.keys.contains("row_of") && fileDocument["row_of"] is NSNull)
        }
    }

    @Test func aFileNamedLikeARow_staysItsOwnDocument_andShowNamesBothWithTheirIDs() async throws {
        try await withDifySimulator(SimulatorConfiguration(apps: [RowsEndToEndTests.completionApp])) { _, baseURL in
            let workspace = try RowsEndToEndTests.workspace(baseURL)
            // Take every file, so the one literally named `notes.csv#2` is matched (and rejected: it is no table).
            var spec = try String(contentsOfFile: workspace.specPath, encoding: .utf8)
            spec = spec.replacingOccurrences(of: #"include: ["*.csv"]"#, with: #"include: ["*"]"#)
            try spec.write(toFile: workspace.specPath, atomically: true, encoding: .utf8)
            try workspace.drop("notes.csv", "text\nfirst note\nsecond note\n")
            try workspace.drop("notes.csv#2", "just a file\n")
            _ = try await workspace.run()
            // A second run sees the file again: it is the version already recorded, not a new one beside the row.
            let (_, ledger) = try await workspace.run()
            let named = try await ledger.documents(path: "notes.csv#2")
            #expect(named.filter { $0.rowOf == nil }.count == 1, "the file is one document: \(named.map { ($0.id, $0.state, $0.rowOf as Any) })")
            #expect(named.filter { $0.rowOf != nil }.count == 1)
            let row = try #require(named.first { $0.rowOf != nil }), file = try #require(named.first { $0.rowOf == nil })
            #expect(row.state == .succeeded && file.state == .rejected && file.lastError?.code == "not_a_table")

            let show = try await CLI.run(["show", "--db", workspace.dbPath, "notes.csv#2"])
            #expect(show.status == 0)
            #expect(show.stderr.contains("names both a file of that name (document \(file.id)) and a table row (document \(row.id))"), "\(show.stderr)")
            #expect(show.stdout.contains("row           2 of the table notes.csv") && show.stdout.contains("  file  "), "\(show.stdout)")
            let byID = try await CLI.run(["show", "--db", workspace.dbPath, String(file.id)])
            #expect(byID.status == 0 && byID.stderr.isEmpty && !byID.stdout.contains("of the table"), "\(byID.stdout)\(byID.stderr)")

            // `retry` by that name would have to guess: it asks for the id; by id it moves exactly that document.
            let ambiguous = try await CLI.run(["retry", "--db", workspace.dbPath, "--state", "rejected", "notes.csv#2"])
            #expect(ambiguous.status == 2 && ambiguous.stderr.contains("give the document's id instead"), "\(ambiguous.stderr)")
            let retried = try await CLI.run(["retry", "--db", workspace.dbPath, "--state", "rejected", String(file.id)])
            #expect(retried.status == 0, "\(retried.stderr)")
            let fileNow = try await ledger.document(id: file.id), rowNow = try await ledger.document(id: row.id)
            #expect(fileNow?.state == .pending && rowNow?.state == .succeeded)
        }
    }
}
