import Foundation
import Logging
import Testing
@testable import DifyBatch

@Suite("Logging")
struct LoggingTests {
    let time = Date(timeIntervalSince1970: 1_795_762_800.25)   // 2026-11-27T07:00:00.250Z

    @Test func timestampsAreRFC3339InUTC() {
        #expect(LogTimestamp.format(time) == "2026-11-27T07:00:00Z")
        #expect(LogTimestamp.format(time, milliseconds: true) == "2026-11-27T07:00:00.250Z")
        #expect(LogTimestamp.format(Date(timeIntervalSince1970: 0), milliseconds: true) == "1970-01-01T00:00:00.000Z")
    }

    @Test func humanLinesPutJobPathAndDocumentBeforeTheMessage() {
        let line = ConsoleLogHandler.format(time: time, level: .info, message: "succeeded",
                                            metadata: ["document": "12", "path": "a.pdf", "job": "invoices", "tokens": "42", "output": "out/a b.json"])
        #expect(line == "2026-11-27T07:00:00Z info job=invoices path=a.pdf document=12 succeeded output=\"out/a b.json\" tokens=42")
    }

    @Test func humanLinesStayOnOneLine() {
        let line = ConsoleLogHandler.format(time: time, level: .error, message: "two\nlines", metadata: ["path": "x\ny.txt"])
        #expect(!line.contains("\n"))
        #expect(line.hasPrefix("2026-11-27T07:00:00Z error path=\"x\\ny.txt\" two\\nlines"))
    }

    @Test func jsonLinesAreOneObjectWithEveryMetadataKeyFlattened() throws {
        let line = JSONLogHandler.format(time: time, level: .warning, label: "dify-batch", message: "say \"hi\"\n\u{1}",
                                         metadata: ["job": "invoices", "document": .stringConvertible(12), "path": "Straße/a.pdf",
                                                    "nested": ["a": "1", "b": ["c": "2"]], "list": ["x", "y"], "message": "clash"])
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["time"] as? String == "2026-11-27T07:00:00.250Z")
        #expect(object["level"] as? String == "warning")
        #expect(object["label"] as? String == "dify-batch")
        #expect(object["message"] as? String == "say \"hi\"\n\u{1}")
        #expect(object["job"] as? String == "invoices")
        #expect(object["document"] as? Int == 12, "numbers stay numbers")
        #expect(object["path"] as? String == "Straße/a.pdf")
        #expect(object["nested.a"] as? String == "1")
        #expect(object["nested.b.c"] as? String == "2")
        #expect(object["list"] as? [String] == ["x", "y"])
        #expect(object["meta.message"] as? String == "clash")
        #expect(line.hasPrefix("{\"time\":"))
    }

    @Test func handlersWriteThroughTheWriterWithLoggerMetadata() throws {
        let capture = try FDCapture()
        var logger = Logger(label: "dify-batch") { label in LogFormat.json.makeHandler(label: label, level: .debug, writer: capture.writer) }
        logger.logLevel = .debug
        logger[metadataKey: "job"] = "docs"
        logger.debug("uploaded", metadata: ["document": "3", "path": "a.txt"])
        logger.trace("not shown")
        var human = Logger(label: "dify-batch") { label in LogFormat.human.makeHandler(label: label, level: .info, writer: capture.writer) }
        human[metadataKey: "job"] = "docs"
        human.info("hello", metadata: ["document": "4", "path": "b.txt"])
        human.debug("not shown")
        let lines = capture.finish().split(separator: "\n").map(String.init)
        #expect(lines.count == 2, "\(lines)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(object["job"] as? String == "docs" && object["document"] as? String == "3" && object["path"] as? String == "a.txt")
        #expect(lines[1].hasSuffix(" info job=docs path=b.txt document=4 hello"), "\(lines[1])")
    }

    @Test func aLogLineClearsAndRedrawsTheLiveStatusLine() throws {
        let capture = try FDCapture()
        capture.writer.showStatus("status")
        capture.writer.writeLine("log line")
        capture.writer.clearStatus()
        capture.writer.writeLine("after")
        let clear = TerminalEscapes.clearLine
        #expect(capture.finish() == "\(clear)status\(clear)log line\nstatus\(clear)after\n")
    }
}

/// A pipe whose write end backs a ``StandardErrorWriter``; `finish()` closes it and returns what was written.
final class FDCapture {
    let writer: StandardErrorWriter
    private let readEnd: Int32
    private let writeEnd: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw CocoaError(.fileWriteUnknown) }
        readEnd = fds[0]
        writeEnd = fds[1]
        writer = StandardErrorWriter(fileDescriptor: writeEnd)
    }

    /// Waits (polling the pipe, never reading it) until something was written, or `timeout` passed.
    func waitForData(timeout: Duration = .seconds(120)) async {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var descriptor = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, 0) > 0 { return }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    func finish() -> String {
        close(writeEnd)
        let data = FileHandle(fileDescriptor: readEnd, closeOnDealloc: true).readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self)
    }
}
