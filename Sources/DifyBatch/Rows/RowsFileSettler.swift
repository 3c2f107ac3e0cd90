import DifyKit
import Foundation

/// Ends a table file of a `rows: true` job once every one of its rows has ended (issue 13): writes
/// `<outbox>/<path>.jsonl` and `.csv` (``RowsOutput``), applies `after_success` to the table, and records the
/// table's document `succeeded`. Called after each row ends, after the rows were inserted, and by recovery for a
/// table left `running`; whoever comes last does the work (a second caller finds the table already ended). A
/// failure to write or dispose leaves the table `failed` (class `local`); its next claim only redoes this.
struct RowsFileSettler: Sendable {
    let settler: DocumentSettler

    var ledger: any Ledger { settler.ledger }

    /// - Parameter resume: the table was left `recovering` by a process that stopped while it wrote the files
    ///   (crash recovery only); otherwise `recovering` means another worker is writing them right now.
    func finishIfComplete(tableID: Int64, resume: Bool = false) async throws -> DocumentOutcome {
        guard var table = try await ledger.document(id: tableID) else { return .interrupted }
        if table.state == .recovering && resume {
            do {
                table = try await ledger.transition(table.id, from: .recovering, to: .running, [])
            } catch let error as LedgerError where error.code == .stateChanged {
                return .settled(.recovering)
            }
        }
        if table.state == .succeeded { return try await rewrite(table) }
        guard table.state == .running else { return .settled(table.state) }
        // Called after every row: one indexed probe for a row still open, before all rows are read once.
        let open = Set(DocumentState.allCases.filter { !$0.isTerminal })
        guard try await ledger.documents(matching: DocumentFilter(states: open, limit: 1, rowOf: tableID)).isEmpty else {
            return .settled(table.state)
        }
        let rows = try await ledger.documents(matching: DocumentFilter(rowOf: tableID))
        guard rows.allSatisfy({ $0.state.isTerminal }) else { return .settled(table.state) }
        // Rows ending at the same time all get here: the one that moves the table to `recovering` writes the files.
        do {
            table = try await ledger.transition(table.id, from: .running, to: .recovering, [])
        } catch let error as LedgerError where error.code == .stateChanged {
            return .settled(.running)
        }
        let output = try await render(rows)
        let outputPath: String
        do {
            outputPath = try settler.outbox.writeRows(relativePath: table.path, jsonl: output.jsonl(), csv: try output.csv())
            try settler.disposeAfterSuccess(table)
        } catch {
            return try await settler.localFailure(table, from: .recovering, error, step: "write the rows' results into the outbox \(settler.spec.outbox)")
        }
        let done = try await ledger.transition(table.id, from: .recovering, to: .succeeded,
                                               [.outputPath(outputPath), .lastError(nil), .nextAttemptAt(nil), .localFailures(0)])
        // Not reported as a settled document: run summaries and progress count the table's rows, not the table.
        let counts = Dictionary(grouping: rows, by: \.state).mapValues(\.count)
        let summary = counts.keys.sorted().map { "\(counts[$0]!) \($0.rawValue)" }.joined(separator: ", ")
        settler.logger(done).info("all \(rows.count) row(s) ended (\(summary))", metadata: ["output": "\(outputPath)"])
        return .settled(.succeeded)
    }

    /// A row of a table that already ended was sent again (`dify-batch retry path#row`): once its rows have all
    /// ended again, the table's files are rewritten (the table stays `succeeded`; its source was disposed of).
    private func rewrite(_ table: DocumentRecord) async throws -> DocumentOutcome {
        let open = Set(DocumentState.allCases.filter { !$0.isTerminal })
        guard try await ledger.documents(matching: DocumentFilter(states: open, limit: 1, rowOf: table.id)).isEmpty else {
            return .settled(.succeeded)
        }
        let output = try await render(try await ledger.documents(matching: DocumentFilter(rowOf: table.id)))
        try settler.outbox.writeRows(relativePath: table.path, jsonl: output.jsonl(), csv: try output.csv())
        settler.logger(table).info("the table's files were written again after its rows were retried")
        return .settled(.succeeded)
    }

    private func render(_ rows: [DocumentRecord]) async throws -> RowsOutput {
        var columns: [String] = []
        var lines: [RowsOutput.Line] = []
        for row in rows {
            let record = row.rowInputs.flatMap(RowRecord.decode)
            if columns.isEmpty, let record { columns = record.columns }
            var line = RowsOutput.Line(row: row.rowIndex ?? 0, status: row.state.rawValue, cells: record?.cells ?? [:])
            var source = row
            if let originalID = row.duplicateOf, row.state == .skipped, let original = try await ledger.document(id: originalID) {
                source = original
                line.dify["duplicate_of"] = .string(original.path)
            }
            if [.succeeded, .skipped].contains(row.state), let stored = try await ledger.result(documentID: row.id) {
                line.outputs = (try? JSONValue.parse(stored.outputsJSON))?.objectValue ?? [:]
            }
            if row.state == .succeeded { line.usage = try await ledger.usage(documentID: row.id)?.outboxJSON }
            if let id = source.workflowRunID { line.dify["workflow_run_id"] = .string(id) }
            if let id = source.messageID { line.dify["message_id"] = .string(id) }
            if let id = source.taskID { line.dify["task_id"] = .string(id) }
            if !row.state.isSuccessful { line.error = row.lastError }
            lines.append(line)
        }
        return RowsOutput(columns: columns, lines: lines)
    }
}

extension DocumentState {
    /// `succeeded` or `skipped` (the result came from a run of the same inputs).
    var isSuccessful: Bool { self == .succeeded || self == .skipped }
}
