import DifyKit
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The one path that ends a document: outbox file → disposal of the source → ledger state → count in the run →
/// notify. Used by ``DocumentProcessor`` (runs that ended, recoveries, dead documents) and ``JobScanner``
/// (duplicates, rejections).
///
/// A result Dify was paid for is stored in the ledger (`results`, `documents.result_stored`) BEFORE any local
/// work. When local work then fails (outbox not writable, disk full, read-only, a file in the way, a name too
/// long, the ledger busy, disposal refused) the document goes to `failed` with class `local`, the cause as its
/// code (`EACCES`, `ENOSPC`, `SQLITE_BUSY`, ...) and `next_attempt_at` growing with `local_failures`
/// (`retry.base_delay × 2^(n-1)`, at most `retry.max_delay`). Its next claim (also after `dify-batch retry`, even
/// from `dead`) comes back through ``resume(_:)``, which redoes only the local work from the stored result:
/// Dify is never called again for it, and `retry.max_attempts` is not used.
struct DocumentSettler: Sendable {
    let spec: JobSpec
    let jobID: Int64
    /// `workflow`, `completion`, ... as written into result files.
    let appMode: String
    let ledger: any Ledger
    let clock: any PipelineClock
    let runID: Int64?
    let baseLogger: Logger
    let onSettled: @Sendable (DocumentRecord) -> Void
    /// Called with the path when the source there is no longer the version that was processed (issue 11).
    let onSuperseded: @Sendable (String) -> Void
    let outbox: OutboxWriter
    let disposer: SourceDisposer
    let backoff: Backoff

    init(spec: JobSpec, jobID: Int64, appMode: String, ledger: any Ledger, clock: any PipelineClock, runID: Int64?,
         logger: Logger, onSettled: @escaping @Sendable (DocumentRecord) -> Void,
         onSuperseded: @escaping @Sendable (String) -> Void = { _ in }) {
        self.spec = spec
        self.jobID = jobID
        self.appMode = appMode
        self.ledger = ledger
        self.clock = clock
        self.runID = runID
        baseLogger = logger
        self.onSettled = onSettled
        self.onSuperseded = onSuperseded
        outbox = OutboxWriter(outbox: spec.outbox)
        disposer = SourceDisposer(inbox: spec.inbox, afterSuccess: spec.afterSuccess, archive: spec.archive,
                                  failedFolder: spec.failedFolder)
        backoff = Backoff(policy: spec.retry)
    }

    func logger(_ document: DocumentRecord) -> Logger {
        var logger = logger(path: document.path)
        logger[metadataKey: "document"] = .stringConvertible(document.id)
        return logger
    }

    /// The job's logger with the file's path (a file with no row yet).
    func logger(path: String) -> Logger {
        var logger = baseLogger
        logger[metadataKey: "job"] = "\(spec.name)"
        logger[metadataKey: "path"] = "\(path)"
        return logger
    }

    // MARK: - Success

    /// A run that succeeded (`status` is `succeeded` or `partial-succeeded`), from the response or found again by
    /// recovery. `document` carries the run's ids. The result is stored first (in one transaction with `writes`,
    /// the run's own writes not yet made: its attempt's end, ids and usage; issue 14); if even that fails (after
    /// three tries) the error is thrown and the document stays in flight, where recovery finds it again.
    func succeeded(_ document: DocumentRecord, from state: DocumentState, status: String,
                   outputs: [String: JSONValue], with writes: [LedgerWrite] = []) async throws -> DocumentOutcome {
        let json = JSONValue.object(outputs).jsonString()
        _ = try await withLedgerRetries {
            try await ledger.write(writes + [.storeResult(documentID: document.id, status: status, outputsJSON: json)])
        }
        var stored = document
        stored.resultStored = true
        return try await complete(stored, from: state, status: status, outputs: outputs, original: nil)
    }

    /// A new document whose content already succeeded as `original`: the result is copied to it (so a failure
    /// below is retried from it like any stored result), then it ends `skipped` with the output written from it.
    func skipped(_ document: DocumentRecord, duplicateOf original: DocumentRecord, result: StoredResult) async throws -> DocumentOutcome {
        let marked = try await ledger.update(document.id, in: document.state, [.duplicateOf(original.id)])
        try await withLedgerRetries {
            try await ledger.storeResult(documentID: document.id, status: result.status, outputsJSON: result.outputsJSON)
        }
        var stored = marked
        stored.resultStored = true
        let outputs = (try? JSONValue.parse(result.outputsJSON))?.objectValue ?? [:]
        return try await complete(stored, from: marked.state, status: result.status, outputs: outputs, original: original)
    }

    /// A new (`pending`) document whose result for this very content is already in the outbox
    /// (``OutboxExistingResult``): that result is stored as its own and the file is kept as it is; the source is
    /// disposed of per `after_success`; the document ends `skipped`. Nothing is sent. A disposal that fails is a
    /// local failure, retried from the stored result like any other.
    func adoptFromOutbox(_ document: DocumentRecord, _ existing: OutboxExistingResult) async throws -> DocumentOutcome {
        let json = JSONValue.object(existing.outputs).jsonString()
        try await withLedgerRetries {
            try await ledger.storeResult(documentID: document.id, status: existing.status, outputsJSON: json)
        }
        var stored = document
        stored.resultStored = true
        do {
            try disposeAfterSuccess(stored)
        } catch {
            return try await localFailure(stored, from: document.state, error, step: "dispose of the source (after_success: \(spec.afterSuccess.rawValue))")
        }
        var writes: [LedgerWrite] = [.transition(document.id, from: document.state, to: .skipped,
                                                 [.outputPath(existing.path), .lastError(nil), .nextAttemptAt(nil), .localFailures(0)])]
        if let runID { writes.append(.countInRun(runID: runID, jobID: jobID, state: .skipped)) }
        let done: DocumentRecord
        do {
            done = try await ledger.write(writes).document!
        } catch let error as LedgerError where error.code == .stateChanged || error.code == .notFound {
            throw error
        } catch {
            return try await localFailure(stored, from: document.state, error, step: "record the skipped document in the ledger")
        }
        onSettled(done)
        logger(document).info("skipped \(document.path): its result for this content is already in the outbox (\(existing.path), job \(existing.job ?? "?"), finished \(existing.finishedAt ?? "?")); not sent again")
        return .settled(.skipped)
    }

    /// Local work again for a document whose result is stored (claimed, recovered or requeued with
    /// `resultStored`): rewrites the outbox file and retries disposal from the stored result. Never calls Dify.
    func resume(_ document: DocumentRecord) async throws -> DocumentOutcome {
        guard let stored = try await ledger.result(documentID: document.id) else {
            throw LedgerError(.notFound, "document \(document.id) is marked as having a stored result, but the ledger has none")
        }
        let outputs = (try? JSONValue.parse(stored.outputsJSON))?.objectValue ?? [:]
        var original: DocumentRecord?
        if let id = document.duplicateOf { original = try await ledger.document(id: id) }
        logger(document).info("settling again from the stored result (local failure \(document.localFailures)); Dify is not called")
        return try await complete(document, from: document.state, status: stored.status, outputs: outputs, original: original)
    }

    /// Outbox → disposal → ledger → count → notify. Any failure after the result was stored ends in ``localFailure``.
    private func complete(_ document: DocumentRecord, from state: DocumentState, status: String,
                          outputs: [String: JSONValue], original: DocumentRecord?) async throws -> DocumentOutcome {
        let target: DocumentState = original == nil ? .succeeded : .skipped
        // A shared ledger (PostgreSQL): nothing is written for a document another process took over after this
        // one was stopped or cut off past its lease (throws leaseLost; that process writes the result).
        if state.isInFlight { try await ledger.confirmLease(documentID: document.id) }
        // Issue 13: a row has no outbox file of its own; its table's files are written once all its rows ended.
        if let tableID = document.rowOf {
            let done = try await ledger.transition(document.id, from: state, to: target, [.lastError(nil), .nextAttemptAt(nil), .localFailures(0)])
            await countAndReport(done)
            _ = try await RowsFileSettler(settler: self).finishIfComplete(tableID: tableID)
            return .settled(target)
        }
        let outputPath: String
        do {
            outputPath = try outbox.writeSuccess(try await successRecord(document, status: status, outputs: outputs, original: original))
        } catch {
            return try await localFailure(document, from: state, error, step: "write the result file into the outbox \(spec.outbox)")
        }
        do {
            try disposeAfterSuccess(document)
        } catch {
            return try await localFailure(document, from: state, error, step: "dispose of the source (after_success: \(spec.afterSuccess.rawValue))")
        }
        let done: DocumentRecord
        do {
            // The final state and its count in this run: one transaction (issue 14).
            var writes: [LedgerWrite] = [.transition(document.id, from: state, to: target,
                                                     [.outputPath(outputPath), .lastError(nil), .nextAttemptAt(nil), .localFailures(0)])]
            if let runID { writes.append(.countInRun(runID: runID, jobID: jobID, state: target)) }
            done = try await ledger.write(writes).document!
        } catch let error as LedgerError where error.code == .stateChanged || error.code == .notFound {
            throw error
        } catch {
            return try await localFailure(document, from: state, error, step: "record the \(target.rawValue) document in the ledger")
        }
        onSettled(done)
        // The document's logger (three metadata entries) is built only when the line is written (issue 14).
        if baseLogger.logLevel <= .info {
            if let original {
                logger(document).info("skipped \(document.path): same content as \(original.path), output written from the stored result")
            } else {
                logger(document).info("succeeded", metadata: ["output": "\(outputPath)"])
            }
        }
        return .settled(target)
    }

    private func successRecord(_ document: DocumentRecord, status: String, outputs: [String: JSONValue],
                               original: DocumentRecord?) async throws -> SuccessRecord {
        let source = SourceInfo(path: document.path, sha256: document.sha256, bytes: document.size)
        if let original {
            return SuccessRecord(status: status, job: spec.name, source: source, appMode: appMode, outputs: outputs, usage: nil,
                                 uploadFileID: original.uploadFileID, workflowRunID: original.workflowRunID,
                                 messageID: original.messageID, taskID: original.taskID, attempts: 0, elapsedMilliseconds: 0,
                                 finishedAt: clock.now(), duplicateOf: original.path)
        }
        return SuccessRecord(status: status, job: spec.name, source: source, appMode: appMode, outputs: outputs,
                             usage: try await ledger.usage(documentID: document.id),
                             uploadFileID: document.uploadFileID, workflowRunID: document.workflowRunID,
                             messageID: document.messageID, taskID: document.taskID, attempts: document.attempts,
                             elapsedMilliseconds: Int64(clock.now().timeIntervalSince(document.createdAt) * 1000),
                             finishedAt: clock.now(), duplicateOf: nil)
    }

    /// `after_success`, only for the version that was processed (its recorded device, inode, size and mtime); a
    /// source that is already gone (disposed of by an earlier try) is not a failure, and neither is a new version
    /// at the path: it is left alone and processed in its own right.
    func disposeAfterSuccess(_ document: DocumentRecord) throws {
        do {
            try disposer.disposeAfterSuccess(relativePath: document.path, expected: document.identity)
        } catch let error as FileOperationError
                    where error.errorNumber == ENOENT && error.path == SafeRelativePath.join(spec.inbox, document.path) {
            logger(document).info("the source is no longer in the inbox; nothing to dispose of")
        } catch let error as FileOperationError where error.errorNumber == ESTALE {
            logger(document).warning("\(error.reason); not disposed of")
            onSuperseded(document.path)
        }
    }

    /// `failed` with class `local`, the cause and a growing `next_attempt_at`; the stored result stays.
    func localFailure(_ document: DocumentRecord, from state: DocumentState, _ error: any Error,
                              step: String) async throws -> DocumentOutcome {
        if error is CancellationError { throw error }
        let failures = document.localFailures + 1
        let delay = backoff.ceiling(afterAttempt: failures)
        let recorded = LocalFailure.recorded(error, step: step, delay: delay)
        let moved = try await withLedgerRetries {
            try await ledger.transition(document.id, from: state, to: .failed,
                                        [.nextAttemptAt(clock.now().addingTimeInterval(delay.seconds)), .lastError(recorded),
                                         .localFailures(failures)])
        }
        logger(document).error("\(recorded.message)", metadata: ["code": "\(recorded.code ?? "-")", "local_failures": "\(failures)"])
        onSettled(moved)
        return .settled(.failed)
    }

    // MARK: - Errors

    /// Ends a document with an `.error.json`: `dead` (out of attempts, or permanently failed) or `rejected` (never
    /// sent). A document already in `target` (the scanner inserts rejections as such) only gets its file. When the
    /// error file cannot be written the state is recorded anyway and the cause is logged and appended to the
    /// recorded message (the document has no `output_path` then). A failed folder that is set receives the source.
    /// `extra` changes are made in the same ledger statement (issue 10: `unresolved` sets `outcome_unknown`).
    @discardableResult
    func endWithError(_ document: DocumentRecord, from state: DocumentState, to target: DocumentState, error: RecordedError,
                      difyCode: String?, disposeSource: Bool = true, extra: [DocumentChange] = []) async throws -> DocumentRecord {
        var recorded = error
        var outputPath: String?
        if state.isInFlight { try await ledger.confirmLease(documentID: document.id) }
        if let tableID = document.rowOf {
            // Issue 13: a row's error goes into its table's outbox files, not an `.error.json` of its own.
            let moved = state == target
                ? try await ledger.update(document.id, in: target, [.lastError(recorded)] + extra)
                : try await ledger.transition(document.id, from: state, to: target, [.lastError(recorded), .nextAttemptAt(nil)] + extra)
            await countAndReport(moved)
            if moved.state.isTerminal { _ = try await RowsFileSettler(settler: self).finishIfComplete(tableID: tableID) }
            return moved
        }
        outputPath = writeErrorFile(status: target, path: document.path, sha256: document.sha256, bytes: document.size,
                                    attempts: document.attempts, error: &recorded, difyCode: difyCode, logger: logger(document))
        let moved: DocumentRecord
        if state == target {
            moved = try await ledger.update(document.id, in: target, [.outputPath(outputPath), .lastError(recorded)] + extra)
        } else {
            moved = try await ledger.transition(document.id, from: state, to: target,
                                                [.lastError(recorded), .outputPath(outputPath), .nextAttemptAt(nil)] + extra)
        }
        await countAndReport(moved)
        if disposeSource { _ = try? disposer.disposeAfterFailure(relativePath: document.path, expected: document.identity) }
        return moved
    }

    /// A file the scan rejects before it has a row (too big, a type or outbox path that can never work, a symlink,
    /// ...). Its `.error.json` is written FIRST, then the row is inserted `rejected` and given that path: a crash in
    /// between leaves the file unrecorded, and the next scan rejects it again. The other order (row, then file)
    /// left a `rejected` row without its outcome file for good when the process died in between, since nothing
    /// settles a terminal row again (attack4 Scripts/attack/reject-kill.sh: one file per kill -9 during a scan).
    func rejectNew(_ new: NewDocument, error: RecordedError, disposeSource: Bool) async throws -> DocumentRecord {
        var recorded = error
        let outputPath = writeErrorFile(status: .rejected, path: new.path, sha256: new.sha256, bytes: new.size, attempts: 0,
                                        error: &recorded, difyCode: nil, logger: logger(path: new.path))
        var row = new
        row.state = .rejected
        row.error = recorded
        row.outputPath = outputPath  // in the inserting statement: no window with the row but not its path
        var document = try await ledger.insert(row)
        if let outputPath, document.state == .rejected, document.outputPath != outputPath {
            // An existing row of this file version was returned (another process recorded it meanwhile).
            document = try await ledger.update(document.id, in: .rejected, [.outputPath(outputPath)])
        }
        await countAndReport(document)
        if disposeSource { _ = try? disposer.disposeAfterFailure(relativePath: document.path, expected: document.identity) }
        return document
    }

    /// Writes the `.error.json` of a document ending `status`; returns its path, or nil when it could not be
    /// written (the cause is then appended to `error`'s message and logged: the document still ends in the ledger).
    private func writeErrorFile(status: DocumentState, path: String, sha256: String?, bytes: Int64, attempts: Int,
                                error: inout RecordedError, difyCode: String?, logger: Logger) -> String? {
        do {
            return try outbox.writeFailure(FailureRecord(
                status: status.rawValue, job: spec.name, source: SourceInfo(path: path, sha256: sha256, bytes: bytes),
                errorCode: error.code, errorMessage: error.message, httpStatus: error.httpStatus, difyCode: difyCode,
                attempts: attempts, finishedAt: clock.now()))
        } catch let failure {
            let cause = LocalFailure.code(failure)
            error.message += " (the .error.json could not be written: \(cause): \(failure))"
            logger.error("cannot write the error file of \(path) (\(cause)): \(failure); the document is \(status.rawValue) in the ledger")
            return nil
        }
    }

    // MARK: - Shared

    private func countAndReport(_ document: DocumentRecord) async {
        if let runID {
            do {
                try await withLedgerRetries { try await ledger.countInRun(runID: runID, jobID: jobID, state: document.state) }
            } catch {
                logger(document).warning("could not count the document in run \(runID) (\(LocalFailure.code(error))): \(error)")
            }
        }
        onSettled(document)
    }

    /// Three tries, 100 ms then 400 ms apart, for a ledger write whose failure would leave a paid document
    /// without a record (the busy timeout has already waited inside each try).
    private func withLedgerRetries<T>(_ body: () async throws -> T) async throws -> T {
        var pause = Duration.milliseconds(100)
        for _ in 1..<3 {
            do {
                return try await body()
            } catch let error as LedgerError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                try await clock.sleep(for: pause)
                pause *= 4
            }
        }
        return try await body()
    }
}
