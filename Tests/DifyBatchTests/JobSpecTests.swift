import Foundation
import Testing
@testable import DifyBatch

@Suite struct JobSpecTests {
    /// A folder with `jobs/` and the inbox the spec names.
    func workspace(_ spec: String, name: String = "job.yaml") throws -> (TemporaryDirectory, String) {
        let dir = try TemporaryDirectory()
        try dir.makeFolder("var/in")
        let path = try dir.write("jobs/\(name)", spec)
        return (dir, path)
    }

    let minimal = """
        inbox: ../var/in
        outbox: ../var/out
        dify:
          base_url: http://127.0.0.1:8080/v1
        """

    @Test func exampleSpecsInJobsFolder_loadWithoutError() throws {
        let dir = try TemporaryDirectory()
        for name in ["invoices", "summaries"] {
            try dir.makeFolder("var/\(name)/in")
            let text = try String(contentsOfFile: "\(repositoryRoot)/jobs/\(name).yaml", encoding: .utf8)
            try dir.write("jobs/\(name).yaml", text)
        }
        let specs = try JobSpecLoader.load(paths: [dir.file("jobs")])
        #expect(specs.map(\.name) == ["invoices", "summaries"])
        let invoices = specs[0]
        #expect(invoices.dify.app == .workflow)
        #expect(invoices.dify.apiKey == .environment("DIFY_API_KEY"))
        #expect(invoices.dify.inputs == ["language": .string("en")])
        #expect(invoices.match.include == ["*.pdf", "*.txt", "*.md"])
        #expect(invoices.retry == RetryPolicy(maxAttempts: 5, baseDelay: .seconds(1), maxDelay: .seconds(300)))
        #expect(invoices.inbox == dir.file("var/invoices/in"))
        #expect(invoices.archive == dir.file("var/invoices/done"))
        let summaries = specs[1]
        #expect(summaries.dify.apiKey == .file(dir.file("var/secrets/summaries.key")))
        #expect(summaries.match.maxSize == Int64(5_242_880))
        #expect(summaries.match.settle == .milliseconds(500))
        #expect(summaries.rateLimit == 60 && summaries.afterSuccess == .keep)
        #expect(summaries.failedFolder == dir.file("var/summaries/failed"))
    }

    @Test func minimalSpec_getsDocumentedDefaults() throws {
        let (dir, path) = try workspace(minimal, name: "scans.yaml")
        let spec = try JobSpecLoader.load(path: path)
        #expect(spec.name == "scans")
        #expect(spec.outbox == dir.file("var/out"))
        #expect(spec.dify.app == .auto && spec.dify.responseMode == "streaming" && spec.dify.user == "dify-batch-scans")
        #expect(spec.dify.apiKey == .environment("DIFY_API_KEY"))
        #expect(spec.concurrency == 4 && spec.timeout == .seconds(600) && spec.afterSuccess == .move)
        #expect(spec.match.recursive && spec.match.settle == .seconds(2) && spec.match.include.isEmpty)
        #expect(spec.match.settleTimeout == .seconds(3600))
        #expect(spec.specHash.count == 64)
    }

    func expectError(_ spec: String, keyPath: String, line: Int? = nil, containing fragment: String,
                     sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (dir, path) = try workspace(spec)
        defer { withExtendedLifetime(dir) {} }
        do {
            _ = try JobSpecLoader.load(path: path)
            Issue.record("expected an error for \(keyPath)", sourceLocation: sourceLocation)
        } catch let error as SpecError {
            #expect(error.file == URL(fileURLWithPath: path).standardizedFileURL.path, sourceLocation: sourceLocation)
            #expect(error.keyPath == keyPath, sourceLocation: sourceLocation)
            if let line { #expect(error.line == line, "\(error)", sourceLocation: sourceLocation) }
            #expect(error.description.contains(fragment), "\(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains("job.yaml"), sourceLocation: sourceLocation)
        }
    }

    @Test func aSpecWithThreeTypos_reportsAllThreeAtOnce_inFileOrder() throws {
        let (dir, path) = try workspace("""
            inbox: ../var/in
            outbox: ../var/out
            concurency: 3
            dify:
              base_url: http://127.0.0.1:8080/v1
              resonse_mode: streaming
            retry: {max_attempts: 0}
            """)
        do {
            _ = try JobSpecLoader.load(path: path)
            Issue.record("expected an error")
        } catch let error as SpecError {
            let all = error.all
            #expect(all.map(\.keyPath) == ["concurency", "dify.resonse_mode", "retry.max_attempts"], "\(error)")
            #expect(all.map(\.line) == [3, 6, 7])
            #expect(error.description.split(separator: "\n").count == 3)
            #expect(error.description.contains("did you mean concurrency?") && error.description.contains("did you mean response_mode?"))
        }
        withExtendedLifetime(dir) {}
    }

    @Test func typosUnderRecoveryAndRetry_doNotHideTheOtherErrors() throws {
        let (dir, path) = try workspace("""
            inbox: ../var/in
            outbox: ../var/out
            dify:
              base_url: http://127.0.0.1:8080/v1
            retry: {max_backpressure: 0s}
            recovery: {on_unknow: park}
            concurency: 3
            extractors: {pdf: {comand: "x"}}
            """)
        do {
            _ = try JobSpecLoader.load(path: path)
            Issue.record("expected an error")
        } catch let error as SpecError {
            let all = error.all
            #expect(all.map(\.keyPath) == ["retry.max_backpressure", "recovery.on_unknow", "concurency", "extractors.pdf.comand"],
                    "\(error)")
            #expect(all.map(\.line) == [5, 6, 7, 8])
        }
        withExtendedLifetime(dir) {}
    }

    @Test func aFolderWithOneBadSpec_loadsTheOthersAndReportsTheBadOne() throws {
        let (dir, _) = try workspace(minimal, name: "good.yaml")
        try dir.write("jobs/bad.yaml", minimal + "\nconcurrency: -1\n")
        let report = JobSpecLoader.loadReport(paths: [dir.file("jobs")])
        #expect(report.specs.map(\.name) == ["good"])
        #expect(report.failures.count == 1)
        #expect(report.failures.first?.file.hasSuffix("bad.yaml") == true && report.failures.first?.keyPath == "concurrency")
    }

    @Test func unknownKey_namesTheKeyLineAndSuggestion() throws {
        try expectError(minimal + "\nconcurency: 3\n", keyPath: "concurency", line: 5, containing: "did you mean concurrency?")
    }

    @Test func unknownNestedKey_namesTheFullKeyPath() throws {
        try expectError(minimal + "\n  respons_mode: blocking\n", keyPath: "dify.respons_mode", containing: "response_mode")
    }

    @Test func inlineAPIKey_isRefusedWithoutEchoingIt() throws {
        let (dir, path) = try workspace(minimal + "\n  api_key: app-SECRET123\n")
        defer { withExtendedLifetime(dir) {} }
        #expect {
            _ = try JobSpecLoader.load(path: path)
        } throws: { error in
            let text = "\(error)"
            return (error as? SpecError)?.keyPath == "dify.api_key" && text.contains("api_key_env") && !text.contains("SECRET123")
        }
    }

    @Test func keyValueInApiKeyEnv_isRefused() throws {
        try expectError(minimal + "\n  api_key_env: app-abcdef\n", keyPath: "dify.api_key_env", containing: "NAME of an environment variable")
    }

    @Test func negativeConcurrency_isRefusedWithTheAllowedRange() throws {
        try expectError(minimal + "\nconcurrency: -1\n", keyPath: "concurrency", line: 5, containing: "from 1 to 256 (got -1)")
    }

    @Test func settleTimeout_isReadAndMustBeLongerThanSettle() throws {
        let (dir, path) = try workspace(minimal + "\nmatch: {settle: 5s, settle_timeout: 90s}\n")
        defer { withExtendedLifetime(dir) {} }
        #expect(try JobSpecLoader.load(path: path).match.settleTimeout == .seconds(90))
        try expectError(minimal + "\nmatch: {settle: 5s, settle_timeout: 5s}\n", keyPath: "match.settle_timeout",
                        containing: "must be longer than match.settle (5s)")
    }

    /// Found by the attack helper: `inbox: ""` made the spec's own folder the inbox (its spec, ledger and logs
    /// taken as documents and archived away), and `inbox:` / `dify:` / `base_url:` without a value were taken as absent
    /// without the "is required" error (a default `inbox` folder, or exit 3 "invalid base URL ''" instead of exit 2).
    @Test func emptyOrNullFolderAndDifyValues_areRefusedAsSpecErrors() throws {
        try expectError(minimal.replacingOccurrences(of: "inbox: ../var/in", with: "inbox: \"\""), keyPath: "inbox", line: 1,
                        containing: "must name a folder (got an empty value)")
        try expectError(minimal.replacingOccurrences(of: "inbox: ../var/in", with: "inbox:"), keyPath: "inbox", containing: "is required")
        try expectError(minimal.replacingOccurrences(of: "outbox: ../var/out", with: "outbox: ~"), keyPath: "outbox", containing: "is required")
        try expectError(minimal + "\narchive: ''\n", keyPath: "archive", containing: "must name a folder")
        try expectError(minimal + "\nfailed_folder: \" \"\n", keyPath: "failed_folder", containing: "must name a folder")
        try expectError("inbox: ../var/in\noutbox: ../var/out\ndify:\n", keyPath: "dify", containing: "is required, with at least base_url")
        try expectError("inbox: ../var/in\noutbox: ../var/out\ndify:\n  base_url:\n", keyPath: "dify.base_url", containing: "is required")
    }

    /// Found by the attack helper: `match.settle: 2h` with the default `settle_timeout` (1h) was accepted, and `run`
    /// then gave up on every file (`never_settled`) before it could settle.
    @Test func settleLongerThanTheDefaultSettleTimeout_isRefused() throws {
        try expectError(minimal + "\nmatch: {settle: 2h}\n", keyPath: "match.settle",
                        containing: "must be shorter than match.settle_timeout (1h by default)")
        let (dir, path) = try workspace(minimal + "\nmatch: {settle: 2h, settle_timeout: 3h}\n")
        defer { withExtendedLifetime(dir) {} }
        #expect(try JobSpecLoader.load(path: path).match.settle == .seconds(7200))
    }

    @Test func concurrencyAsText_isAWrongTypeError() throws {
        try expectError(minimal + "\nconcurrency: many\n", keyPath: "concurrency", containing: "whole number")
    }

    @Test func missingInboxFolder_isRefused() throws {
        try expectError(minimal.replacingOccurrences(of: "../var/in", with: "../var/nowhere"), keyPath: "inbox", containing: "does not exist")
    }

    @Test func missingInboxKey_isRefused() throws {
        try expectError("outbox: ../var/out\ndify: {base_url: http://x/v1}\n", keyPath: "inbox", containing: "is required")
    }

    @Test func badDuration_isRefusedWithExamples() throws {
        try expectError(minimal + "\nmatch: {settle: soon}\n", keyPath: "match.settle", containing: "500ms, 2s, 5m or 1h")
    }

    @Test func badSize_isRefused() throws {
        try expectError(minimal + "\nmatch: {max_size: 15 parsecs}\n", keyPath: "match.max_size", containing: "15MB")
    }

    @Test func badAppMode_listsTheChoices() throws {
        try expectError(minimal + "\n  app: agent\n", keyPath: "dify.app", containing: "auto, workflow, completion, chat")
    }

    @Test func invalidYAML_reportsTheLine() throws {
        let (dir, path) = try workspace("inbox: [unclosed\noutbox: x\n")
        defer { withExtendedLifetime(dir) {} }
        #expect {
            _ = try JobSpecLoader.load(path: path)
        } throws: { error in
            guard let error = error as? SpecError else { return false }
            return error.line != nil && error.message.contains("not valid YAML")
        }
    }

    @Test func duplicateJobNames_areRefused() throws {
        let dir = try TemporaryDirectory()
        try dir.makeFolder("var/in")
        try dir.write("jobs/a.yaml", "name: same\n" + minimal)
        try dir.write("jobs/b.yaml", "name: same\n" + minimal)
        #expect(throws: SpecError.self) { _ = try JobSpecLoader.load(paths: [dir.file("jobs")]) }
    }

    @Test func apiKeyFromEnvironment_missingVariable_namesItButNoValue() throws {
        #expect(try APIKeySource.environment("K").resolve(environment: ["K": " app-1 \n"]) == "app-1")
        #expect {
            _ = try APIKeySource.environment("MY_KEY").resolve(environment: [:])
        } throws: { error in "\(error)".contains("MY_KEY") }
    }

    @Test func apiKeyFromFile_isTrimmed() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("key", "app-from-file\n")
        #expect(try APIKeySource.file(path).resolve() == "app-from-file")
    }

    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("2s", .seconds(2)), ("5m", .seconds(300)), ("1h", .seconds(3600)),
        ("1h30m", .seconds(5400)), ("0", .zero), ("1.5s", .milliseconds(1500)),
    ])
    func durations_parse(text: String, expected: Duration) {
        #expect(HumanDuration.parse(text) == expected)
    }

    @Test(arguments: ["", "2", "2 seconds", "-1s", "s", "1w"])
    func invalidDurations_areRejected(text: String) {
        #expect(HumanDuration.parse(text) == nil)
    }

    @Test(arguments: [
        ("512KB", Int64(524_288)), ("15MB", 15_728_640), ("1GB", 1_073_741_824), ("100B", 100), ("100", 100), ("1.5MB", 1_572_864),
    ])
    func sizes_parse(text: String, expected: Int64) {
        #expect(ByteSize.parse(text) == expected)
    }

    @Test(arguments: ["", "MB", "-1MB", "15 parsecs", "12TB"])
    func invalidSizes_areRejected(text: String) {
        #expect(ByteSize.parse(text) == nil)
    }

    @Test func durationsAndSizes_formatBackReadably() {
        #expect(HumanDuration.format(.seconds(300)) == "5m")
        #expect(HumanDuration.format(.milliseconds(250)) == "250ms")
        #expect(ByteSize.format(15_728_640) == "15MB")
        #expect(ByteSize.format(100) == "100B")
    }
}
