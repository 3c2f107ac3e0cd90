import Foundation
import GRDB

/// The SQLite ledger's documents, decoded by column index from a statement that selects ``columns`` in order
/// (``SQLiteLedger/documentSelect`` or ``SQLiteLedger/documentReturning``; issue 14).
///
/// GRDB's rows find a column by name through a table of the statement's lowercased column names, which it builds
/// for every execution of a statement: 38 names per document query or `UPDATE … RETURNING`, 6–8 times per document
/// (11 % of the ledger's CPU in `dify-batch-bench ledger-ops`). Decoding by position needs none of it.
final class DocumentCursor: DatabaseCursor {
    typealias Element = DocumentRecord

    /// The `documents` columns every document query returns, in this order, followed by the job's name.
    static let columns = [
        "id", "job_id", "path", "sha256", "size", "mtime_ns", "state", "attempts", "next_attempt_at", "upload_file_id",
        "workflow_run_id", "message_id", "task_id", "run_sent_at", "duplicate_runs", "duplicate_of", "output_path",
        "last_error_class", "last_error_code", "last_error_message", "last_http_status", "created_at", "updated_at",
        "finished_at", "run_posts", "outcome_unknown", "dify_clock_offset_ms", "paused_at", "device", "inode",
        "text_sha256", "text_length", "result_stored", "local_failures", "row_of", "row_index", "row_inputs",
    ]

    var _isDone = false
    let _statement: Statement

    /// Binds `arguments` to `statement` (reset first) for one iteration.
    init(_ statement: Statement, _ arguments: StatementArguments) throws {
        _statement = statement
        try statement.setArguments(arguments)
    }

    func _element(sqliteStatement: SQLiteStatement) throws -> DocumentRecord {
        func value(_ index: CInt) -> DatabaseValue { DatabaseValue(sqliteStatement: sqliteStatement, index: index) }
        func int64(_ index: CInt) -> Int64? { Int64.fromDatabaseValue(value(index)) }
        func int(_ index: CInt) -> Int? { int64(index).map { Int($0) } }
        func text(_ index: CInt) -> String? { String.fromDatabaseValue(value(index)) }
        func date(_ index: CInt) -> Date? { SQLiteLedger.date(int64(index)) }
        func required<T>(_ value: T?, _ index: CInt) throws -> T {
            guard let value else {
                throw LedgerError(.invalidValue, "the ledger column documents.\(Self.columns[Int(index)]) is NULL where a value is required")
            }
            return value
        }
        let errorClass = text(17)
        let lastError = errorClass.map {
            RecordedError(errorClass: $0, code: text(18), message: text(19) ?? "", httpStatus: int(20))
        }
        return DocumentRecord(
            id: try required(int64(0), 0), jobID: try required(int64(1), 1), jobName: text(37) ?? "",
            path: try required(text(2), 2), sha256: text(3), size: int64(4) ?? 0, mtimeNanoseconds: int64(5) ?? 0,
            state: text(6).flatMap(DocumentState.init(rawValue:)) ?? .pending, attempts: int(7) ?? 0,
            nextAttemptAt: date(8), uploadFileID: text(9), workflowRunID: text(10), messageID: text(11), taskID: text(12),
            runSentAt: date(13), duplicateRuns: int(14) ?? 0, duplicateOf: int64(15), outputPath: text(16), lastError: lastError,
            createdAt: try required(date(21), 21), updatedAt: try required(date(22), 22), finishedAt: date(23),
            runPosts: int(24) ?? 0, outcomeUnknown: (int64(25) ?? 0) != 0, difyClockOffsetMilliseconds: int64(26),
            pausedAt: date(27), device: int64(28).map { UInt64(bitPattern: $0) }, inode: int64(29).map { UInt64(bitPattern: $0) },
            resultStored: int64(32) == 1, localFailures: int(33) ?? 0, textSHA256: text(30), textLength: int(31),
            rowOf: int64(34), rowIndex: int(35), rowInputs: text(36))
    }
}
