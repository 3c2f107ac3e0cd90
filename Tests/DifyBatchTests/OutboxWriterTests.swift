import DifyKit
import Foundation
import Testing
@testable import DifyBatch
#if canImport(Glibc)
import Glibc
#endif

@Suite("Outbox writer")
struct OutboxWriterTests {
    static let finished = Date(timeIntervalSince1970: 1_795_763_600) // 2026-11-27T07:13:20Z

    static func source(_ path: String = "invoices/a.pdf") -> SourceInfo {
        SourceInfo(path: path, sha256: "abc123", bytes: 2048)
    }

    static func workflowRecord(path: String = "invoices/a.pdf") -> SuccessRecord {
        SuccessRecord(
            status: "succeeded", job: "invoices", source: source(path), appMode: "workflow",
            outputs: ["summary": "see https://example.com/a/b", "count": 3, "flag": true, "ratio": 0.5,
                      "items": ["x", 2, nil]],
            usage: UsageAmounts(promptTokens: 120, completionTokens: 30, totalTokens: 150,
                                totalPrice: Decimal(string: "0.0012890"), currency: "USD", latencyMilliseconds: 900),
            uploadFileID: "file-1", workflowRunID: "run-1", messageID: nil, taskID: "task-1",
            attempts: 2, elapsedMilliseconds: 4321, finishedAt: finished)
    }

    static func completionRecord(answer: String, path: String = "notes/n.txt") -> SuccessRecord {
        SuccessRecord(
            status: "succeeded", job: "summaries", source: source(path), appMode: "completion",
            outputs: ["answer": .string(answer)], usage: nil, uploadFileID: "file-2", workflowRunID: nil,
            messageID: "msg-2", taskID: "task-2", attempts: 1, elapsedMilliseconds: 10, finishedAt: finished)
    }

    static func read(_ path: String) throws -> (text: String, json: JSONValue) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return (String(decoding: data, as: UTF8.self), try JSONValue.parse(data))
    }

    /// Every entry under `folder`, recursively, relative to it.
    static func allEntries(_ folder: String) -> [String] {
        (FileManager.default.enumerator(atPath: folder)?.allObjects as? [String] ?? []).sorted()
    }

    static func temporaryLeftovers(_ folder: String) -> [String] {
        allEntries(folder).filter { ($0 as NSString).lastPathComponent.contains(".tmp-") }
    }

    @Test func workflowSuccessDocumentHasTheExactShape() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.file("out"))
        let path = try writer.writeSuccess(Self.workflowRecord())
        #expect(path == folder.file("out") + "/invoices/a.pdf.json")
        #expect(writer.successPath(for: "invoices/a.pdf") == path)

        let (text, json) = try Self.read(path)
        let expected: JSONValue = [
            "status": "succeeded",
            "job": "invoices",
            "source": ["path": "invoices/a.pdf", "sha256": "abc123", "bytes": 2048],
            "app": ["mode": "workflow"],
            "outputs": ["summary": "see https://example.com/a/b", "count": 3, "flag": true, "ratio": 0.5,
                        "items": ["x", 2, nil]],
            "usage": ["prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                      "total_price": "0.001289", "currency": "USD"],
            "dify": ["upload_file_id": "file-1", "workflow_run_id": "run-1", "task_id": "task-1"],
            "attempts": 2,
            "elapsed_ms": 4321,
            "finished_at": "2026-11-27T07:13:20Z",
        ]
        #expect(json == expected)
        // No duplicate_of unless set, no message_id for workflows.
        #expect(json["duplicate_of"] == nil)
        #expect(json["dify"]?["message_id"] == nil)

        // Text form: pretty, sorted, unescaped slashes, integers as integers, booleans as booleans, newline.
        #expect(text.hasSuffix("}\n"))
        #expect(text.contains("https://example.com/a/b"))
        #expect(!text.contains("\\/"))
        #expect(text.contains("\"count\" : 3,"))
        #expect(text.contains("\"flag\" : true"))
        #expect(text.contains("\"total_price\" : \"0.001289\""))
        #expect(text.contains("\"elapsed_ms\" : 4321"))
        let keys = ["\"app\"", "\"attempts\"", "\"dify\"", "\"elapsed_ms\"", "\"finished_at\"", "\"job\"",
                    "\"outputs\"", "\"source\"", "\"status\"", "\"usage\""]
        let positions = keys.map { text.range(of: "\n  \($0)")?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil })
        #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted())
    }

    @Test func pricesAreWrittenAsExactDecimalStrings() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.path)
        var record = Self.workflowRecord()
        for (price, text) in [("0.1", "0.1"), ("123456789.000000001", "123456789.000000001"), ("0", "0"),
                              ("0.000000007", "0.000000007")] {
            record.usage?.totalPrice = Decimal(string: price)
            let (raw, json) = try Self.read(try writer.writeSuccess(record))
            #expect(json["usage"]?["total_price"] == .string(text))
            #expect(raw.contains("\"total_price\" : \"\(text)\""))
        }
        record.usage = UsageAmounts(promptTokens: nil, completionTokens: nil, totalTokens: 7)
        let json = try Self.read(try writer.writeSuccess(record)).json
        #expect(json["usage"] == ["prompt_tokens": nil, "completion_tokens": nil, "total_tokens": 7,
                                  "total_price": nil, "currency": nil])
    }

    @Test func rawJSONAnswerGetsAnswerJSON() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.path)
        let answer = " {\"total\": 12.5, \"lines\": [1, 2], \"vendor\": \"ACME/EU\"}\n"
        let json = try Self.read(try writer.writeSuccess(Self.completionRecord(answer: answer))).json
        #expect(json["outputs"]?["answer"] == .string(answer))
        #expect(json["outputs"]?["answer_json"] == ["total": 12.5, "lines": [1, 2], "vendor": "ACME/EU"])
        #expect(json["dify"] == ["upload_file_id": "file-2", "message_id": "msg-2", "task_id": "task-2"])
        #expect(json["usage"] == .null)
        #expect(json["app"]?["mode"] == "completion")
    }

    @Test func fencedJSONAnswerGetsAnswerJSONFromTheFirstBlock() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.path)
        let tagged = "Here is the result:\n```json\n{\"a\": 1}\n```\nand another:\n```json\n{\"b\": 2}\n```\n"
        var json = try Self.read(try writer.writeSuccess(Self.completionRecord(answer: tagged))).json
        #expect(json["outputs"]?["answer_json"] == ["a": 1])

        let plain = "```\n[1, 2, 3]\n```"
        json = try Self.read(try writer.writeSuccess(Self.completionRecord(answer: plain))).json
        #expect(json["outputs"]?["answer_json"] == [1, 2, 3])

        let upper = "Result\n```JSON\n{\"ok\": true}\n```"
        json = try Self.read(try writer.writeSuccess(Self.completionRecord(answer: upper))).json
        #expect(json["outputs"]?["answer_json"] == ["ok": true])
    }

    @Test(arguments: [
        "The invoice total is 12.50 EUR.",
        "```json\n{\"a\": 1\n```",          // broken JSON in the fence
        "```json\n{\"a\": 1}\n",             // unclosed fence
        "```python\nprint(1)\n```",          // another language
        "",
        "{not json}",
    ])
    func answerThatIsNotJSONHasNoAnswerJSON(answer: String) throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.path)
        let json = try Self.read(try writer.writeSuccess(Self.completionRecord(answer: answer))).json
        #expect(json["outputs"]?["answer"] == .string(answer))
        #expect(json["outputs"]?.objectValue?.keys.sorted() == ["answer"])
    }

    @Test func partialSuccessWithDuplicateIsWritten() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.path)
        var record = Self.workflowRecord(path: "b.pdf")
        record.status = "partial-succeeded"
        record.usage = nil
        record.workflowRunID = nil
        record.duplicateOf = "invoices/a.pdf"
        let json = try Self.read(try writer.writeSuccess(record)).json
        #expect(json["status"] == "partial-succeeded")
        #expect(json["usage"] == .null)
        #expect(json["duplicate_of"] == "invoices/a.pdf")
        #expect(json["dify"] == ["upload_file_id": "file-1", "workflow_run_id": nil, "task_id": "task-1"])
    }

    @Test func failureDocumentHasTheExactShape() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.path)
        let record = FailureRecord(status: "dead", job: "invoices", source: Self.source("x/y.pdf"),
                                   errorCode: "provider_quota_exceeded", errorMessage: "quota / limit reached",
                                   httpStatus: 400, difyCode: "provider_quota_exceeded", attempts: 5,
                                   finishedAt: Self.finished)
        let path = try writer.writeFailure(record)
        #expect(path == folder.path + "/x/y.pdf.error.json")
        #expect(writer.errorPath(for: "x/y.pdf") == path)
        let (text, json) = try Self.read(path)
        #expect(json == [
            "status": "dead", "job": "invoices",
            "source": ["path": "x/y.pdf", "sha256": "abc123", "bytes": 2048],
            "error": ["code": "provider_quota_exceeded", "message": "quota / limit reached", "http_status": 400,
                      "dify_code": "provider_quota_exceeded"],
            "attempts": 5, "finished_at": "2026-11-27T07:13:20Z",
        ])
        #expect(text.hasSuffix("\n"))
        #expect(text.contains("\"http_status\" : 400"))

        let rejected = FailureRecord(status: "rejected", job: "invoices", source: SourceInfo(path: "z.exe", sha256: nil, bytes: 0),
                                     errorCode: "unsupported_type", errorMessage: "not accepted", attempts: 0,
                                     finishedAt: Self.finished)
        let rejectedJSON = try Self.read(try writer.writeFailure(rejected)).json
        #expect(rejectedJSON["error"] == ["code": "unsupported_type", "message": "not accepted", "http_status": nil, "dify_code": nil])
        #expect(rejectedJSON["source"]?["sha256"] == .null)
        #expect(rejectedJSON["status"] == "rejected")
    }

    @Test func nestedPathsWithSpacesAndNonASCIICreateFolders() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.file("deep/out"))
        let relative = "Rechnungen 2026/März/über die Rechnung №7.pdf"
        let path = try writer.writeSuccess(Self.workflowRecord(path: relative))
        #expect(path == folder.file("deep/out") + "/Rechnungen 2026/März/über die Rechnung №7.pdf.json")
        let (text, json) = try Self.read(path)
        #expect(json["source"]?["path"] == .string(relative))
        #expect(text.contains("über die Rechnung №7.pdf"))  // UTF-8, not \u escapes
        #expect(Self.allEntries(folder.file("deep/out")) == [
            "Rechnungen 2026", "Rechnungen 2026/März", "Rechnungen 2026/März/über die Rechnung №7.pdf.json",
        ])
    }

    @Test func staleErrorDocumentIsRemovedOnSuccess() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.path)
        let failure = FailureRecord(status: "dead", job: "invoices", source: Self.source(), errorCode: "x",
                                    errorMessage: "boom", attempts: 5, finishedAt: Self.finished)
        let errorPath = try writer.writeFailure(failure)
        #expect(FileManager.default.fileExists(atPath: errorPath))
        let successPath = try writer.writeSuccess(Self.workflowRecord())
        #expect(!FileManager.default.fileExists(atPath: errorPath))
        #expect(FileManager.default.fileExists(atPath: successPath))
        // And without a stale document success is still fine.
        try writer.writeSuccess(Self.workflowRecord())
        #expect(Self.allEntries(folder.path) == ["invoices", "invoices/a.pdf.json"])
    }

    /// A folder named like the other outcome is not an outcome: it is left, and the write succeeds (attack4: a rejected
    /// file with a folder at `NAME.json` had its `.error.json` written but was recorded "could not be written").
    @Test func aFolderNamedLikeTheOtherOutcome_isLeft_andTheOutcomeIsWritten() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.path)
        try FileManager.default.createDirectory(atPath: folder.file("invoices/a.pdf.json/inside"), withIntermediateDirectories: true)
        let failure = FailureRecord(status: "rejected", job: "invoices", source: Self.source(), errorCode: "x",
                                    errorMessage: "boom", attempts: 0, finishedAt: Self.finished)
        let errorPath = try writer.writeFailure(failure)
        #expect(FileManager.default.fileExists(atPath: errorPath))
        #expect(FileManager.default.fileExists(atPath: folder.file("invoices/a.pdf.json/inside")), "the folder is untouched")
        #expect(Self.temporaryLeftovers(folder.path).isEmpty)
    }

    @Test func rewritingReplacesTheWholeDocument() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.path)
        var record = Self.workflowRecord()
        record.outputs = ["long": .string(String(repeating: "x", count: 10_000))]
        let path = try writer.writeSuccess(record)
        record.outputs = ["short": "y"]
        try writer.writeSuccess(record)
        #expect(try Self.read(path).json["outputs"] == ["short": "y"])
        #expect(Self.temporaryLeftovers(folder.path).isEmpty)
    }

    @Test func noTemporaryFileIsLeftAfterSuccess() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.path)
        for index in 0..<5 { try writer.writeSuccess(Self.workflowRecord(path: "d/\(index).pdf")) }
        #expect(Self.temporaryLeftovers(folder.path).isEmpty)
        #expect(Self.allEntries(folder.file("d")) == (0..<5).map { "\($0).pdf.json" })
    }

    @Test func failedRenameLeavesNoTemporaryFile() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.path)
        // A non-empty folder where the document should go: the temp file is written, the rename fails.
        try folder.write("a.pdf.json/blocker", "x")
        #expect(throws: FileOperationError.self) {
            try writer.writeSuccess(Self.workflowRecord(path: "a.pdf"))
        }
        #expect(Self.allEntries(folder.path) == ["a.pdf.json", "a.pdf.json/blocker"])
    }

    @Test func parentThatIsAFileFailsCleanly() throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.path)
        try folder.write("invoices", "I am a file")
        let error = #expect(throws: FileOperationError.self) { try writer.writeSuccess(Self.workflowRecord()) }
        #expect(error?.errorNumber == ENOTDIR)
        #expect(Self.allEntries(folder.path) == ["invoices"])
    }

    @Test func concurrentWritersShareNewFolders() async throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.file("out"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<24 {
                group.addTask { try writer.writeSuccess(Self.workflowRecord(path: "a/b/c/\(index).pdf")) }
            }
            try await group.waitForAll()
        }
        #expect(Self.allEntries(folder.file("out/a/b/c")).count == 24)
        #expect(Self.temporaryLeftovers(folder.path).isEmpty)
    }

    @Test(.enabled(if: getuid() != 0, "root ignores folder permissions"))
    func unwritableFolderFailsAndLeavesNothing() throws {
        let folder = try TemporaryDirectory()
        try folder.makeFolder("ro")
        chmod(folder.file("ro"), 0o555)
        defer { chmod(folder.file("ro"), 0o755) }
        let writer = OutboxWriter(outbox: folder.file("ro"))
        #expect(throws: FileOperationError.self) { try writer.writeSuccess(Self.workflowRecord(path: "a.pdf")) }
        #expect(Self.allEntries(folder.file("ro")).isEmpty)
    }

    @Test(arguments: ["../escape.pdf", "/etc/passwd", "a/../../b.pdf", ""])
    func pathsOutsideTheOutboxAreRefused(path: String) throws {
        let folder = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: folder.file("out"))
        #expect(throws: FileOperationError.self) { try writer.writeSuccess(Self.workflowRecord(path: path)) }
        #expect(Self.allEntries(folder.path).isEmpty)
    }

    @Test func atomicFile_respectsTheUmask_andCreatesFolders() throws {
        let folder = try TemporaryDirectory()
        let target = folder.file("a/b/secret.json")
        // The process umask, read without changing it for other tests (umask(2) only sets: set it back at once).
        let umaskNow = umask(0o022)
        umask(umaskNow)
        try AtomicFile.write(Data("one".utf8), to: target, permissions: 0o640)
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "one")
        var status = stat()
        #expect(stat(target, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o640 & ~umaskNow)
        try AtomicFile.write(Data(), to: target)
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)).isEmpty)
        #expect(stat(target, &status) == 0 && status.st_mode & 0o777 == 0o666 & ~umaskNow, "no forced 0644: the umask decides")
        #expect(Self.allEntries(folder.file("a/b")) == ["secret.json"])
    }
}
