import DifyKit
import Foundation
import Logging
import Synchronization

/// Turns what is in a job's inbox into ledger rows: settled new or changed files become `pending` documents,
/// bad ones `rejected` (with an `.error.json`, never uploaded), and content that already succeeded `skipped`
/// (its output written from the stored result). Files are hashed only when new or changed.
public final class JobScanner: Sendable {
    let spec: JobSpec
    let job: JobRecord
    let preflight: JobPreflight
    let ledger: any Ledger
    let clock: any PipelineClock
    let logger: Logger
    let reprocess: Bool
    /// `run`: give up on a file still changing after `match.settle_timeout` (rejected `never_settled`). `watch`: false.
    let givesUpUnsettled: Bool
    let runID: Int64?
    let onSettled: @Sendable (DocumentRecord) -> Void
    /// Receives the inbox files `match.include`/`exclude` leave out, after every scan.
    let onNotMatched: @Sendable ([String]) -> Void
    let scanner: InboxScanner
    let settler: DocumentSettler
    /// Outbox paths that could never be written are refused at insert (see ``OutboxTargets``).
    let outboxTargets: OutboxTargets
    private let tracker: Mutex<SettleTracker>
    private let reported = Mutex<Set<PathKey>>([])
    /// The not-matched paths of the last scan (logged and recorded only when they change).
    private let lastNotMatched = Mutex<[String]?>(nil)
    /// The newest version of every path this job knows (keyed by the path's bytes), loaded from the ledger on the
    /// first scan and kept up to date here, so a rescan of an unchanged inbox costs no ledger query.
    private let known = Mutex<[PathKey: KnownFile]?>(nil)
    /// Settled files the ledger refused to record at their last try (a full disk, an I/O error): path → the error.
    private let unrecordedFiles = Mutex<[String: String]>([:])

    /// The files the last scans could not record in the ledger (sorted paths, each with its error); `run` ends
    /// with exit 4 while there are any, since it has not taken them (they are tried on the next scan and run).
    public var unrecorded: [(path: String, error: String)] {
        unrecordedFiles.withLock { $0 }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    public init(spec: JobSpec, job: JobRecord, preflight: JobPreflight, ledger: any Ledger, clock: any PipelineClock,
                logger: Logger, reprocess: Bool, runID: Int64?, givesUpUnsettled: Bool = false,
                onSettled: @escaping @Sendable (DocumentRecord) -> Void,
                onNotMatched: @escaping @Sendable ([String]) -> Void = { _ in }) {
        self.givesUpUnsettled = givesUpUnsettled
        self.spec = spec
        self.job = job
        self.preflight = preflight
        self.ledger = ledger
        self.clock = clock
        self.logger = logger
        self.reprocess = reprocess
        self.runID = runID
        self.onSettled = onSettled
        self.onNotMatched = onNotMatched
        let excluded = [spec.outbox, spec.archive] + (spec.failedFolder.map { [$0] } ?? [])
        scanner = InboxScanner(inbox: spec.inbox, rules: spec.match, excluding: excluded)
        settler = DocumentSettler(spec: spec, jobID: job.id, appMode: preflight.mode.rawValue, ledger: ledger, clock: clock,
                                  runID: runID, logger: logger, onSettled: onSettled)
        tracker = Mutex(SettleTracker(settle: spec.match.settle))
        outboxTargets = OutboxTargets(spec: spec)
    }

    /// Whether some files were seen but have not settled yet.
    public var hasUnsettledFiles: Bool { tracker.withLock { $0.pendingCount > 0 } }

    /// When the next unsettled file may settle.
    public var nextSettleInstant: ContinuousClock.Instant? { tracker.withLock { $0.nextSettleInstant() } }

    /// The files seen and not settled yet, at `now`.
    public func unsettled(now: ContinuousClock.Instant) -> UnsettledFiles { tracker.withLock { $0.unsettled(now: now) } }

    /// Forgets what this scanner remembers about a path (a version found replaced while it was processed), so
    /// the next scan looks at the file as new.
    public func forget(path: String) {
        known.withLock { _ = $0?.removeValue(forKey: PathKey(path)) }
    }

    /// Scans the inbox once and records what it found. Returns the number of new document versions.
    ///
    /// Throws ``ScanError`` only when the inbox itself cannot be listed; a problem with one file (it cannot be
    /// read, its `.error.json` cannot be written, the ledger refused its row) is logged and recorded on that file,
    /// and the scan goes on with the others.
    @discardableResult
    public func scan() async throws -> Int {
        let report = try scanner.scanAll()
        try await noteNotMatched(report.notMatched)
        for problem in report.problems {
            warnOnce(problem.relativePath, "cannot read \(problem.relativePath) in the inbox: \(problem.message)")
        }
        let now = clock.instant()
        let wallNow = clock.now()
        let (settled, overdue) = tracker.withLock { tracker in
            (tracker.observe(report.files, now: now, wallNow: wallNow),
             givesUpUnsettled ? tracker.overdue(after: spec.match.settleTimeout, now: now) : [])
        }
        for path in overdue {
            guard let file = report.files.first(where: { $0.relativePath == path }) else { continue }
            do {
                let document = try await neverSettled(file)
                known.withLock { $0?[PathKey(file.relativePath)] = KnownFile(document) }
            } catch {
                warnOnce(file.relativePath, "cannot record \(file.relativePath): \(error); it is tried again on the next scan")
                continue
            }
            tracker.withLock { $0.giveUp(path) }
        }
        guard !settled.isEmpty else { return 0 }
        var cache: [PathKey: KnownFile]
        if let loaded = known.withLock({ $0 }) {
            cache = loaded
        } else {
            cache = try await ledger.knownFiles(jobID: job.id)
        }
        var added = 0
        // Issue 14: new files that need nothing but their row are inserted together, up to `batchSize` per
        // transaction (all or none; a crash before the commit leaves them unrecorded, and the next scan finds them).
        var batch: [(file: InboxFile, new: NewDocument)] = []
        func insertBatch() async {
            guard !batch.isEmpty else { return }
            defer { batch = [] }
            do {
                let inserted = try await ledger.insertRows(batch.map(\.new))
                for (item, document) in zip(batch, inserted) {
                    noteTwin(document, item.file)
                    cache[PathKey(item.file.relativePath)] = KnownFile(document)
                    added += 1
                }
            } catch {
                for item in batch { unrecorded(item.file.relativePath, error) }
            }
        }
        for file in settled {
            let key = PathKey(file.relativePath)
            do {
                if let cached = cache[key] {
                    // Same device, inode, size and mtime: the version we know.
                    if cached.identity.matches(file.identity) { continue }
                    // Changed or replaced since we last looked: decide on the ledger's current view of that document.
                    var current = try await ledger.document(id: cached.id)
                    if current?.rowOf != nil {
                        // A file literally named like a table row (`x.csv#2`) is a document of its own, never a
                        // version of that row: compare it with the newest file of that name, if any.
                        current = try await ledger.documents(path: file.relativePath).first { $0.jobID == job.id && $0.rowOf == nil }
                        if let current, current.identity.matches(file.identity) {
                            cache[key] = KnownFile(current)
                            continue
                        }
                    }
                    if let current, !current.state.isTerminal {
                        cache[key] = KnownFile(try await refresh(current, with: file) ?? current)
                        continue
                    }
                }
                let outcome = try await record(file)
                // Cleared before a batch this file completes is inserted: a batch that fails marks every one of its
                // files again, this one included (attack4: 255 of 256 were reported).
                unrecordedFiles.withLock { _ = $0.removeValue(forKey: file.relativePath) }
                switch outcome {
                case .recorded(let document?):
                    cache[key] = KnownFile(document)
                    added += 1
                case .recorded(nil):
                    break
                case .batched(let new):
                    batch.append((file, new))
                    if batch.count >= Self.batchSize { await insertBatch() }
                }
            } catch {
                unrecorded(file.relativePath, error)
            }
        }
        await insertBatch()
        // Merge into the shared cache (``forget(path:)`` may have run meanwhile: its paths stay forgotten only
        // if this scan did not record them again).
        known.withLock { [cache] in $0 = cache }
        return added
    }

    /// `path` could not be recorded in the ledger: named in `run`'s exit-4 message, warned about once.
    private func unrecorded(_ path: String, _ error: any Error) {
        unrecordedFiles.withLock { $0[path] = "\(error)" }
        warnOnce(path, "cannot record \(path): \(error); it is tried again on the next scan")
    }

    private func warnOnce(_ path: String, _ message: String) {
        let isNew = reported.withLock { $0.insert(PathKey(path)).inserted }
        if isNew { logger.warning("\(message)", metadata: ["path": "\(path)"]) }
    }

    /// Files present but not matched are counted and named (a warning, the run's `not_matched`), never silently ignored.
    private func noteNotMatched(_ paths: [String]) async throws {
        let changed = lastNotMatched.withLock { last -> Bool in
            defer { last = paths }
            return last != paths
        }
        guard changed else { return }
        onNotMatched(paths)
        if let runID { try await ledger.recordNotMatched(runID: runID, jobID: job.id, count: paths.count) }
        guard !paths.isEmpty else { return }
        let shown = paths.prefix(10).joined(separator: ", ") + (paths.count > 10 ? ", …" : "")
        logger.warning("\(paths.count) file(s) in the inbox are not matched by match.include/exclude and are not processed: \(shown)",
                       metadata: ["not_matched": "\(paths.count)"])
    }

    /// A queued or in-flight document whose file was touched: same content → remember the new mtime; changed
    /// content while still only queued → the queued row takes the new content. In flight: left for the next scan.
    private func refresh(_ existing: DocumentRecord, with file: InboxFile) async throws -> DocumentRecord? {
        // A document whose result is stored keeps the content it was run with; a new content becomes a new version
        // once that one is settled.
        guard existing.state == .pending || existing.state == .failed, !existing.resultStored, !file.isSymlink,
              !file.hasInvalidName else { return nil }
        guard let pinned = try? PinnedFile(path: file.absolutePath), pinned.identity.matches(file.identity),
              let sha = try? pinned.sha256() else { return nil }
        var changes: [DocumentChange] = [.fileIdentity(pinned.identity)]
        if sha != existing.sha256 {
            changes += [.sha256(sha), .uploadFileID(nil)]
            logger.info("\(file.relativePath) changed while queued; the new content will be sent",
                        metadata: ["path": "\(file.relativePath)", "document": .stringConvertible(existing.id)])
        }
        return try? await ledger.update(existing.id, in: existing.state, changes)
    }

    /// New documents inserted per transaction by a scan (issue 14).
    static let batchSize = 256

    /// What ``record(_:)`` did with a file.
    private enum Recorded {
        /// Its row (nil when the file changed or vanished since the scan saw it: the next scan looks again).
        case recorded(DocumentRecord?)
        /// A plain new `pending` document, to be inserted with the scan's others: no copy of succeeded content,
        /// no result or unresolved run of this content in the outbox (checked before, not after, its insert).
        case batched(NewDocument)
    }

    /// Records one new file version (or leaves it to the scan's batch insert).
    private func record(_ file: InboxFile) async throws -> Recorded {
        var batched: NewDocument?
        let document = try await recordOne(file, batched: &batched)
        if let batched { return .batched(batched) }
        return .recorded(document)
    }

    /// Records one new file version and returns its row (nil when the file changed or vanished since the scan
    /// saw it: the next scan looks again once it settles), or sets `batched` to a plain new document left to the
    /// scan's batch insert.
    private func recordOne(_ file: InboxFile, batched: inout NewDocument?) async throws -> DocumentRecord? {
        if file.hasInvalidName {
            return try await reject(file, sha256: nil, RecordedError(errorClass: "rejected", code: "name_not_utf8",
                message: "the file name is not valid UTF-8 (shown with \\x escapes); rename it to be processed"), identity: file.identity)
        }
        if file.isSymlink {
            return try await reject(file, sha256: nil, RecordedError(errorClass: "rejected", code: "symlink",
                message: "symbolic links are never followed; copy or move the file itself into the inbox"), identity: file.identity)
        }
        // Opened once, without following links and without blocking; hashed through that descriptor.
        let pinned: PinnedFile
        do {
            pinned = try PinnedFile(path: file.absolutePath)
        } catch {
            if error.code == .missing { return nil }
            return try await reject(file, sha256: nil, RecordedError(errorClass: "rejected", code: error.code.description,
                                                                     message: error.message), identity: nil)
        }
        guard pinned.identity.matches(file.identity) else { return nil }
        // Also an outbox path that could never be written: a copy of succeeded content would otherwise end in a
        // local failure retried forever (the processor checks again before anything is sent).
        if let problem = preflight.rejection(filename: file.name, size: pinned.identity.size)
            ?? outboxTargets.problem(relativePath: file.relativePath) {
            return try await reject(file, sha256: nil, problem, identity: pinned.identity)
        }
        let sha: String
        do {
            sha = try pinned.sha256()
        } catch {
            if error.code == .changed { return nil }
            return try await reject(file, sha256: nil, RecordedError(errorClass: "rejected", code: "unreadable",
                message: "cannot read the file: \(error.message); check its permissions"), identity: pinned.identity)
        }
        let identity = pinned.identity
        var new = NewDocument(jobID: job.id, path: file.relativePath, sha256: sha, size: identity.size,
                              mtimeNanoseconds: identity.mtimeNanoseconds, device: identity.device, inode: identity.inode)
        // Issue 13: a table is read again whatever it contains; its rows are what is deduplicated.
        let isTable = preflight.rowForm != nil
        new.sameContent = isTable ? .ignore : reprocess ? .waitForProcessing : .waitForProcessingOrSucceeded
        if try await needsOnlyItsRow(file, sha256: sha, isTable: isTable) {
            batched = new
            return nil
        }
        let document = try await ledger.insert(new)
        noteTwin(document, file)
        if !reprocess, !isTable, let original = try await ledger.succeededDocument(jobID: job.id, sha256: sha, excluding: document.id),
           let stored = try await ledger.result(documentID: original.id) {
            return try await skip(document, duplicateOf: original, result: stored)
        }
        // A result for this very content already in the outbox was paid for (by this job under another ledger, or
        // before this ledger lost its rows): it is kept, never run again.
        if !reprocess, !isTable, document.state == .pending, document.duplicateOf == nil,
           let existing = OutboxExistingResult.find(OutboxWriter(outbox: spec.outbox), relativePath: file.relativePath, sha256: sha) {
            _ = try await settler.adoptFromOutbox(document, existing)
            return try await ledger.document(id: document.id) ?? document
        }
        // A run of this very content another ledger sent and left `unresolved` may have been billed: parked the same
        // way here, never sent without `dify-batch retry --state unresolved`.
        if !isTable, document.state == .pending, document.duplicateOf == nil,
           let earlier = OutboxExistingResult.unresolved(OutboxWriter(outbox: spec.outbox), relativePath: file.relativePath, sha256: sha) {
            let message = "a run of this content was sent earlier (job \(earlier.job ?? "?"), recorded as unresolved in \(earlier.path) by a ledger this one does not know) and may have been billed: \(earlier.message) "
                + "This ledger does not send it again; if it did not run, send it with `dify-batch retry --state unresolved \(document.id)`"
            let recovering = try await ledger.transition(document.id, from: .pending, to: .recovering, [])
            try await settler.endWithError(recovering, from: .recovering, to: .unresolved,
                                           error: RecordedError(errorClass: "ambiguous", code: "outcome_unknown", message: message),
                                           difyCode: nil, disposeSource: false, extra: [.outcomeUnknown(true)])
            logger.warning("\(file.relativePath): \(message)", metadata: ["path": "\(file.relativePath)", "document": .stringConvertible(document.id)])
            return try await ledger.document(id: document.id) ?? document
        }
        return document
    }

    /// Issue 14: true when a new document needs nothing but its row, so it can be inserted with the scan's others:
    /// what the single insert below checks right after the insert is found negative before it (no succeeded
    /// document of this content in the job, no result and no unresolved run of this content in the outbox). A
    /// same-content document that succeeds in between is caught by the insert itself (the new row then waits
    /// behind it, `duplicate_of`, and is skipped by ``settleDuplicates()``); with several processes, no other
    /// process can claim the row before these checks, as it could between a single insert and its checks.
    private func needsOnlyItsRow(_ file: InboxFile, sha256 sha: String, isTable: Bool) async throws -> Bool {
        if isTable { return true }
        let outbox = OutboxWriter(outbox: spec.outbox)
        if !reprocess {
            if try await ledger.succeededDocument(jobID: job.id, sha256: sha, excluding: nil) != nil { return false }
            if OutboxExistingResult.find(outbox, relativePath: file.relativePath, sha256: sha) != nil { return false }
        }
        return OutboxExistingResult.unresolved(outbox, relativePath: file.relativePath, sha256: sha) == nil
    }

    private func noteTwin(_ document: DocumentRecord, _ file: InboxFile) {
        if let twin = document.duplicateOf {
            logger.info("\(file.relativePath) has the same content as document \(twin); it waits for that run instead of running again",
                        metadata: ["path": "\(file.relativePath)", "document": "\(document.id)"])
        }
    }

    /// `run` gives up on a file that kept changing for `match.settle_timeout`: `rejected`, code `never_settled`,
    /// an `.error.json`; the file itself is left untouched in the inbox.
    private func neverSettled(_ file: InboxFile) async throws -> DocumentRecord {
        let timeout = HumanDuration.format(spec.match.settleTimeout)
        let error = RecordedError(errorClass: "rejected", code: "never_settled", message: """
            the file kept changing for match.settle_timeout (\(timeout)): its size or modification time changed within \
            every match.settle window (\(HumanDuration.format(spec.match.settle))), so it was never sent. If it is still \
            being written, write it elsewhere and move it into the inbox when complete; if it is a log that is always \
            appended to, exclude it with match.exclude; or raise match.settle_timeout. The file was left as it is
            """)
        return try await reject(file, sha256: nil, error, identity: nil)
    }

    @discardableResult
    private func reject(_ file: InboxFile, sha256: String?, _ error: RecordedError, identity: FileIdentity?) async throws -> DocumentRecord {
        let recorded = identity ?? file.identity
        // Its .error.json first, then its row (a crash in between: the next scan rejects it again).
        // Only a file that was pinned (so its identity is known) is moved to the failed folder.
        let document = try await settler.rejectNew(NewDocument(jobID: job.id, path: file.relativePath, sha256: sha256, size: recorded.size,
                                                              mtimeNanoseconds: recorded.mtimeNanoseconds, state: .rejected, error: error,
                                                              device: recorded.device, inode: recorded.inode),
                                                  error: error, disposeSource: !file.isSymlink && !file.hasInvalidName && identity != nil)
        logger.warning("rejected \(file.relativePath): \(error.code ?? "-"): \(error.message)", metadata: ["path": "\(file.relativePath)", "document": .stringConvertible(document.id)])
        return document
    }

    /// Marks `skipped` every document that waited for a same-content document which has now succeeded, writing
    /// its output from the stored result (also after a crash between that success and this step).
    public func settleDuplicates() async throws {
        for (waiting, original) in try await ledger.heldDuplicates(jobID: job.id) {
            guard let stored = try await ledger.result(documentID: original.id) else { continue }
            do {
                _ = try await skip(waiting, duplicateOf: original, result: stored)
            } catch let error as LedgerError where error.code == .stateChanged {
                continue
            }
        }
    }

    private func skip(_ document: DocumentRecord, duplicateOf original: DocumentRecord, result: StoredResult) async throws -> DocumentRecord {
        _ = try await settler.skipped(document, duplicateOf: original, result: result)
        return try await ledger.document(id: document.id) ?? document
    }
}
