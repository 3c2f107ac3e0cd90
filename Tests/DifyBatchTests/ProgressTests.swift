import Foundation
import Testing
@testable import DifyBatch

@Suite("Progress")
struct ProgressTests {
    @Test func theLineShowsCountsThroughputEtaAndTokens() {
        let snapshot = ProgressSnapshot(counts: [.succeeded: 12, .failed: 1, .rejected: 2], inFlight: 3, waiting: 17,
                                        finished: 14, tokens: 12_340, elapsedSeconds: 10)
        #expect(ProgressRenderer.line(snapshot)
                == "12 succeeded, 1 failed, 2 rejected | 3 in flight, 17 waiting | 1.4 docs/s | ETA 0:14 | 12,340 tokens | 0:10 elapsed")
    }

    @Test func beforeAnythingFinishesThroughputAndEtaAreUnknown() {
        let line = ProgressRenderer.line(ProgressSnapshot(inFlight: 2, waiting: 5, elapsedSeconds: 3))
        #expect(line == "0 succeeded | 2 in flight, 5 waiting | - docs/s | ETA - | 0 tokens | 0:03 elapsed")
    }

    @Test func nothingLeftMeansEtaZero() {
        #expect(ProgressSnapshot(counts: [.succeeded: 4], finished: 4, elapsedSeconds: 2).etaSeconds == 0)
    }

    @Test func renderedTextNeverContainsEscapeCodes() {
        let snapshot = ProgressSnapshot(counts: [.succeeded: 1, .dead: 1, .skipped: 2], inFlight: 1, waiting: 1, finished: 4, tokens: 5,
                                        elapsedSeconds: 4000)
        for text in [ProgressRenderer.line(snapshot), ProgressRenderer.plainLine(snapshot), ProgressRenderer.statusLine(snapshot, columns: 30)] {
            #expect(!text.contains("\u{1B}") && !text.contains("\r") && !text.contains("\n"))
        }
        #expect(ProgressRenderer.plainLine(snapshot).hasPrefix("progress: 1 succeeded, 2 skipped, 1 dead |"))
        #expect(ProgressRenderer.line(snapshot).hasSuffix("1:06:40 elapsed"))
    }

    @Test func theJSONProgressRecordCarriesCountsAndRates() throws {
        let snapshot = ProgressSnapshot(counts: [.succeeded: 12, .failed: 1], inFlight: 3, waiting: 17, finished: 12, tokens: 99, elapsedSeconds: 10)
        let line = ProgressRenderer.jsonLine(snapshot, time: Date(timeIntervalSince1970: 0))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["message"] as? String == "progress" && object["time"] as? String == "1970-01-01T00:00:00.000Z")
        // Numbers stay JSON numbers.
        #expect(object["succeeded"] as? Int == 12 && object["failed"] as? Int == 1 && object["dead"] as? Int == 0)
        #expect(object["in_flight"] as? Int == 3 && object["waiting"] as? Int == 17 && object["tokens"] as? Int == 99)
        #expect(object["docs_per_second"] as? Double == 1.2 && object["eta_seconds"] as? Int == 17)
        #expect(line.contains("\"docs_per_second\":1.2"))
    }

    @Test func theStatusLineIsCutToTheTerminalWidth() {
        let snapshot = ProgressSnapshot(counts: [.succeeded: 1000], inFlight: 10, waiting: 100_000, finished: 1000, tokens: 9_999_999, elapsedSeconds: 100)
        let cut = ProgressRenderer.statusLine(snapshot, columns: 40)
        #expect(cut.count == 39 && cut.hasSuffix("~"))
        #expect(ProgressRenderer.statusLine(snapshot, columns: nil) == ProgressRenderer.line(snapshot))
    }

    @Test func formatting() {
        #expect(ProgressRenderer.formatRate(0.04) == "0.0")
        #expect(ProgressRenderer.formatRate(12) == "12.0")
        #expect(ProgressRenderer.formatRate(130.4) == "130")
        #expect(ProgressRenderer.formatDuration(7) == "0:07")
        #expect(ProgressRenderer.formatDuration(185) == "3:05")
        #expect(ProgressRenderer.formatDuration(3723) == "1:02:03")
        #expect(ProgressRenderer.groupThousands(0) == "0")
        #expect(ProgressRenderer.groupThousands(999) == "999")
        #expect(ProgressRenderer.groupThousands(1_234_567) == "1,234,567")
    }

    @Test func styleNeverUsesTheLiveLineOutsideATerminal() {
        for mode in ProgressReporter.Mode.allCases {
            for plain in [true, false] {
                #expect(ProgressReporter.style(mode: mode, isTerminal: false, plainWhenNotTerminal: plain) != .live)
            }
        }
        #expect(ProgressReporter.style(mode: .auto, isTerminal: true, plainWhenNotTerminal: false) == .live)
        #expect(ProgressReporter.style(mode: .auto, isTerminal: false, plainWhenNotTerminal: true) == .plain)
        #expect(ProgressReporter.style(mode: .auto, isTerminal: false, plainWhenNotTerminal: false) == .silent)
        #expect(ProgressReporter.style(mode: .always, isTerminal: false, plainWhenNotTerminal: false) == .plain)
        #expect(ProgressReporter.style(mode: .never, isTerminal: true, plainWhenNotTerminal: true) == .silent)
    }

    @Test func theReporterCountsEachDocumentInItsLatestState() {
        let reporter = ProgressReporter(style: .silent)
        reporter.record(.documentSettled(job: "a", document: document(1, .failed)))
        reporter.record(.documentSettled(job: "a", document: document(2, .rejected)))
        reporter.record(.documentSettled(job: "a", document: document(1, .succeeded)))
        reporter.record(.usageRecorded(job: "a", usage: UsageAmounts(promptTokens: 10, completionTokens: 5, totalTokens: 15)))
        reporter.record(.usageRecorded(job: "b", usage: UsageAmounts(promptTokens: 1, completionTokens: 2)))
        reporter.record(.queue(job: "a", inFlight: 2, waiting: 3))
        reporter.record(.queue(job: "b", inFlight: 1, waiting: 0))
        reporter.record(.queue(job: "a", inFlight: 1, waiting: 2))
        let snapshot = reporter.snapshot()
        #expect(snapshot.counts == [.succeeded: 1, .rejected: 1])
        #expect(snapshot.finished == 2)
        #expect(snapshot.tokens == 18)
        #expect(snapshot.inFlight == 2 && snapshot.waiting == 2)
    }

    @Test func plainStyleWritesPlainLinesUntilCancelled() async throws {
        let capture = try FDCapture()
        let reporter = ProgressReporter(style: .plain, writer: capture.writer, plainInterval: .milliseconds(20))
        reporter.record(.documentSettled(job: "a", document: document(1, .succeeded)))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await reporter.run() }
            await capture.waitForData()
            group.cancelAll()
        }
        let text = capture.finish()
        #expect(text.hasPrefix("progress: 1 succeeded"))
        #expect(!text.contains("\u{1B}") && !text.contains("\r"))
    }

    @Test func liveStyleRedrawsOneLineAndClearsItWhenCancelled() async throws {
        let capture = try FDCapture()
        let reporter = ProgressReporter(style: .live, writer: capture.writer, liveInterval: .milliseconds(20))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await reporter.run() }
            await capture.waitForData()
            try? await Task.sleep(for: .milliseconds(100))
            group.cancelAll()
        }
        let text = capture.finish()
        #expect(text.hasPrefix(TerminalEscapes.clearLine + "0 succeeded"))
        #expect(text.hasSuffix(TerminalEscapes.clearLine))
        #expect(!text.contains("\n"))
    }
}

func document(_ id: Int64, _ state: DocumentState, job: String = "a") -> DocumentRecord {
    let now = Date()
    return DocumentRecord(id: id, jobID: 1, jobName: job, path: "doc\(id).txt", sha256: nil, size: 1, mtimeNanoseconds: 0, state: state,
                          attempts: 1, nextAttemptAt: nil, uploadFileID: nil, workflowRunID: nil, messageID: nil, taskID: nil, runSentAt: nil,
                          duplicateRuns: 0, duplicateOf: nil, outputPath: nil, lastError: nil, createdAt: now, updatedAt: now, finishedAt: nil)
}
