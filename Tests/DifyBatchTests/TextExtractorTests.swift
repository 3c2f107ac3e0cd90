import DifyKit
import Foundation
import Testing

@testable import DifyBatch

@Suite struct TextExtractorTests {
    static let samples = repositoryRoot + "/samples"

    func extract(_ extractor: TextExtractor, _ path: String, maxLength: Int? = nil) async throws -> Result<ExtractedText, ExtractionFailure> {
        try await extractor.extract(path: path, filename: (path as NSString).lastPathComponent, maxLength: maxLength)
    }

    func extract(_ path: String, maxLength: Int? = nil) async throws -> Result<ExtractedText, ExtractionFailure> {
        try await extract(TextExtractor(), path, maxLength: maxLength)
    }

    @Test func plainText_dropsAUTF8BOM_decodesUTF16WithBOM_andRejectsOtherEncodingsWithTheReason() async throws {
        let dir = try TemporaryDirectory()
        try Data([0xEF, 0xBB, 0xBF] + Array("Grüße\n".utf8)).write(to: URL(fileURLWithPath: dir.file("bom.txt")))
        #expect(try await extract(dir.file("bom.txt")).get().text == "Grüße\n")
        try (Data([0xFF, 0xFE]) + "Ω ok".data(using: .utf16LittleEndian)!).write(to: URL(fileURLWithPath: dir.file("utf16.md")))
        #expect(try await extract(dir.file("utf16.md")).get().text == "Ω ok")
        try Data([0x63, 0x61, 0x66, 0xE9]).write(to: URL(fileURLWithPath: dir.file("latin1.csv")))
        guard case .failure(let failure) = try await extract(dir.file("latin1.csv")) else { Issue.record("latin-1 accepted"); return }
        #expect(failure.code == "not_utf8" && failure.message.contains("iconv"))
    }

    @Test func docx_isReadWithZIPFoundation_paragraphsAsLines() async throws {
        let text = try await extract(Self.samples + "/reports/Renewal notice Nordlicht.docx").get()
        #expect(text.method == "docx")
        #expect(text.text.contains("Nordlicht"))
        #expect(text.text.contains("\n"))
    }

    @Test func pdf_withoutPdftotext_isRejectedWithTheInstallHint_andWithItGivesText() async throws {
        let without = TextExtractor(pdftotextPath: nil)
        let problem = try #require(without.unavailable(filename: "SCAN_0001.PDF"))
        #expect(problem.code == "extractor_missing" && problem.message.contains("apt-get install poppler-utils"))
        if let tool = TextExtractor.locate("pdftotext") {
            let text = try await extract(TextExtractor(pdftotextPath: tool), Self.samples + "/reports/Quarterly summary Q3 2026.pdf").get()
            #expect(text.text.contains("Quarterly summary") && text.method == "pdftotext")
        }
    }

    @Test func specOverride_runsTheCommandWithTheQuotedPath_andStopsItAtTheTimeout() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("it's a.log")
        try "line one\n".write(toFile: path, atomically: true, encoding: .utf8)
        let upper = TextExtractor(overrides: [".LOG": ExtractorCommand(command: "tr a-z A-Z < {path}")])
        #expect(try await extract(upper, path).get() == ExtractedText(text: "LINE ONE\n", method: "command: tr a-z A-Z < {path}"))
        let slow = TextExtractor(overrides: ["log": ExtractorCommand(command: "sleep 60; cat {path}", timeout: .milliseconds(200))])
        guard case .failure(let failure) = try await extract(slow, path) else { Issue.record("no timeout"); return }
        #expect(failure.code == "extractor_failed" && failure.message.contains("longer than 200ms"))
        let failing = TextExtractor(overrides: ["log": ExtractorCommand(command: "echo broken >&2; exit 3 # {path}")])
        guard case .failure(let exit) = try await extract(failing, path) else { Issue.record("exit 3 accepted"); return }
        #expect(exit.message.contains("exit status 3") && exit.message.contains("broken"))
    }

    @Test func emptyText_tooLongText_andUnknownTypes_areRejectedWithTheirReason() async throws {
        let dir = try TemporaryDirectory()
        try " \n\t".write(toFile: dir.file("blank.txt"), atomically: true, encoding: .utf8)
        try "12345678901".write(toFile: dir.file("long.txt"), atomically: true, encoding: .utf8)
        try "x".write(toFile: dir.file("image.png"), atomically: true, encoding: .utf8)
        func code(_ name: String, maxLength: Int? = nil) async throws -> String? {
            if case .failure(let failure) = try await extract(dir.file(name), maxLength: maxLength) { return failure.code }
            return nil
        }
        #expect(try await code("blank.txt") == "empty_text")
        #expect(try await code("long.txt", maxLength: 10) == "text_too_long")
        #expect(try await code("long.txt", maxLength: 11) == nil)
        #expect(try await code("image.png") == "no_extractor")
    }
}

@Suite struct DifyFileRulesTests {
    @Test func customIsAFallback_forAnyTypeWhoseExtensionIsListed_caseAndDotInsensitive() {
        #expect(FileRules.accepts(filename: "invoice.pdf", allowedTypes: [.custom], allowedExtensions: [".pdf", ".txt"]))
        #expect(FileRules.accepts(filename: "SCAN_0001.PDF", allowedTypes: [.custom], allowedExtensions: [".pdf"]))
        #expect(FileRules.accepts(filename: "data.JSON", allowedTypes: [.custom], allowedExtensions: ["json"]))
        #expect(FileRules.accepts(filename: "a.pdf", allowedTypes: [.custom], allowedExtensions: [".PDF"]))
        #expect(!FileRules.accepts(filename: "photo.png", allowedTypes: [.custom], allowedExtensions: [".pdf"]))
        #expect(!FileRules.accepts(filename: "photo.png", allowedTypes: [.document], allowedExtensions: []))
        #expect(FileRules.accepts(filename: "photo.png", allowedTypes: [], allowedExtensions: []))
        #expect(FileRules.accepts(filename: "photo.PNG", allowedTypes: [.document, .image], allowedExtensions: []))
    }

    @Test func preflightRejection_usesDifysRule() {
        let variable = InputVariable(variable: "doc", kind: .file, allowedFileTypes: [.custom], allowedFileExtensions: [".pdf", ".txt"])
        let preflight = JobPreflight(mode: .workflow, fileVariable: variable, limits: SystemParameters(), maxSize: nil)
        #expect(preflight.rejection(filename: "invoice.pdf", size: 10) == nil)
        #expect(preflight.rejection(filename: "INVOICE.TXT", size: 10) == nil)
        #expect(preflight.rejection(filename: "a.docx", size: 10)?.code == "file_type_not_allowed")
    }

    @Test func fileUploadFeature_readsBothShapesOfRealDify() throws {
        let completion = try JSONValue.parse(#"{"image":{"enabled":false,"number_limits":3,"detail":"high","transfer_methods":["remote_url","local_file"]}}"#)
        #expect(!FileUploadFeature(json: completion).isEnabled)
        let images = try JSONValue.parse(#"{"image":{"enabled":true,"transfer_methods":["local_file"]}}"#)
        #expect(FileUploadFeature(json: images).accepts(filename: "a.JPG") && !FileUploadFeature(json: images).accepts(filename: "a.pdf"))
        let documents = try JSONValue.parse(#"{"enabled":true,"allowed_file_types":["document"],"allowed_file_extensions":[],"allowed_file_upload_methods":["local_file"]}"#)
        #expect(FileUploadFeature(json: documents).accepts(filename: "a.pdf"))
        let remoteOnly = try JSONValue.parse(#"{"enabled":true,"allowed_file_types":["document"],"allowed_file_upload_methods":["remote_url"]}"#)
        #expect(!FileUploadFeature(json: remoteOnly).isEnabled)
    }
}

@Suite struct TextInputPreflightTests {
    static func spec(_ dify: String = "") throws -> (JobSpec, TemporaryDirectory) {
        let dir = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("in"), withIntermediateDirectories: true)
        let path = dir.file("job.yaml")
        try "inbox: in\noutbox: out\ndify:\n  base_url: http://127.0.0.1:1/v1\n\(dify)\n".write(toFile: path, atomically: true, encoding: .utf8)
        return (try JobSpecLoader.load(paths: [path])[0], dir)
    }

    static let paragraph = InputVariable(variable: "text", kind: .paragraph, required: true)
    static let language = InputVariable(variable: "language", kind: .textInput)

    @Test func appWithOneParagraphAndNoFileVariable_getsTheTextThere() throws {
        let (spec, dir) = try Self.spec()
        defer { withExtendedLifetime(dir) {} }
        let preflight = try JobPreflight.resolve(spec: spec, mode: .completion, parameters: AppParameters(userInputForm: [Self.paragraph]))
        #expect(preflight.fileVariable == nil && preflight.textVariable?.variable == "text")
        #expect(preflight.rejection(filename: "a.png", size: 3)?.code == "no_extractor")
        #expect(preflight.rejection(filename: "a.md", size: 3) == nil)
    }

    @Test func severalTextVariables_needDifyTextInput_unlessTheSpecFillsTheOthers() throws {
        let form = AppParameters(userInputForm: [Self.paragraph, Self.language])
        let (plain, dir1) = try Self.spec()
        defer { withExtendedLifetime(dir1) {} }
        #expect(throws: JobStop.self) { try JobPreflight.resolve(spec: plain, mode: .completion, parameters: form) }
        let (filled, dir2) = try Self.spec("  inputs: {language: de}")
        defer { withExtendedLifetime(dir2) {} }
        #expect(try JobPreflight.resolve(spec: filled, mode: .completion, parameters: form).textVariable?.variable == "text")
        let (named, dir3) = try Self.spec("  text_input: language")
        defer { withExtendedLifetime(dir3) {} }
        #expect(try JobPreflight.resolve(spec: named, mode: .completion, parameters: form).textVariable?.variable == "language")
    }

    @Test func textInputNamingANonTextVariable_andBothInputKeys_areRefused() throws {
        let (spec, dir) = try Self.spec("  text_input: doc")
        defer { withExtendedLifetime(dir) {} }
        let form = AppParameters(userInputForm: [InputVariable(variable: "doc", kind: .file)])
        #expect(throws: JobStop.self) { try JobPreflight.resolve(spec: spec, mode: .workflow, parameters: form) }
        #expect(throws: SpecError.self) { _ = try Self.spec("  text_input: a\n  file_input: b") }
        #expect(throws: SpecError.self) { _ = try Self.spec("  attach: sometimes") }
    }

    @Test func extractorsKey_isValidated_andNormalisesTheExtension() throws {
        let dir = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("in"), withIntermediateDirectories: true)
        let path = dir.file("job.yaml")
        try "inbox: in\noutbox: out\ndify: {base_url: http://127.0.0.1:1/v1}\nextractors:\n  .PDF: {command: \"pdftotext -layout {path} -\", timeout: 5s}\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let spec = try JobSpecLoader.load(paths: [path])[0]
        #expect(spec.extractors == ["pdf": ExtractorCommand(command: "pdftotext -layout {path} -", timeout: .seconds(5))])
        try "inbox: in\noutbox: out\ndify: {base_url: http://127.0.0.1:1/v1}\nextractors:\n  pdf: {command: \"pdftotext\"}\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: SpecError.self) { _ = try JobSpecLoader.load(paths: [path]) }
    }
}

@Suite struct MatchPatternCaseTests {
    @Test func includeAndExclude_compareExtensionsCaseInsensitively_andNotMatchedFilesAreListed() throws {
        let dir = try TemporaryDirectory()
        for name in ["SCAN_0001.PDF", "notes.Md", "photo.png", "Report.txt"] {
            try "x".write(toFile: dir.file(name), atomically: true, encoding: .utf8)
        }
        let scan = try InboxScanner(inbox: dir.path, rules: scannerRules(include: ["*.pdf", "*.md", "*.TXT"], exclude: ["report.*"])).scanAll()
        #expect(scan.files.map(\.relativePath) == ["Report.txt", "SCAN_0001.PDF", "notes.Md"])  // "report.*": name part stays case-sensitive
        #expect(scan.notMatched == ["photo.png"])
        #expect(InboxNames.globIgnoringExtensionCase("*.pdf", matches: "a/B.PDF"))
        #expect(!InboxNames.globIgnoringExtensionCase("b.pdf", matches: "B.PDF"))
    }
}
