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
    let runID: Int64?
    let onSettled: @Sendable (DocumentRecord) -> Void
    let scanner: InboxScanner
    let settler: DocumentSettler
    private let tracker: Mutex<SettleTracker>
    private let reported = Mutex<Set<String>>([])
    /// The newest version of every path this job knows, loaded from the ledger on the first scan and kept up to
    /// date here, so a rescan of an unchanged inbox costs no ledger query.
    private let known = Mutex<[String: KnownFile]?>(nil)

    public init(spec: JobSpec, job: JobRecord, preflight: JobPreflight, ledger: any Ledger, clock: any PipelineClock,
                logger: Logger, reprocess: Bool, runID: Int64?, onSettled: @escaping @Sendable (DocumentRecord) -> Void) {
        self.spec = spec
        self.job = job
        self.preflight = preflight
        self.ledger = ledger
        self.clock = clock
        self.logger = logger
        self.reprocess = reprocess
        self.runID = runID
        self.onSettled = onSettled
        let excluded = [spec.outbox, spec.archive] + (spec.failedFolder.map { [$0] } ?? [])
        scanner = InboxScanner(inbox: spec.inbox, rules: spec.match, excluding: excluded)
        settler = DocumentSettler(spec: spec, jobID: job.id, appMode: preflight.mode.rawValue, ledger: ledger, clock: clock,
                                  runID: runID, logger: logger, onSettled: onSettled)
        tracker = Mutex(SettleTracker(settle: spec.match.settle))
    }

    /// Whether some files were seen but have not settled yet.
    public var hasUnsettledFiles: Bool { tracker.withLock { $0.pendingCount > 0 } }

    /// When the next unsettled file may settle.
    public var nextSettleInstant: ContinuousClock.Instant? { tracker.withLock { $0.nextSettleInstant() } }

    /// Scans the inbox once and records what it found. Returns the number of new document versions.
    @discardableResult
    public func scan() async throws -> Int {
        let report = try scanner.scanReport()
        for problem in report.problems {
            let isNew = reported.withLock { $0.insert(problem.relativePath).inserted }
            if isNew { logger.warning("cannot read \(problem.relativePath) in the inbox: \(problem.message)", metadata: ["path": "\(problem.relativePath)"]) }
        }
        let now = clock.instant()
        let wallNow = clock.now()
        let settled = tracker.withLock { $0.observe(report.files, now: now, wallNow: wallNow) }
        guard !settled.isEmpty else { return 0 }
        var cache: [String: KnownFile]
        if let loaded = known.withLock({ $0 }) {
            cache = loaded
        } else {
            cache = try await ledger.knownFiles(jobID: job.id)
        }
        defer { known.withLock { [cache] in $0 = cache } }
        var added = 0
        for file in settled {
            if let cached = cache[file.relativePath] {
                if cached.size == file.size && cached.mtimeNanoseconds == file.mtimeNanoseconds { continue }
                // Changed since we last looked: decide on the ledger's current view of that document.
                if let current = try await ledger.document(id: cached.id), !current.state.isTerminal {
                    cache[file.relativePath] = KnownFile(try await refresh(current, with: file) ?? current)
                    continue
                }
            }
            if let document = try await record(file) {
                cache[file.relativePath] = KnownFile(document)
                added += 1
            }
        }
        return added
    }

    /// A queued or in-flight document whose file was touched: same content → remember the new mtime; changed
    /// content while still only queued → the queued row takes the new content. In flight: left for the next scan.
    private func refresh(_ existing: DocumentRecord, with file: InboxFile) async throws -> DocumentRecord? {
        guard existing.state == .pending || existing.state == .failed else { return nil }
        guard let sha = try? FileHasher.sha256(path: file.absolutePath) else { return nil }
        var changes: [DocumentChange] = [.size(file.size), .mtimeNanoseconds(file.mtimeNanoseconds)]
        if sha != existing.sha256 {
            changes += [.sha256(sha), .uploadFileID(nil)]
            logger.info("\(file.relativePath) changed while queued; the new content will be sent",
                        metadata: ["path": "\(file.relativePath)", "document": .stringConvertible(existing.id)])
        }
        return try? await ledger.update(existing.id, in: existing.state, changes)
    }

    /// Records one new file version and returns its row.
    private func record(_ file: InboxFile) async throws -> DocumentRecord? {
        if file.isSymlink {
            return try await reject(file, sha256: nil, RecordedError(errorClass: "rejected", code: "symlink",
                message: "symbolic links are never followed; copy or move the file itself into the inbox"))
        }
        if let problem = preflight.rejection(filename: file.name, size: file.size) {
            return try await reject(file, sha256: nil, problem)
        }
        let sha: String
        do {
            sha = try FileHasher.sha256(path: file.absolutePath)
        } catch {
            return try await reject(file, sha256: nil, RecordedError(errorClass: "rejected", code: "unreadable",
                message: "cannot read the file: \(error); check its permissions"))
        }
        let document = try await ledger.insert(NewDocument(jobID: job.id, path: file.relativePath, sha256: sha, size: file.size,
                                                           mtimeNanoseconds: file.mtimeNanoseconds))
        if !reprocess, let original = try await ledger.succeededDocument(jobID: job.id, sha256: sha, excluding: document.id),
           let stored = try await ledger.result(documentID: original.id) {
            return try await skip(document, duplicateOf: original, result: stored)
        }
        return document
    }

    @discardableResult
    private func reject(_ file: InboxFile, sha256: String?, _ error: RecordedError) async throws -> DocumentRecord {
        let document = try await ledger.insert(NewDocument(jobID: job.id, path: file.relativePath, sha256: sha256, size: file.size,
                                                           mtimeNanoseconds: file.mtimeNanoseconds, state: .rejected, error: error))
        let settled = try await settler.endWithError(document, from: .rejected, to: .rejected, error: error, difyCode: nil,
                                                     disposeSource: !file.isSymlink)
        logger.warning("rejected \(file.relativePath): \(error.code ?? "-"): \(error.message)", metadata: ["path": "\(file.relativePath)", "document": .stringConvertible(document.id)])
        return settled
    }

    private func skip(_ document: DocumentRecord, duplicateOf original: DocumentRecord, result: StoredResult) async throws -> DocumentRecord {
        _ = try await settler.skipped(document, duplicateOf: original, result: result)
        return try await ledger.document(id: document.id) ?? document
    }
}
