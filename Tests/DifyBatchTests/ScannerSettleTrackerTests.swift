import Foundation
import Testing
@testable import DifyBatch

@Suite struct ScannerSettleTrackerTests {
    let start = ContinuousClock.now
    let wallStart = Date(timeIntervalSince1970: 1_795_000_000)

    /// A file whose mtime is `wallStart` (freshly written when the tracker first sees it).
    func file(_ name: String, size: Int64 = 10, mtimeOffset: Double = 0) -> InboxFile {
        let mtime = Int64(wallStart.timeIntervalSince1970) * 1_000_000_000 + Int64((mtimeOffset * 1e9).rounded())
        return InboxFile(relativePath: name, absolutePath: "/in/" + name, size: size, mtimeNanoseconds: mtime, isSymlink: false)
    }

    /// Observes at `seconds` after the start on both clocks.
    func observe(_ tracker: inout SettleTracker, _ files: [InboxFile], at seconds: Double) -> [String] {
        tracker.observe(files, now: start + .milliseconds(Int64((seconds * 1000).rounded())), wallNow: wallStart.addingTimeInterval(seconds))
            .map(\.relativePath)
    }

    @Test func unchangedFileSettlesOnceTheSettleTimeHasPassed() {
        var tracker = SettleTracker(settle: .seconds(2))
        let a = file("a.pdf")
        #expect(observe(&tracker, [a], at: 0) == [])
        #expect(tracker.nextSettleInstant() == start + .seconds(2))
        #expect(observe(&tracker, [a], at: 1.999) == [])
        #expect(observe(&tracker, [a], at: 2) == ["a.pdf"])
        #expect(tracker.nextSettleInstant() == nil)
        // Still settled on later scans (the caller dedups).
        #expect(observe(&tracker, [a], at: 5) == ["a.pdf"])
    }

    @Test func changedSizeOrMtimeRestartsTheTimer() {
        var tracker = SettleTracker(settle: .seconds(2))
        #expect(observe(&tracker, [file("a.pdf", size: 10)], at: 0) == [])
        #expect(observe(&tracker, [file("a.pdf", size: 20, mtimeOffset: 1.5)], at: 1.5) == [])
        #expect(tracker.nextSettleInstant() == start + .milliseconds(3500))
        #expect(observe(&tracker, [file("a.pdf", size: 20, mtimeOffset: 1.5)], at: 3) == [])
        #expect(observe(&tracker, [file("a.pdf", size: 20, mtimeOffset: 3.2)], at: 3.4) == [])  // touched: mtime only
        #expect(observe(&tracker, [file("a.pdf", size: 20, mtimeOffset: 3.2)], at: 5.3) == [])
        #expect(observe(&tracker, [file("a.pdf", size: 20, mtimeOffset: 3.2)], at: 5.4) == ["a.pdf"])
    }

    @Test func fileWithAnOldMtimeIsSettledOnFirstSight() {
        var tracker = SettleTracker(settle: .seconds(2))
        let old = file("old.pdf", mtimeOffset: -3600)
        let fresh = file("fresh.pdf")
        #expect(observe(&tracker, [old, fresh], at: 0) == ["old.pdf"])
        #expect(tracker.nextSettleInstant() == start + .seconds(2))
    }

    @Test func recentMtimeCountsTowardsTheSettleTimeOnFirstSight() {
        var tracker = SettleTracker(settle: .seconds(2))
        let recent = file("recent.pdf", mtimeOffset: -1.5)  // written 1.5 s before the first scan
        #expect(observe(&tracker, [recent], at: 0) == [])
        #expect(tracker.nextSettleInstant() == start + .milliseconds(500))
        #expect(observe(&tracker, [recent], at: 0.5) == ["recent.pdf"])
    }

    @Test func mtimeInTheFutureIsNotTrusted() {
        var tracker = SettleTracker(settle: .seconds(2))
        let future = file("future.pdf", mtimeOffset: 3600)
        #expect(observe(&tracker, [future], at: 0) == [])
        #expect(tracker.nextSettleInstant() == start + .seconds(2))
        #expect(observe(&tracker, [future], at: 2) == ["future.pdf"])
    }

    @Test func zeroSettleTakesEveryFileAtOnce() {
        var tracker = SettleTracker(settle: .zero)
        let files = [file("a.pdf"), file("b.pdf", mtimeOffset: 100)]
        #expect(observe(&tracker, files, at: 0) == ["a.pdf", "b.pdf"])
        #expect(tracker.nextSettleInstant() == nil)
    }

    @Test func nextSettleInstantIsTheEarliestPendingFileAndNilWhenNoneIsPending() {
        var tracker = SettleTracker(settle: .seconds(2))
        #expect(tracker.nextSettleInstant() == nil)
        #expect(observe(&tracker, [file("a.pdf")], at: 0) == [])
        #expect(observe(&tracker, [file("a.pdf"), file("b.pdf", mtimeOffset: 1)], at: 1) == [])
        #expect(tracker.nextSettleInstant() == start + .seconds(2))
        #expect(tracker.pendingCount == 2)
        #expect(observe(&tracker, [file("a.pdf"), file("b.pdf", mtimeOffset: 1)], at: 2) == ["a.pdf"])
        #expect(tracker.nextSettleInstant() == start + .seconds(3))
        #expect(observe(&tracker, [file("a.pdf"), file("b.pdf", mtimeOffset: 1)], at: 3) == ["a.pdf", "b.pdf"])
        #expect(tracker.nextSettleInstant() == nil)
    }

    @Test func filesThatDisappearAreForgottenAndStartOverWhenTheyReturn() {
        var tracker = SettleTracker(settle: .seconds(2))
        let a = file("a.pdf")
        #expect(observe(&tracker, [a], at: 0) == [])
        #expect(observe(&tracker, [], at: 1) == [])
        #expect(tracker.nextSettleInstant() == nil)
        #expect(tracker.pendingCount == 0)
        // Back with the same (size, mtime): first sight again, its mtime is 2.5 s old by now.
        #expect(observe(&tracker, [a], at: 2.5) == ["a.pdf"])
        let b = file("b.pdf", mtimeOffset: 2.5)
        #expect(observe(&tracker, [b], at: 2.5) == [])
        #expect(observe(&tracker, [], at: 3) == [])
        #expect(observe(&tracker, [b], at: 4) == [])  // mtime 1.5 s old: 0.5 s to go
        #expect(observe(&tracker, [b], at: 4.5) == ["b.pdf"])
    }

    @Test func aFileThatKeepsChanging_isNamedWithHowLongItHasChanged_andOverdueAfterTheTimeout() {
        var tracker = SettleTracker(settle: .seconds(1))
        var size: Int64 = 10
        for step in 0...30 {
            size += 5
            _ = observe(&tracker, [file("app.log", size: size, mtimeOffset: Double(step) / 10), file("done.pdf", mtimeOffset: -60)],
                        at: Double(step) / 10)
        }
        let now = start + .seconds(3)
        #expect(tracker.unsettled(now: now) == UnsettledFiles(count: 1, oldestPath: "app.log", oldestFor: .seconds(3)))
        #expect(tracker.unsettled(now: now).summary == "waiting for 1 file(s) to settle (oldest: app.log, changing for 3s)")
        #expect(tracker.overdue(after: .seconds(4), now: now) == [])
        #expect(tracker.overdue(after: .seconds(3), now: now) == ["app.log"])

        // Given up: no longer pending, overdue or scheduled; once it settles it is returned like any file.
        tracker.giveUp("app.log")
        #expect(tracker.pendingCount == 0 && tracker.nextSettleInstant() == nil)
        #expect(tracker.overdue(after: .seconds(3), now: now) == [] && tracker.unsettled(now: now) == .none)
        _ = observe(&tracker, [file("app.log", size: size + 1, mtimeOffset: 3.1)], at: 3.1)
        #expect(tracker.pendingCount == 0)
        #expect(observe(&tracker, [file("app.log", size: size + 1, mtimeOffset: 3.1)], at: 4.2) == ["app.log"])
    }

    @Test func unsettledFiles_mergeKeepsTheOldest_andFormatsWholeUnits() {
        let merged = UnsettledFiles.merged([UnsettledFiles(count: 2, oldestPath: "a", oldestFor: .seconds(300)),
                                            .none, UnsettledFiles(count: 1, oldestPath: "b", oldestFor: .seconds(7800))])
        #expect(merged == UnsettledFiles(count: 3, oldestPath: "b", oldestFor: .seconds(7800)))
        #expect(merged.summary == "waiting for 3 file(s) to settle (oldest: b, changing for 2h 10m)")
        #expect(UnsettledFiles.none.summary == nil)
    }
}
