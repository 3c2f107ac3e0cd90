import Crypto
import DifyBatch
import DifyKit
import DifySimulator
import Foundation
import Testing

/// Issue 12: a completion app with one required paragraph `text` (as real Dify has it) gets each document's text.
@Suite struct TextInputEndToEndTests {
    static let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("samples").path

    static func sha256(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    @Test func completionApp_withRequiredParagraph_getsTheTextOfTxtMdPdfAndDocx_andRecordsTheUsageSplit() async throws {
        // Like capture llm/01: user_input_form = [paragraph text (required)], file upload off.
        let config = SimulatorConfiguration(apps: [.completion(apiKey: "app-text", fileUploadTypes: [])])
        try await withDifySimulator(config) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, key: "app-text")
            try workspace.drop("a.txt", "\u{FEFF}Plain text, BOM dropped: äöü €\n")
            try workspace.drop("notes/b.md", "# Heading\n\n- item\n")
            try FileManager.default.copyItem(atPath: Self.samples + "/reports/Quarterly summary Q3 2026.pdf", toPath: workspace.inbox + "/c.pdf")
            try FileManager.default.copyItem(atPath: Self.samples + "/reports/Renewal notice Nordlicht.docx", toPath: workspace.inbox + "/d.docx")
            let (result, ledger) = try await workspace.run()
            let hasPoppler = TextExtractor.locate("pdftotext") != nil
            #expect(result.exitStatus == (hasPoppler ? .success : .documentsFailed))
            #expect(simulator.stats.uploads == 0, "text goes in the variable; nothing is uploaded")

            let extractor = TextExtractor()
            var sent: [String] = []
            for name in ["a.txt", "notes/b.md", "c.pdf", "d.docx"] where name != "c.pdf" || hasPoppler {
                let extracted = try await extractor.extract(path: workspace.archive + "/" + name, filename: name).get()  // moved after success
                let document = try #require(try await ledger.documents(path: name).first)
                #expect(document.state == .succeeded, "\(name)")
                #expect(document.textSHA256 == Self.sha256(extracted.text), "\(name)")
                #expect(document.textLength == extracted.text.unicodeScalars.count, "\(name)")
                // The simulated model saw exactly that text: once.
                #expect(simulator.stats.runsBySHA256[Self.sha256(extracted.text)] == 1, "\(name)")
                let output = try workspace.json(name + ".json")
                let answer = try #require((output["outputs"] as? [String: Any])?["answer_json"] as? [String: Any])
                #expect(answer["text"] as? String == extracted.text, "\(name)")
                let usage = try #require(try await ledger.usage(documentID: document.id))
                #expect(usage.promptTokens != nil && usage.completionTokens != nil && usage.totalPrice != nil && usage.source == "message")
                sent.append(extracted.text)
            }
            #expect(sent.first == "Plain text, BOM dropped: äöü €\n")
            #expect(sent.last?.contains("Nordlicht") == true)
            if hasPoppler {
                #expect(sent.contains { $0.contains("Quarterly summary") })
            } else {
                let pdf = try #require(try await ledger.documents(path: "c.pdf").first)
                #expect(pdf.state == .rejected && pdf.lastError?.code == "extractor_missing")
            }
            #expect(simulator.stats.runsBySHA256.values.reduce(0, +) == (hasPoppler ? 4 : 3))
        }
    }

    @Test func textTooLongOrEmpty_isRejected_andNothingIsSent() async throws {
        let app = SimulatedApp(apiKey: "app-short", mode: "completion", name: "short", userInputForm: [.paragraph("text", required: true, maxLength: 10)], fileUploadTypes: [])
        try await withDifySimulator(SimulatorConfiguration(apps: [app])) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, key: "app-short")
            try workspace.drop("long.txt", "more than ten characters")
            try workspace.drop("blank.md", "  \n\n ")
            try workspace.drop("latin1.csv", "")
            try Data([0x63, 0x61, 0x66, 0xE9, 0x0A]).write(to: URL(fileURLWithPath: workspace.inbox + "/latin1.csv"))
            try workspace.drop("image.png", "png")
            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .documentsFailed)
            #expect(simulator.stats.runsBySHA256.isEmpty && simulator.stats.uploads == 0)
            let codes = try await Dictionary(uniqueKeysWithValues: ledger.documents(matching: DocumentFilter()).map { ($0.path, $0.lastError?.code ?? "") })
            #expect(codes == ["long.txt": "text_too_long", "blank.md": "empty_text", "latin1.csv": "not_utf8", "image.png": "no_extractor"])
            let error = try workspace.json("latin1.csv.error.json")
            #expect(((error["error"] as? [String: Any])?["message"] as? String)?.contains("iconv") == true)
        }
    }
}

@Suite struct NotMatchedAndAttachmentEndToEndTests {
    @Test func notMatchedFiles_areCountedInCheckStatusAndTheRunSummary_andUpperCaseExtensionsMatch() async throws {
        let config = SimulatorConfiguration(apps: [.completion(apiKey: "app-text", fileUploadTypes: [])])
        try await withDifySimulator(config) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, key: "app-text")
            try String(contentsOfFile: workspace.specPath, encoding: .utf8).replacingOccurrences(of: "  settle: 0s", with: "  settle: 0s\n  include: [\"*.txt\", \"*.md\"]")
                .write(toFile: workspace.specPath, atomically: true, encoding: .utf8)
            try workspace.drop("NOTES.MD", "# upper-case extension\n")
            try workspace.drop("photo.png", "not taken")
            try workspace.drop("sheet.xlsx", "not taken either")
            let spec = try JobSpecLoader.load(paths: [workspace.specPath])[0]
            let check = await JobCheck.run(spec: spec, environment: workspace.environment)
            #expect(check.verdict == .ok)
            #expect(check.textInput?.variable == "text" && check.textInput?.fromSpec == false)
            #expect(check.inbox?.files == 1 && check.inbox?.notMatched == ["photo.png", "sheet.xlsx"])
            #expect(check.inbox?.extraction.map(\.extractor) == ["utf8"])
            #expect(check.renderText().contains("not matched: 2 (photo.png, sheet.xlsx)"))

            let (result, ledger) = try await workspace.run()
            #expect(result.exitStatus == .success)
            let summary = try #require(result.summaries.first)
            #expect(summary.notMatched == ["photo.png", "sheet.xlsx"])
            #expect(RunReport.summaryLine(summary).contains("not matched 2 (photo.png, sheet.xlsx)"))
            let status = try await StatusReport.build(from: ledger, database: workspace.dbPath)
            #expect(status.jobs.first?.lastRun?.notMatched == 2)
            #expect(status.renderText().contains("not matched: 2"))
            #expect(simulator.stats.runsBySHA256.values.reduce(0, +) == 1)
        }
    }

    @Test func attachAuto_uploadsAndAttachesWhatTheFileUploadFeatureAccepts_attachNever_sendsTextOnly() async throws {
        let config = SimulatorConfiguration(apps: [.completion(apiKey: "app-docs", fileUploadTypes: ["document"])])
        try await withDifySimulator(config) { simulator, baseURL in
            let auto = try Workspace(baseURL: baseURL, key: "app-docs")
            try auto.drop("a.txt", "attached and sent as text\n")
            #expect(try await auto.run().0.exitStatus == .success)
            #expect(simulator.stats.uploads == 1)
            let answer = try #require((try auto.json("a.txt.json")["outputs"] as? [String: Any])?["answer_json"] as? [String: Any])
            #expect(answer["filename"] as? String == "a.txt" && answer["text"] as? String == "attached and sent as text\n")

            let never = try Workspace(baseURL: baseURL, key: "app-docs")
            try String(contentsOfFile: never.specPath, encoding: .utf8).replacingOccurrences(of: "  inputs: {language: de}", with: "  inputs: {language: de}\n  attach: never")
                .write(toFile: never.specPath, atomically: true, encoding: .utf8)
            try never.drop("b.txt", "text only\n")
            #expect(try await never.run().0.exitStatus == .success)
            #expect(simulator.stats.uploads == 1, "no upload with attach: never")
        }
    }
}
