import DifyKit
import Foundation

/// Turns a claimed table file of a `rows: true` job into one ledger document per data row (issue 13), once:
/// read (UTF-8 only) → header checked against the app's form → each row validated → all rows inserted in one
/// transaction (`pending`, or `rejected` with the reason; a row whose inputs another row of the job already ran
/// or is running waits for it and ends `skipped`). The table's own document then rests `running` until its rows
/// have all ended, when ``RowsFileSettler`` writes the outbox files. Running it again (after a crash) inserts only
/// the rows that are missing; a table whose header cannot be used is `rejected` as a whole with an `.error.json`.
struct RowsExpander: Sendable {
    let processor: DocumentProcessor

    var context: JobContext { processor.context }
    var ledger: any Ledger { processor.ledger }

    func expand(_ claimed: DocumentRecord) async throws -> DocumentOutcome {
        let path = processor.sourcePath(claimed)
        let read: Result<Data, PinnedFileError> = Result { () throws(PinnedFileError) -> Data in
            let pinned = try PinnedFile(path: path)
            guard pinned.identity.matches(claimed.identity) else {
                throw PinnedFileError(code: .changed, path: path,
                                      message: "the table was replaced or changed before its rows were read; drop it in again")
            }
            return try pinned.contents()
        }
        let data: Data
        switch read {
        case .success(let bytes): data = bytes
        case .failure(let error):
            return try await processor.reject(claimed, from: claimed.state, code: error.code.description, message: error.message)
        }
        let table: RowTable
        do {
            table = try RowTable.parse(data, format: RowTable.format(forPath: claimed.path) ?? .csv)
        } catch {
            return try await processor.reject(claimed, from: claimed.state, code: error.code, message: error.message)
        }
        let validator = validator()
        let header = validator.checkHeader(table.columns)
        if let reason = header.rejection {
            return try await processor.reject(claimed, from: claimed.state, code: "missing_required_column", message: reason)
        }
        var logger = processor.logger(claimed)
        logger[metadataKey: "rows"] = "\(table.rows.count)"
        if !header.unknown.isEmpty {
            logger.warning("columns no input variable of the app takes are not sent: \(header.unknown.joined(separator: ", "))")
        }
        let existing = Set(try await ledger.documents(matching: DocumentFilter(rowOf: claimed.id)).compactMap(\.rowIndex))
        // A table whose `.jsonl`/`.csv` cannot be written would run every row for outputs never written: refused
        // before its rows exist (a table found expanded after a crash goes on; its rows may have run).
        if existing.isEmpty, let problem = processor.outboxTargets.problem(relativePath: claimed.path) {
            return try await processor.reject(claimed, from: claimed.state, code: problem.code ?? OutboxTargets.blockedCode, message: problem.message)
        }
        var new: [NewDocument] = []
        for row in table.rows where !existing.contains(row.index) {
            new.append(document(for: row, of: claimed, columns: table.columns, validator: validator))
        }
        let inserted = try await ledger.insertRows(new)
        let rejected = inserted.filter { $0.state == .rejected }
        for row in rejected {
            if let runID = context.runID { try await ledger.countInRun(runID: runID, jobID: context.job.id, state: .rejected) }
            context.onSettled(row)
            processor.logger(row).warning("rejected: \(row.lastError?.message ?? "")")
        }
        logger.info("\(table.rows.count) row(s): \(inserted.count - rejected.count) queued, \(rejected.count) rejected\(existing.isEmpty ? "" : ", \(existing.count) recorded earlier")")
        var file = claimed
        if file.state == .uploading { file = try await ledger.transition(file.id, from: .uploading, to: .uploaded, []) }
        file = try await ledger.transition(file.id, from: .uploaded, to: .running, [.lastError(nil)])
        // Rows whose inputs already ran for this job end `skipped` now, from that run's stored result.
        for row in inserted where row.duplicateOf != nil {
            guard let originalID = row.duplicateOf, let original = try await ledger.document(id: originalID), original.state == .succeeded,
                  let stored = try await ledger.result(documentID: originalID) else { continue }
            do {
                _ = try await processor.settler.skipped(row, duplicateOf: original, result: stored)
            } catch let error as LedgerError where error.code == .stateChanged {
                continue
            }
        }
        return try await RowsFileSettler(settler: processor.settler).finishIfComplete(tableID: file.id)
    }

    func validator() -> RowValidator {
        let inbox = context.spec.inbox
        return RowValidator(form: context.preflight.rowForm ?? [], defaults: context.spec.dify.inputs.mapValues(\.json),
                            isChat: context.preflight.isChat, specQuery: context.spec.dify.query,
                            fileExists: { relative in
                                var isDirectory: ObjCBool = false
                                return FileManager.default.fileExists(atPath: SafeRelativePath.join(inbox, relative), isDirectory: &isDirectory)
                                    && !isDirectory.boolValue
                            })
    }

    private func document(for row: RowTable.Row, of table: DocumentRecord, columns: [String], validator: RowValidator) -> NewDocument {
        let verdict = validator.validate(row)
        let payload = try? verdict.get()
        let record = RowRecord(columns: columns, cells: row.values, payload: payload)
        let json = record.json
        var new = NewDocument(jobID: table.jobID, path: "\(table.path)#\(row.index)", sha256: payload.map { $0.sha256(fileDigests: fileDigests($0)) },
                              size: Int64(json.utf8.count), mtimeNanoseconds: table.mtimeNanoseconds)
        if case .failure(let rejection) = verdict {
            new.state = .rejected
            new.error = RecordedError(errorClass: "rejected", code: rejection.code, message: "row \(row.index): \(rejection.message)")
        } else {
            new.sameContent = .waitForProcessingOrSucceeded
        }
        new.rowOf = table.id
        new.rowIndex = row.index
        new.rowInputs = json
        return new
    }

    /// The sha256 of every inbox file the row's file cells name (URLs are not read), for its dedupe key. A file
    /// that cannot be read gets a key of its own (it is rejected when the row uploads it), never another row's.
    private func fileDigests(_ payload: RowPayload) -> [String: String] {
        var digests: [String: String] = [:]
        for variable in context.preflight.rowForm ?? [] where variable.isFile {
            guard let value = payload.inputs[variable.variable] else { continue }
            for reference in value.arrayValue?.compactMap(\.stringValue) ?? value.stringValue.map({ [$0] }) ?? []
            where !RowPayload.isRemoteURL(reference) {
                let digest = try? PinnedFile(path: SafeRelativePath.join(context.spec.inbox, reference)).sha256()
                digests[reference] = digest ?? "unreadable \(UUID().uuidString)"
            }
        }
        return digests
    }
}
