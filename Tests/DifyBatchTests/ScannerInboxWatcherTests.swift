import Foundation
import Synchronization
import Testing
@testable import DifyBatch

/// Counts a watcher's elements from a child task; the test awaits a count with a deadline.
final class ScannerWatchCounter: Sendable {
    private let count = Mutex(0)

    var value: Int { count.withLock { $0 } }

    func consume(_ stream: AsyncStream<Void>) async {
        for await _ in stream { count.withLock { $0 += 1 } }
    }

    /// Waits (polling every 10 ms) until more than `baseline` elements arrived; false after `timeout`.
    func waitForMore(than baseline: Int, timeout: Duration = .seconds(60)) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if value > baseline { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return value > baseline
    }
}

/// inotify descriptors this process holds.
func scannerInotifyDescriptorCount() -> Int {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return entries.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) == "anon_inode:inotify" }.count
}

@Suite(.serialized) struct ScannerInboxWatcherTests {
    @Test func yieldsWhenAFileIsRenamedIntoTheFolder() async throws {
        let dir = try TemporaryDirectory()
        let inbox = dir.path + "/inbox"
        try dir.makeFolder("inbox")
        let staged = try scannerWrite(dir.path, "staging/report.pdf", "contents")
        let watcher = try InboxWatcher(directory: inbox, recursive: true)
        let counter = ScannerWatchCounter()

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await counter.consume(watcher.changes()) }
            // Nothing happened yet (the watch is set up in init, before the rename).
            #expect(counter.value == 0)
            #expect(rename(staged, inbox + "/report.pdf") == 0)
            let arrived1 = try await counter.waitForMore(than: 0)
            #expect(arrived1)
            group.cancelAll()
        }
    }

    @Test func yieldsWhenANewSubFolderGetsAFile() async throws {
        let dir = try TemporaryDirectory()
        let watcher = try InboxWatcher(directory: dir.path, recursive: true)
        let counter = ScannerWatchCounter()

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await counter.consume(watcher.changes()) }
            try dir.makeFolder("new folder")
            let arrived2 = try await counter.waitForMore(than: 0)
            #expect(arrived2)
            // The element for the new folder is yielded only after the folder is watched.
            let afterFolder = counter.value
            try scannerWrite(dir.path, "new folder/doc.pdf", "hello")
            let arrived3 = try await counter.waitForMore(than: afterFolder)
            #expect(arrived3)
            // A tree created at once (mkdir -p): its inner folders are watched too.
            let beforeTree = counter.value
            try dir.makeFolder("a/b/c")
            let arrived4 = try await counter.waitForMore(than: beforeTree)
            #expect(arrived4)
            let afterTree = counter.value
            try scannerWrite(dir.path, "a/b/c/deep.pdf")
            let arrived5 = try await counter.waitForMore(than: afterTree)
            #expect(arrived5)
            group.cancelAll()
        }
    }

    @Test func followsASubFolderRenamedInsideTheInbox() async throws {
        let dir = try TemporaryDirectory()
        let outside = try TemporaryDirectory()
        try dir.makeFolder("before/inner")
        let watcher = try InboxWatcher(directory: dir.path, recursive: true)
        let counter = ScannerWatchCounter()

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await counter.consume(watcher.changes()) }
            #expect(rename(dir.path + "/before", dir.path + "/after") == 0)
            let arrivedRename = try await counter.waitForMore(than: 0)
            #expect(arrivedRename)
            // New folders under the renamed one get watched under their new path.
            let afterRename = counter.value
            try dir.makeFolder("after/inner/new")
            let arrivedFolder = try await counter.waitForMore(than: afterRename)
            #expect(arrivedFolder)
            let afterFolder = counter.value
            try scannerWrite(dir.path, "after/inner/new/doc.pdf")
            let arrivedFile = try await counter.waitForMore(than: afterFolder)
            #expect(arrivedFile)
            // Moved out of the inbox: one more element for the move itself.
            let beforeMoveOut = counter.value
            #expect(rename(dir.path + "/after", outside.path + "/gone") == 0)
            let arrivedMoveOut = try await counter.waitForMore(than: beforeMoveOut)
            #expect(arrivedMoveOut)
            group.cancelAll()
        }
    }

    @Test func eventsAboutDotfilesAndPartialDownloadsDoNotMatterButTheFinalRenameDoes() {
        #expect(!InboxWatcher.eventMatters(mask: UInt32(IN_MODIFY), name: "movie.mp4.part"))
        #expect(!InboxWatcher.eventMatters(mask: UInt32(IN_CLOSE_WRITE), name: "~$report.docx"))
        #expect(!InboxWatcher.eventMatters(mask: UInt32(IN_CREATE), name: ".report.pdf.XyZ12"))
        #expect(!InboxWatcher.eventMatters(mask: UInt32(IN_CREATE | IN_ISDIR), name: ".git"))
        #expect(InboxWatcher.eventMatters(mask: UInt32(IN_MOVED_TO), name: "movie.mp4"))
        #expect(InboxWatcher.eventMatters(mask: UInt32(IN_MOVED_FROM), name: "report.pdf"))
        #expect(InboxWatcher.eventMatters(mask: UInt32(IN_CREATE | IN_ISDIR), name: "downloads.tmp"))
        #expect(InboxWatcher.eventMatters(mask: UInt32(IN_DELETE_SELF), name: ""))
    }

    @Test func partialDownloadRenamedToItsFinalNameYields() async throws {
        let dir = try TemporaryDirectory()
        let watcher = try InboxWatcher(directory: dir.path, recursive: true)
        let counter = ScannerWatchCounter()

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await counter.consume(watcher.changes()) }
            try scannerWrite(dir.path, "movie.mp4.part", "partial")
            try scannerWrite(dir.path, ".hidden", "x")
            // A marker event proves the events above were processed (inotify keeps order).
            try scannerWrite(dir.path, "marker.txt")
            let arrived6 = try await counter.waitForMore(than: 0)
            #expect(arrived6)
            let afterMarker = counter.value
            #expect(rename(dir.path + "/movie.mp4.part", dir.path + "/movie.mp4") == 0)
            let arrived7 = try await counter.waitForMore(than: afterMarker)
            #expect(arrived7)
            group.cancelAll()
        }
    }

    @Test func streamEndsWhenTheConsumerIsCancelledAndClosesItsDescriptor() async throws {
        let dir = try TemporaryDirectory()
        let before = scannerInotifyDescriptorCount()
        for _ in 0..<20 {
            let watcher = try InboxWatcher(directory: dir.path, recursive: true)
            await withTaskGroup(of: Void.self) { group in
                group.addTask { for await _ in watcher.changes() {} }
                group.cancelAll()
                await group.waitForAll()  // returns only because the stream ended
            }
        }
        // Descriptors close on the watcher's queue shortly after cancellation.
        let deadline = ContinuousClock.now + .seconds(15)
        while scannerInotifyDescriptorCount() > before, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        // Other tests may hold a few descriptors of their own meanwhile; 20 leaked ones would show.
        #expect(scannerInotifyDescriptorCount() < before + 10)
    }

    @Test func watcherThatIsNeverConsumedDoesNotLeakItsDescriptor() throws {
        let dir = try TemporaryDirectory()
        let before = scannerInotifyDescriptorCount()
        for _ in 0..<20 { _ = try InboxWatcher(directory: dir.path, recursive: false) }
        #expect(scannerInotifyDescriptorCount() < before + 10)
    }

    @Test func missingFolderThrowsAClearError() throws {
        let dir = try TemporaryDirectory()
        let error = #expect(throws: ScanError.self) {
            try InboxWatcher(directory: dir.path + "/missing", recursive: true)
        }
        #expect(error?.description.contains("/missing") == true)
        #expect(error?.description.contains("No such file or directory") == true)
    }
}
