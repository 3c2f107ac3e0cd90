import Crypto
import DifyBatch
import DifyKit
import DifySimulator
import Foundation
import Testing

private typealias JSONValue = DifyKit.JSONValue

/// Issue 13: Dify's "Run Batch", durable — every row of a table in the inbox is one run.
@Suite struct RowsEndToEndTests {
    /// A completion app like capture `24_parameters_completion`: a required paragraph `text` (max 300) and a `tone` select.
    static let completionApp = SimulatedApp(apiKey: "app-rows", mode: "completion", name: "rows", userInputForm: [
        .paragraph("text", required: true, maxLength: 300),
        SimulatedInputVariable(variable: "tone", type: "select", required: false, options: ["calm", "loud"]),
    ], fileUploadTypes: [])

    static func sha256(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// A workspace whose job is `rows: true` (only `.csv` files are taken: files that rows name stay in the inbox).
    static func workspace(_ baseURL: String, key: String = "app-rows", name: String = "rows", concurrency: Int = 8,
                          inputs: String = "{}") throws -> Workspace {
        let workspace = try Workspace(baseURL: baseURL, key: key)
        try """
            name: \(name)
            inbox: ../in
            outbox: ../out
            rows: true
            dify:
              base_url: \(baseURL)
              api_key_env: DIFY_TEST_KEY
              inputs: \(inputs)
            match:
              settle: 0s
              include: ["*.csv"]
            concurrency: \(concurrency)
            retry: {max_attempts: 3, base_delay: 10ms, max_delay: 100ms}
            timeout: 30s
            recover_deadline: 20s
            """.write(toFile: workspace.specPath, atomically: true, encoding: .utf8)
        return workspace
    }

    /// The text of data row `index` (1-based): two lines, a comma and quotes, so every row is a quoted multi-line field.
    static func text(_ index: Int) -> String { "Row \(index): first line,\nsecond \"quoted\" line" }

    static func quoted(_ field: String) -> String { "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    /// 1,000 rows: rows 100, 500, 900 invalid (tone not an option, text empty, text over max_length); row 700
    /// repeats row 10 and row 800 repeats row 20 (same inputs).
    static func bigTable(rows: Int = 1000) -> (csv: String, cells: [[String: String]]) {
        var cells: [[String: String]] = []
        for index in 1...rows {
            var text = text(index)
            var tone = index % 2 == 0 ? "calm" : "loud"
            switch index {
            case 100: tone = "angry"
            case 500: text = ""
            case 900: text = String(repeating: "x", count: 301)
            case 700: text = Self.text(10); tone = "calm"
            case 800: text = Self.text(20); tone = "calm"
            default: break
            }
            cells.append(["text": text, "tone": tone])
        }
        let csv = "\u{FEFF}text,tone\r\n" + cells.map { quoted($0["text"]!) + "," + $0["tone"]! + "\r\n" }.joined()
        return (csv, cells)
    }

    /// The outbox files the run must write for ``bigTable(rows:)``, from the simulated model's known answers.
    static func expectedCSV(_ cells: [[String: String]]) throws -> Data {
        let lines = cells.enumerated().map { offset, row -> RowsOutput.Line in
            let index = offset + 1
            let values = row.mapValues(JSONValue.string)
            switch index {
            case 100: return .init(row: index, status: "rejected", cells: values, error: RecordedError(errorClass: "rejected", code: "invalid_row", message: "row 100: tone is \"angry\", which is not one of its options (calm, loud)"))
            case 500: return .init(row: index, status: "rejected", cells: values, error: RecordedError(errorClass: "rejected", code: "invalid_row", message: "row 500: text is required but empty"))
            case 900: return .init(row: index, status: "rejected", cells: values, error: RecordedError(errorClass: "rejected", code: "invalid_row", message: "row 900: text is 301 characters, over its max_length of 300"))
            default:
                let answer = SimulatedOutput.completionAnswer(text: row["text"]!)
                return .init(row: index, status: index == 700 || index == 800 ? "skipped" : "succeeded", cells: values, outputs: ["answer": .string(answer)])
            }
        }
        return try RowsOutput(columns: ["text", "tone"], lines: lines).csv()
    }

    @Test func thousandRowCSV_withInvalidAndDuplicateRows_runs995Times_andWritesEveryRowInInputOrder() async throws {
        try await withDifySimulator(SimulatorConfiguration(apps: [Self.completionApp])) { simulator, baseURL in
            let workspace = try Self.workspace(baseURL)
            let (csv, cells) = Self.bigTable()
            try workspace.drop("batch/orders.csv", csv)
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed, "3 rows were rejected")

            // At the server: 995 runs, each distinct row text exactly once.
            #expect(simulator.stats.runsStarted == 995)
            #expect(simulator.stats.runRequestsReceived == 995)
            #expect(simulator.stats.runsBySHA256.count == 995 && simulator.stats.runsBySHA256.values.allSatisfy { $0 == 1 })
            #expect(simulator.stats.uploads == 0)

            let rows = try await ledger.documents(matching: DocumentFilter(pathPattern: "batch/orders.csv#*"))
            #expect(rows.count == 1000)
            let byState = Dictionary(grouping: rows, by: \.state).mapValues(\.count)
            #expect(byState == [.succeeded: 995, .rejected: 3, .skipped: 2])
            let rejected = rows.filter { $0.state == .rejected }.sorted { $0.rowIndex! < $1.rowIndex! }
            #expect(rejected.map(\.path) == ["batch/orders.csv#100", "batch/orders.csv#500", "batch/orders.csv#900"])
            #expect(rejected.map { $0.lastError?.code } == ["invalid_row", "invalid_row", "invalid_row"])
            let skipped = rows.filter { $0.state == .skipped }.sorted { $0.rowIndex! < $1.rowIndex! }
            #expect(skipped.map(\.rowIndex) == [700, 800])
            #expect(try await skipped.asyncMap { try await ledger.document(id: $0.duplicateOf!)?.path } == ["batch/orders.csv#10", "batch/orders.csv#20"])
            #expect(workspace.errorOutputs().isEmpty, "rows have no .error.json of their own")

            // The table: succeeded once all rows ended, its two outbox files written, the source archived.
            let table = try #require(try await ledger.documents(path: "batch/orders.csv").first)
            #expect(table.state == .succeeded)
            #expect(table.outputPath == workspace.outbox + "/batch/orders.csv.jsonl")
            #expect(FileManager.default.fileExists(atPath: workspace.archive + "/batch/orders.csv"))
            #expect(!FileManager.default.fileExists(atPath: workspace.inbox + "/batch/orders.csv"))
            #expect(Set(workspace.files(in: workspace.outbox)) == ["batch/orders.csv.jsonl", "batch/orders.csv.csv"])

            let writtenCSV = try Data(contentsOf: URL(fileURLWithPath: workspace.outbox + "/batch/orders.csv.csv"))
            #expect(writtenCSV == (try Self.expectedCSV(cells)))

            let lines = try String(contentsOfFile: workspace.outbox + "/batch/orders.csv.jsonl", encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 1000)
            for (offset, line) in lines.enumerated() {
                let object = try #require(try JSONValue.parse(String(line)).objectValue)
                let index = offset + 1
                #expect(object["row"] == .int(Int64(index)))
                #expect(object["inputs"] == .object(cells[offset].mapValues(JSONValue.string)))
                switch index {
                case 100, 500, 900:
                    #expect(object["status"] == .string("rejected") && object["outputs"] == .null)
                    #expect(object["error"]?["code"] == .string("invalid_row"))
                case 700, 800:
                    #expect(object["status"] == .string("skipped") && object["usage"] == .null)
                    #expect(object["dify"]?["duplicate_of"] == .string("batch/orders.csv#\(index == 700 ? 10 : 20)"))
                    #expect(object["outputs"]?["answer"] == .string(SimulatedOutput.completionAnswer(text: cells[offset]["text"]!)))
                default:
                    #expect(object["status"] == .string("succeeded") && object["error"] == .null)
                    #expect(object["outputs"]?["answer"] == .string(SimulatedOutput.completionAnswer(text: cells[offset]["text"]!)))
                    #expect(object["usage"]?["total_tokens"]?.intValue != nil)
                    #expect(object["dify"]?["message_id"]?.stringValue != nil)
                }
            }
            // usage counts rows as documents.
            let usage = try await ledger.usageTotals(matching: UsageFilter(), by: .job)
            #expect(usage.first?.documents == 995)
        }
    }

    @Test func missingRequiredColumn_rejectsTheWholeFile_andNotARowIsSent() async throws {
        try await withDifySimulator(SimulatorConfiguration(apps: [Self.completionApp])) { simulator, baseURL in
            let workspace = try Self.workspace(baseURL)
            try workspace.drop("no-text.csv", "tone,comment\ncalm,hello\n")
            try Data([0x74, 0x65, 0x78, 0x74, 0x0A, 0x63, 0x61, 0x66, 0xE9, 0x0A]).write(to: URL(fileURLWithPath: workspace.inbox + "/latin1.csv"))
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed)
            #expect(simulator.stats.runRequestsReceived == 0)
            let documents = try await ledger.documents(matching: DocumentFilter())
            #expect(documents.count == 2, "no row documents")
            let codes = Dictionary(uniqueKeysWithValues: documents.map { ($0.path, $0.lastError?.code ?? "") })
            #expect(codes == ["no-text.csv": "missing_required_column", "latin1.csv": "encoding_not_utf8"])
            let error = try workspace.json("no-text.csv.error.json")
            #expect(((error["error"] as? [String: Any])?["message"] as? String)?.contains("text") == true)
            #expect(FileManager.default.fileExists(atPath: workspace.inbox + "/no-text.csv"), "a rejected table stays in the inbox")
        }
    }

    @Test func completionApp_fedByATextColumn_withDifyInputsAsDefaults() async throws {
        try await withDifySimulator(SimulatorConfiguration(apps: [Self.completionApp])) { simulator, baseURL in
            let workspace = try Self.workspace(baseURL, inputs: "{tone: calm}")
            try workspace.drop("notes.csv", "text\nfirst note\nsecond note\n")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .success)
            #expect(simulator.stats.runsBySHA256 == [Self.sha256("first note"): 1, Self.sha256("second note"): 1])
            let rows = try await ledger.documents(matching: DocumentFilter(pathPattern: "notes.csv#*"))
            #expect(rows.allSatisfy { $0.state == .succeeded } && rows.count == 2)
            let csv = try String(contentsOfFile: workspace.outbox + "/notes.csv.csv", encoding: .utf8)
            #expect(csv.hasPrefix("text,answer,answer_json,status,error\r\nfirst note,"))
            // Rows are addressed as path#row.
            let show = try await CLI.run(["show", "--db", workspace.dbPath, "notes.csv#2"])
            #expect(show.status == 0 && show.stdout.contains("notes.csv#2") && show.stdout.contains("succeeded"), "\(show.stdout)\(show.stderr)")
            #expect(show.stdout.contains("inputs        {\"text\":\"second note\"}"), "\(show.stdout)")
            let list = try await CLI.run(["list", "--db", workspace.dbPath, "--path", "notes.csv#*"])
            #expect(list.stdout.contains("notes.csv#1") && list.stdout.contains("notes.csv#2"), "\(list.stdout)")

            // The same rows again in another table: no new run, every row skipped from the stored results.
            try workspace.drop("again/notes.csv", "text\nsecond note\nfirst note\n")
            let (again, _) = try await workspace.run()
            #expect(again.exitStatus == .success)
            #expect(simulator.stats.runsBySHA256 == [Self.sha256("first note"): 1, Self.sha256("second note"): 1])
            let copies = try await ledger.documents(matching: DocumentFilter(pathPattern: "again/notes.csv#*"))
            #expect(copies.count == 2 && copies.allSatisfy { $0.state == .skipped })
            let copyCSV = try String(contentsOfFile: workspace.outbox + "/again/notes.csv.csv", encoding: .utf8)
            #expect(copyCSV.contains("second note,") && copyCSV.hasSuffix(",skipped,\r\n"))
        }
    }

    @Test func deadRowRetried_runsAgain_andTheTablesFilesAreWrittenAgain() async throws {
        var failing = FaultPlan()
        failing.failedWorkflowRate = 1.0
        let app = SimulatedApp(apiKey: "app-retry", mode: "workflow", name: "retry", userInputForm: [.paragraph("text", required: true)])
        let workspace = try await withDifySimulator(SimulatorConfiguration(apps: [app], faults: failing)) { simulator, baseURL in
            let workspace = try Self.workspace(baseURL, key: "app-retry")
            try workspace.drop("t.csv", "text\nalpha\nbeta\n")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed)
            let rows = try await ledger.documents(matching: DocumentFilter(pathPattern: "t.csv#*"))
            #expect(rows.count == 2 && rows.allSatisfy { $0.state == .dead })
            #expect(simulator.stats.runRequestsReceived == 4, "a run that fails the same way twice is not sent a third time")
            let csv = try String(contentsOfFile: workspace.outbox + "/t.csv.csv", encoding: .utf8)
            #expect(csv.components(separatedBy: ",dead,").count == 3)
            #expect(try await ledger.requeue(ids: rows.map(\.id), from: [.dead]) == 2)
            return workspace
        }
        try await withDifySimulator(SimulatorConfiguration(apps: [app])) { simulator, baseURL in
            let spec = try String(contentsOfFile: workspace.specPath, encoding: .utf8)
            try spec.replacingOccurrences(of: workspace.baseURL, with: baseURL).write(toFile: workspace.specPath, atomically: true, encoding: .utf8)
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .success)
            #expect(simulator.stats.runRequestsReceived == 2)
            let rows = try await ledger.documents(matching: DocumentFilter(pathPattern: "t.csv#*"))
            #expect(rows.allSatisfy { $0.state == .succeeded })
            let lines = try String(contentsOfFile: workspace.outbox + "/t.csv.jsonl", encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 2 && lines.allSatisfy { $0.contains("\"status\":\"succeeded\"") && $0.contains("\"error\":null") })
        }
    }

    @Test func chatApp_takesEachRowsQueryColumn_andATableWithoutAQueryIsRejected() async throws {
        try await withDifySimulator(SimulatorConfiguration(apps: [.chat(apiKey: "app-chat", fileUploadTypes: [])])) { simulator, baseURL in
            let workspace = try Self.workspace(baseURL, key: "app-chat")
            try workspace.drop("questions.csv", "text,query\nfirst text,What is it about?\nsecond text,\n")
            try workspace.drop("no-query.csv", "text\nthird text\n")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed)
            #expect(simulator.stats.runsBySHA256 == [Self.sha256("first text"): 1], "the row without a query is not sent")
            let rows = try await ledger.documents(matching: DocumentFilter(pathPattern: "questions.csv#*")).sorted { $0.rowIndex! < $1.rowIndex! }
            #expect(rows.map(\.state) == [.succeeded, .rejected])
            #expect(rows[1].lastError?.message == "row 2: query is empty and dify.query is not set")
            let table = try #require(try await ledger.documents(path: "no-query.csv").first)
            #expect(table.state == .rejected && table.lastError?.message.contains("\"query\" column") == true)
        }
    }

    @Test func workflow_fedByAFilePathColumn_uploadsEachFileFirst() async throws {
        try await withDifySimulator(SimulatorConfiguration(apps: [.workflow(apiKey: "app-wf")])) { simulator, baseURL in
            let workspace = try Self.workspace(baseURL, key: "app-wf")
            try workspace.drop("files/a.txt", "Alpha document.\n")
            try workspace.drop("files/b.txt", "Beta document, longer.\n")
            try workspace.drop("docs.csv", "document,language\nfiles/a.txt,en\nfiles/b.txt,de\nfiles/missing.txt,en\n")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed, "one row names a file that is not there")
            #expect(simulator.stats.uploads == 2)
            #expect(simulator.stats.runsBySHA256 == [Self.sha256("Alpha document.\n"): 1, Self.sha256("Beta document, longer.\n"): 1])
            let rows = try await ledger.documents(matching: DocumentFilter(pathPattern: "docs.csv#*")).sorted { $0.rowIndex! < $1.rowIndex! }
            #expect(rows.map(\.state) == [.succeeded, .succeeded, .rejected])
            #expect(rows[2].lastError?.message.contains("files/missing.txt") == true)
            let lines = try String(contentsOfFile: workspace.outbox + "/docs.csv.jsonl", encoding: .utf8).split(separator: "\n")
            let first = try JSONValue.parse(String(lines[0]))
            let expected = SimulatedOutput.workflowOutputsJSON(fileBytes: Array("Alpha document.\n".utf8), filename: "a.txt", inputs: ["language": "en"])
            #expect(first["outputs"] == (try JSONValue.parse(expected.encoded(.stream))))
            #expect(FileManager.default.fileExists(atPath: workspace.inbox + "/files/a.txt"), "files a row names are not moved")
        }
    }
}

/// Found by the attack helper: rows whose runs' ids never arrived are looked up in Dify's logs; two rows that differ
/// only in their file cell must not be taken for one another (each would get the other's result, and usage counted twice).
@Suite struct RowsRecoveryEndToEndTests {
    @Test func rowsDifferingOnlyInTheirFile_lostRunIDs_eachRecoversItsOwnRun_notTheOthers() async throws {
        var faults = FaultPlan()
        faults.silenceBeforeStart = .milliseconds(800)   // no workflow_started before the client's idle timeout
        try await withDifySimulator(SimulatorConfiguration(apps: [.workflow(apiKey: "app-wf")], faults: faults)) { simulator, baseURL in
            let workspace = try RowsEndToEndTests.workspace(baseURL, key: "app-wf")
            try workspace.drop("files/a.txt", "Alpha document.\n")
            try workspace.drop("files/b.txt", "Beta document, longer.\n")
            try workspace.drop("files/c.txt", "Gamma.\n")
            try workspace.drop("docs.csv", "document,language\nfiles/a.txt,en\nfiles/b.txt,en\nfiles/c.txt,en\n")
            let (result, ledger) = try await workspace.run(timeouts: DifyClient.Timeouts(connect: .milliseconds(500), streamIdle: .milliseconds(300)))
            #expect(result.exitStatus == .success)
            #expect(simulator.stats.runRequestsReceived == 3)
            let rows = try await ledger.documents(matching: DocumentFilter(pathPattern: "docs.csv#*")).sorted { $0.rowIndex! < $1.rowIndex! }
            #expect(rows.map(\.state) == [.succeeded, .succeeded, .succeeded])
            #expect(Set(rows.compactMap(\.workflowRunID)).count == 3, "each row has its own run: \(rows.map(\.workflowRunID))")
            let lines = try String(contentsOfFile: workspace.outbox + "/docs.csv.jsonl", encoding: .utf8).split(separator: "\n")
            let filenames = try lines.map { try JSONValue.parse(String($0))["outputs"]?["filename"]?.stringValue }
            #expect(filenames == ["a.txt", "b.txt", "c.txt"], "each row's output is its own file's")
            let total = try await ledger.usageTotals(matching: UsageFilter(), by: .none)
            #expect(total.first?.totalTokens == simulator.stats.billed.tokens, "ledger usage == tokens Dify billed")
        }
    }
}

/// Found by the attack helper (Scripts/attack/rows-stale-file.sh): a row's dedupe key held the file cell's path, not the
/// file's content, so a table naming a file replaced since an earlier table was `skipped` with the old file's result.
@Suite struct RowsFileContentEndToEndTests {
    @Test func fileReplacedUnderTheSamePath_aNewTableNamingIt_runsTheNewContent_andAnUnchangedFileIsStillSkipped() async throws {
        try await withDifySimulator(SimulatorConfiguration(apps: [.workflow(apiKey: "app-wf")])) { simulator, baseURL in
            let workspace = try RowsEndToEndTests.workspace(baseURL, key: "app-wf")
            try workspace.drop("files/a.txt", "Monday's report.\n")
            try workspace.drop("files/b.txt", "Unchanged.\n")
            try workspace.drop("monday.csv", "document,language\nfiles/a.txt,en\nfiles/b.txt,en\n")
            #expect(try await workspace.run().0.exitStatus == .success)
            try workspace.drop("files/a.txt", "Tuesday's report, another text.\n")
            try workspace.drop("tuesday.csv", "document,language\nfiles/a.txt,en\nfiles/b.txt,en\n")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .success)
            #expect(simulator.stats.runsBySHA256 == [RowsEndToEndTests.sha256("Monday's report.\n"): 1,
                                                      RowsEndToEndTests.sha256("Tuesday's report, another text.\n"): 1,
                                                      RowsEndToEndTests.sha256("Unchanged.\n"): 1])
            let rows = try await ledger.documents(matching: DocumentFilter(pathPattern: "tuesday.csv#*")).sorted { $0.rowIndex! < $1.rowIndex! }
            #expect(rows.map(\.state) == [.succeeded, .skipped])
            let lines = try String(contentsOfFile: workspace.outbox + "/tuesday.csv.jsonl", encoding: .utf8).split(separator: "\n")
            let texts = try lines.map { try JSONValue.parse(String($0))["outputs"]?["text"]?.stringValue }
            #expect(texts == ["Tuesday's report, another text.\n", "Unchanged.\n"])
        }
    }
}

/// Issue 13: `dify-batch check` on a rows job (the real binary).
@Suite struct RowsCheckEndToEndTests {
    @Test func check_onARowsJob_printsPerTableRowsMatchedColumnsAndTheRowsThatWouldBeRejected_sendingNothing() async throws {
        try await withDifySimulator(SimulatorConfiguration(apps: [RowsEndToEndTests.completionApp])) { simulator, baseURL in
            let workspace = try RowsEndToEndTests.workspace(baseURL)
            try workspace.drop("good.csv", "text,tone,note\nhello,calm,x\n,loud,y\nhi,angry,z\n")
            try workspace.drop("bad.csv", "tone\ncalm\n")
            let result = try await CLI.run(["check", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("good.csv: 3 rows; columns → variables: text, tone; not sent: note; 2 row(s) would be rejected:"), "\(result.stdout)")
            #expect(result.stdout.contains("row 2: text is required but empty"))
            #expect(result.stdout.contains("row 3: tone is \"angry\", which is not one of its options (calm, loud)"))
            #expect(result.stdout.contains("bad.csv: 1 row; columns → variables: tone; the whole file would be rejected: the app requires the input variable(s) text"))
            let json = try await CLI.run(["check", "--json", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            let job = try #require((object["jobs"] as? [[String: Any]])?.first)
            let tables = try #require((job["inbox"] as? [String: Any])?["tables"] as? [[String: Any]])
            #expect(tables.count == 2)
            let good = try #require(tables.first { $0["path"] as? String == "good.csv" })
            #expect((good["rejected_rows"] as? [[String: Any]])?.map { $0["row"] as? Int } == [2, 3])
            #expect(simulator.stats.runRequestsReceived == 0 && simulator.stats.uploads == 0)
        }
    }
}

/// Issue 13: a rows job killed with SIGKILL mid-table resumes where it stopped (the real binary).
@Suite(.serialized) struct RowsProcessEndToEndTests {
    /// A workflow with a required paragraph `text`: its runs can be looked up again after a crash (completion runs cannot).
    static let app = SimulatedApp(apiKey: "app-rows-wf", mode: "workflow", name: "rows-wf",
                                  userInputForm: [.paragraph("text", required: true)])

    @Test func runKilledWithSIGKILL_andRestarted_sendsNoRowTwice_andWritesTheSameFilesAsAnUnkilledRun() async throws {
        var faults = FaultPlan()
        faults.latency = .milliseconds(20)
        try await withDifySimulator(SimulatorConfiguration(apps: [Self.app], faults: faults)) { simulator, baseURL in
            let rows = 200
            let csv = "text\n" + (1...rows).map { RowsEndToEndTests.quoted(RowsEndToEndTests.text($0)) + "\n" }.joined()

            // The reference: the same table, not killed (in-process), as another job (another Dify user, so a lost run
            // of the killed job cannot be mistaken for one of these in Dify's logs).
            let reference = try RowsEndToEndTests.workspace(baseURL, key: "app-rows-wf", name: "reference", concurrency: 4)
            try reference.drop("t.csv", csv)
            let (referenceResult, _) = try await reference.run()
            #expect(referenceResult.exitStatus == .success)
            #expect(simulator.stats.runRequestsReceived == rows)

            let workspace = try RowsEndToEndTests.workspace(baseURL, key: "app-rows-wf", concurrency: 4)
            try workspace.drop("t.csv", csv)
            let first = try Child(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment,
                                  stderrPath: workspace.scratch.file("first.log"))
            #expect(try await waitUntil { simulator.stats.runRequestsReceived >= rows + 40 })
            first.signal(SIGKILL)
            #expect(try await first.exitStatus() != 0)
            #expect(simulator.stats.runRequestsReceived < 2 * rows, "killed mid-table")
            #expect(!FileManager.default.fileExists(atPath: workspace.outbox + "/t.csv.jsonl"), "no output before every row ended")

            let second = try Child(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment,
                                   stderrPath: workspace.scratch.file("second.log"))
            let secondStatus = try await second.exitStatus()
            let ledger = try SQLiteLedger(path: workspace.dbPath)
            // A row recorded as sent whose request the kill stopped before it reached the server cannot be found in
            // Dify: it is parked `unresolved` (never sent again blindly). Nothing was sent twice.
            let parked = try await ledger.documents(matching: DocumentFilter(states: [.unresolved], pathPattern: "t.csv#*"))
            #expect(secondStatus == (parked.isEmpty ? 0 : 1), "\(second.stderr)")
            #expect(parked.count <= 1)
            #expect(simulator.stats.runRequestsReceived == 2 * rows - parked.count)
            if !parked.isEmpty {
                // The operator sends it again (as `dify-batch retry --state unresolved` does); the table is completed.
                #expect(try await ledger.requeue(ids: parked.map(\.id), from: [.unresolved]) == parked.count)
                let third = try Child(["run", "--db", workspace.dbPath, workspace.specPath], environment: workspace.environment,
                                      stderrPath: workspace.scratch.file("third.log"))
                #expect(try await third.exitStatus() == 0, "\(third.stderr)")
            }
            // At the server: every row of the killed table was sent exactly once, across the processes.
            #expect(simulator.stats.runRequestsReceived == 2 * rows)
            #expect(simulator.stats.runsStarted == 2 * rows)
            let documents = try await ledger.documents(matching: DocumentFilter(pathPattern: "t.csv#*"))
            // A parked row the operator sent again counts that send in duplicate_runs (its first may have run); no other.
            let requeued = Set(parked.map(\.id))
            func expected(_ document: DocumentRecord) -> Bool {
                document.state == .succeeded && document.duplicateRuns == (requeued.contains(document.id) ? 1 : 0)
            }
            #expect(documents.count == rows && documents.allSatisfy(expected),
                    "\(documents.filter { !expected($0) }.map { ($0.path, $0.state, $0.duplicateRuns, $0.lastError?.message ?? "") })")

            // The same files as the unkilled run: the CSV byte for byte, the JSONL but for Dify's run ids and, for runs
            // recovered from the run detail, the token split and price (the detail has the total only).
            let csvOut = try Data(contentsOf: URL(fileURLWithPath: workspace.outbox + "/t.csv.csv"))
            #expect(csvOut == (try Data(contentsOf: URL(fileURLWithPath: reference.outbox + "/t.csv.csv"))))
            func withoutIDs(_ folder: String) throws -> [JSONValue] {
                try String(contentsOfFile: folder + "/t.csv.jsonl", encoding: .utf8).split(separator: "\n").map { line in
                    var object = try JSONValue.parse(String(line)).objectValue ?? [:]
                    object["dify"] = nil
                    object["usage"] = object["usage"]?["total_tokens"]
                    return .object(object)
                }
            }
            let lines = try withoutIDs(workspace.outbox)
            #expect(lines.count == rows)
            #expect(lines == (try withoutIDs(reference.outbox)))
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
