import Foundation

/// Decides when files have settled: their size and mtime unchanged for `settle`. A pure value type; time is
/// passed in, so tests drive it with made-up instants.
///
/// Rules, per file (keyed by the bytes of its absolute path, see ``PathKey``):
/// - `settle == .zero`: every file is settled at once.
/// - First sight: the file counts as unchanged since its mtime (wall clock), capped at `settle`. So a file whose
///   mtime is at least `settle` old is settled at once, and one written 0.5 s ago with `settle` 2 s settles
///   1.5 s later.
/// - Same `(size, mtime)` as last time: settled once `settle` has passed since the file started looking like this.
/// - Changed size or mtime: the timer restarts at `now` (the mtime is not trusted again: the file is active).
/// - Files missing from a scan are forgotten; if they come back they are new.
/// - A file is "changing" from its first sight until it settles (``unsettled(now:)``); ``overdue(after:now:)``
///   names those changing longer than a timeout, and ``giveUp(_:)`` stops counting one as pending (issue 16).
///
/// ``observe(_:now:wallNow:)`` returns every settled file of this scan, including ones it returned before;
/// the caller decides what is new (the ledger knows).
public struct SettleTracker: Sendable {
    public let settle: Duration

    private struct Entry: Sendable {
        var size: Int64
        var mtimeNanoseconds: Int64
        /// Since when the file has looked like this.
        var since: ContinuousClock.Instant
        var settled: Bool
        /// When this file was first seen not settled (kept across changes; reset once it settles).
        var changingSince: ContinuousClock.Instant?
        /// Given up on (``giveUp(_:)``): not pending, until it settles.
        var givenUp = false
        var relativePath: String
    }
    private var entries: [PathKey: Entry] = [:]
    /// The keys of the entries not settled and not given up: what the per-event questions below walk, so a job
    /// loop asking them after every document costs the changing files, not the whole inbox (issue 14).
    private var pendingKeys: Set<PathKey> = []

    public init(settle: Duration) {
        self.settle = max(settle, .zero)
    }

    /// Records this scan's observations at `now` and returns the settled files, in the order given.
    /// `wallNow` is compared with the files' mtimes; `now` is the tracker's own clock.
    public mutating func observe(_ files: [InboxFile], now: ContinuousClock.Instant, wallNow: Date) -> [InboxFile] {
        let wallNowNanoseconds = Self.nanoseconds(wallNow)
        var next: [PathKey: Entry] = [:]
        next.reserveCapacity(files.count)
        var settledFiles: [InboxFile] = []
        for file in files {
            var entry: Entry
            let key = PathKey(file.absolutePath)
            if let old = entries[key] ?? next[key] {
                if old.size == file.size && old.mtimeNanoseconds == file.mtimeNanoseconds {
                    entry = old
                } else {
                    entry = Entry(size: file.size, mtimeNanoseconds: file.mtimeNanoseconds, since: now, settled: false,
                                  changingSince: old.changingSince ?? now, givenUp: old.givenUp, relativePath: file.relativePath)
                }
            } else {
                // First sight: unchanged since its mtime, as far as we can tell (never more than `settle`,
                // never in the future if the mtime is ahead of our clock).
                let age = wallNowNanoseconds.subtractingReportingOverflow(file.mtimeNanoseconds)
                let ageDuration: Duration = age.overflow ? .zero : .nanoseconds(max(age.partialValue, 0))
                entry = Entry(size: file.size, mtimeNanoseconds: file.mtimeNanoseconds,
                              since: now - min(ageDuration, settle), settled: false, relativePath: file.relativePath)
            }
            entry.settled = settle == .zero || now - entry.since >= settle
            if entry.settled {
                entry.changingSince = nil
                entry.givenUp = false
            } else if entry.changingSince == nil {
                entry.changingSince = now
            }
            if entry.settled { settledFiles.append(file) }
            next[key] = entry
        }
        entries = next
        pendingKeys = Set(entries.lazy.filter { !$0.value.settled && !$0.value.givenUp }.map(\.key))
        return settledFiles
    }

    /// When the next not-yet-settled file could settle (so a watcher can schedule a rescan), nil if none pending.
    public func nextSettleInstant() -> ContinuousClock.Instant? {
        var earliest: ContinuousClock.Instant?
        for entry in pendingEntries {
            let due = entry.since + settle
            if earliest.map({ due < $0 }) ?? true { earliest = due }
        }
        return earliest
    }

    /// Files currently tracked and not yet settled (given-up files excluded).
    public var pendingCount: Int { pendingKeys.count }

    private var pendingEntries: some Sequence<Entry> { pendingKeys.lazy.compactMap { entries[$0] } }

    /// The files not settled yet (given-up files excluded) and the one changing the longest, at `now`.
    public func unsettled(now: ContinuousClock.Instant) -> UnsettledFiles {
        var result = UnsettledFiles()
        for entry in pendingEntries {
            result.count += 1
            let changing = now - (entry.changingSince ?? now)
            if result.oldestPath == nil || changing > result.oldestFor
                || (changing == result.oldestFor && entry.relativePath < (result.oldestPath ?? "")) {
                result.oldestPath = entry.relativePath
                result.oldestFor = changing
            }
        }
        return result
    }

    /// Inbox-relative paths of files still changing `timeout` or longer after they were first seen (given-up
    /// files excluded), sorted.
    public func overdue(after timeout: Duration, now: ContinuousClock.Instant) -> [String] {
        pendingEntries.filter { now - ($0.changingSince ?? now) >= timeout }
            .map(\.relativePath).sorted()
    }

    /// Stops counting the file at `relativePath` as pending (it was given up on). If it later settles, it is
    /// returned as settled like any other file.
    public mutating func giveUp(_ relativePath: String) {
        for key in pendingKeys where entries[key]?.relativePath == relativePath {
            entries[key]?.givenUp = true
            pendingKeys.remove(key)
        }
    }

    private static func nanoseconds(_ date: Date) -> Int64 {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let fraction = date.timeIntervalSince1970 - seconds
        return Int64(seconds) * 1_000_000_000 + Int64((fraction * 1e9).rounded())
    }
}
