import DifyKit
import Foundation

/// One document as it appears in `list --json` and `show --json`.
public struct DocumentJSON: Encodable, Sendable {
    public var document: DocumentRecord

    public init(_ document: DocumentRecord) { self.document = document }

    enum CodingKeys: String, CodingKey {
        case id, job, path, state, attempts, sha256, bytes, createdAt = "created_at", updatedAt = "updated_at"
        case finishedAt = "finished_at", nextAttemptAt = "next_attempt_at", dify, outputPath = "output_path"
        case duplicateOf = "duplicate_of", duplicateRuns = "duplicate_runs", error
        case rowOf = "row_of", rowIndex = "row_index", rowInputs = "row_inputs"
    }

    /// A row's inputs as sent (its cells when no inputs were stored); nil for a file.
    static func rowInputs(_ document: DocumentRecord) -> JSONValue? {
        guard document.rowOf != nil, let stored = document.rowInputs, let record = RowRecord.decode(stored) else { return nil }
        return .object(record.payload?.inputs ?? record.cells)
    }

    struct DifyIDs: Encodable {
        var uploadFileID: String?, workflowRunID: String?, messageID: String?, taskID: String?
        enum CodingKeys: String, CodingKey {
            case uploadFileID = "upload_file_id", workflowRunID = "workflow_run_id", messageID = "message_id", taskID = "task_id"
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(uploadFileID, forKey: .uploadFileID)
            try container.encode(workflowRunID, forKey: .workflowRunID)
            try container.encode(messageID, forKey: .messageID)
            try container.encode(taskID, forKey: .taskID)
        }
    }

    struct ErrorJSON: Encodable {
        var errorClass: String, code: String?, message: String, httpStatus: Int?
        enum CodingKeys: String, CodingKey { case errorClass = "class", code, message, httpStatus = "http_status" }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(errorClass, forKey: .errorClass)
            try container.encode(code, forKey: .code)
            try container.encode(message, forKey: .message)
            try container.encode(httpStatus, forKey: .httpStatus)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        let d = document
        try container.encode(d.id, forKey: .id)
        try container.encode(d.jobName, forKey: .job)
        try container.encode(d.path, forKey: .path)
        try container.encode(d.state.rawValue, forKey: .state)
        try container.encode(d.attempts, forKey: .attempts)
        try container.encode(d.sha256, forKey: .sha256)
        try container.encode(d.size, forKey: .bytes)
        try container.encode(ReportFormatting.timestamp(d.createdAt), forKey: .createdAt)
        try container.encode(ReportFormatting.timestamp(d.updatedAt), forKey: .updatedAt)
        try container.encode(ReportFormatting.timestamp(d.finishedAt), forKey: .finishedAt)
        try container.encode(ReportFormatting.timestamp(d.nextAttemptAt), forKey: .nextAttemptAt)
        try container.encode(DifyIDs(uploadFileID: d.uploadFileID, workflowRunID: d.workflowRunID, messageID: d.messageID,
                                     taskID: d.taskID), forKey: .dify)
        try container.encode(d.outputPath, forKey: .outputPath)
        try container.encode(d.duplicateOf, forKey: .duplicateOf)
        try container.encode(d.duplicateRuns, forKey: .duplicateRuns)
        try container.encode(d.lastError.map { ErrorJSON(errorClass: $0.errorClass, code: $0.code, message: $0.message, httpStatus: $0.httpStatus) },
                             forKey: .error)
        // Rows of a `rows: true` table (null for files).
        try container.encode(d.rowOf, forKey: .rowOf)
        try container.encode(d.rowIndex, forKey: .rowIndex)
        try container.encode(Self.rowInputs(d), forKey: .rowInputs)
    }
}

/// `dify-batch list`.
public struct DocumentListReport: Encodable, Sendable {
    public var documents: [DocumentJSON]

    public static func build(from ledger: any LedgerReader, filter: DocumentFilter) async throws -> DocumentListReport {
        DocumentListReport(documents: try await ledger.documents(matching: filter).map(DocumentJSON.init))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(documents)
    }

    public func renderText() -> String {
        guard !documents.isEmpty else { return "No documents match.\n" }
        let rows = documents.map { entry -> [String] in
            let d = entry.document
            let note = d.lastError.map { "\($0.code ?? $0.errorClass): \($0.message)" } ?? ""
            return [String(d.id), d.jobName, d.state.rawValue, String(d.attempts),
                    ReportFormatting.timestamp(d.updatedAt) ?? "", d.path, String(note.prefix(80))]
        }
        return ReportFormatting.table(headers: ["ID", "JOB", "STATE", "ATTEMPTS", "UPDATED", "PATH", "LAST ERROR"], rows: rows)
    }
}

/// `dify-batch show ID|PATH`: a document with its attempt history, usage and stored result (every version of a
/// path keeps its own result, so earlier versions' outputs stay visible after a newer version replaced the
/// outbox file).
public struct DocumentDetailReport: Encodable, Sendable {
    public var document: DocumentJSON
    public var attempts: [AttemptRecord]
    public var usage: UsageAmounts?
    /// The stored result (succeeded versions only).
    public var result: StoredResult? = nil
    /// A row's table document (nil for a file).
    public var table: DocumentRecord? = nil

    enum CodingKeys: String, CodingKey { case document, attempts, usage, result }

    /// The document's attempt number of each attempt record: a `run` record counts a new attempt (a `backpressure`
    /// answer does not: nothing ran), an `upload` belongs to the attempt that follows it, a `recover` to the one
    /// before it.
    static func attemptNumbers(_ attempts: [AttemptRecord]) -> [Int] {
        var sent = 0
        return attempts.map { attempt in
            switch attempt.phase {
            case .upload: return sent + 1
            case .recover: return max(sent, 1)
            case .run:
                if attempt.outcome == "backpressure" { return sent + 1 }
                sent += 1
                return sent
            }
        }
    }

    struct ResultJSON: Encodable {
        var result: StoredResult
        enum CodingKeys: String, CodingKey { case status, outputs, recordedAt = "recorded_at" }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(result.status, forKey: .status)
            try container.encode((try? JSONValue.parse(result.outputsJSON)) ?? .string(result.outputsJSON), forKey: .outputs)
            try container.encode(ReportFormatting.timestamp(result.recordedAt), forKey: .recordedAt)
        }
    }

    struct AttemptJSON: Encodable {
        var attempt: AttemptRecord
        var number: Int
        enum CodingKeys: String, CodingKey {
            case id, attempt, phase, startedAt = "started_at", endedAt = "ended_at", httpStatus = "http_status"
            case difyCode = "dify_code", message, outcome, runID = "run_id", failedNode = "failed_node"
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(attempt.id, forKey: .id)
            try container.encode(number, forKey: .attempt)
            try container.encode(attempt.phase.rawValue, forKey: .phase)
            try container.encode(ReportFormatting.timestamp(attempt.startedAt), forKey: .startedAt)
            try container.encode(ReportFormatting.timestamp(attempt.endedAt), forKey: .endedAt)
            try container.encode(attempt.httpStatus, forKey: .httpStatus)
            try container.encode(attempt.difyCode, forKey: .difyCode)
            try container.encode(attempt.message, forKey: .message)
            try container.encode(attempt.outcome, forKey: .outcome)
            try container.encode(attempt.runID, forKey: .runID)
            try container.encodeIfPresent(attempt.failedNode, forKey: .failedNode)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(document, forKey: .document)
        try container.encode(zip(attempts, Self.attemptNumbers(attempts)).map { AttemptJSON(attempt: $0, number: $1) }, forKey: .attempts)
        try container.encode(usage.map(UsageJSON.init), forKey: .usage)
        try container.encode(result.map(ResultJSON.init), forKey: .result)
    }

    /// Finds documents by id (digits) or by inbox-relative path (every version, newest first).
    public static func build(from ledger: any LedgerReader, reference: String) async throws -> [DocumentDetailReport] {
        var documents: [DocumentRecord] = []
        if let id = Int64(reference), let document = try await ledger.document(id: id) {
            documents = [document]
        } else {
            documents = try await ledger.documents(path: reference)
        }
        var reports: [DocumentDetailReport] = []
        for document in documents {
            var table: DocumentRecord?
            if let tableID = document.rowOf { table = try await ledger.document(id: tableID) }
            reports.append(DocumentDetailReport(document: DocumentJSON(document),
                                                attempts: try await ledger.attempts(documentID: document.id),
                                                usage: try await ledger.usage(documentID: document.id),
                                                result: try await ledger.result(documentID: document.id),
                                                table: table))
        }
        return reports
    }

    /// A note for a reference that names both a file and a row (a file literally named `x.csv#2` beside the
    /// second row of `x.csv`): which ids are which, so each can be shown by its id. Nil when unambiguous.
    public static func ambiguity(_ reports: [DocumentDetailReport], reference: String) -> String? {
        let rows = reports.filter { $0.document.document.rowOf != nil }.map(\.document.document.id)
        let files = reports.filter { $0.document.document.rowOf == nil }.map(\.document.document.id)
        guard !rows.isEmpty, !files.isEmpty else { return nil }
        let ids = { (ids: [Int64]) in ids.map(String.init).joined(separator: ", ") }
        return "'\(reference)' names both a file of that name (document \(ids(files))) and a table row (document \(ids(rows))); "
            + "both are shown, each marked `row` or `file`; `dify-batch show ID` shows one"
    }

    public func renderText() -> String {
        let d = document.document
        var lines: [String] = []
        lines.append("document \(d.id)  \(d.jobName)/\(d.path)")
        lines.append("  state         \(d.state.rawValue)  (attempts \(d.attempts))")
        if let tableID = d.rowOf {
            // Issue 13: one row of a table file. It has no file of its own: no size or inode, the table's instead.
            let index = d.rowIndex.map(String.init) ?? "-"
            lines.append("  row           \(index) of the table \(table?.path ?? "-") (document \(tableID))")
            if let inputs = DocumentJSON.rowInputs(d) {
                lines.append("  inputs        \(inputs.jsonString())")
            }
            lines.append("  sha256        \(d.sha256 ?? "-") (of the row's inputs)")
        } else {
            lines.append("  sha256        \(d.sha256 ?? "-")")
            lines.append("  bytes         \(d.size)")
            lines.append("  file          \(d.identity)")
        }
        lines.append("  created       \(ReportFormatting.timestamp(d.createdAt) ?? "-")")
        lines.append("  updated       \(ReportFormatting.timestamp(d.updatedAt) ?? "-")")
        if let finished = d.finishedAt { lines.append("  finished      \(ReportFormatting.timestamp(finished) ?? "-")") }
        if let next = d.nextAttemptAt { lines.append("  next attempt  \(ReportFormatting.timestamp(next) ?? "-")") }
        if let id = d.uploadFileID { lines.append("  upload_file_id   \(id)") }
        if let id = d.workflowRunID { lines.append("  workflow_run_id  \(id)") }
        if let id = d.messageID { lines.append("  message_id       \(id)") }
        if let id = d.taskID { lines.append("  task_id          \(id)") }
        if let output = d.outputPath { lines.append("  output        \(output)") }
        if let original = d.duplicateOf { lines.append("  duplicate of  document \(original)") }
        if d.duplicateRuns > 0 { lines.append("  duplicate runs \(d.duplicateRuns)") }
        if let error = d.lastError {
            lines.append("  last error    [\(error.errorClass)] \(error.code ?? "-")\(error.httpStatus.map { " HTTP \($0)" } ?? ""): \(error.message)")
        }
        if let usage {
            let count = { (value: Int?) in value.map { String($0) } ?? "-" }
            lines.append("  usage         prompt \(count(usage.promptTokens)), completion \(count(usage.completionTokens)), total \(count(usage.totalTokens)) tokens, price \(ReportFormatting.price(usage.totalPrice) ?? "-") \(usage.currency ?? "")")
        }
        if let result {
            lines.append("  result        \(result.status) \(result.outputsJSON)")
        }
        lines.append("")
        if attempts.isEmpty {
            lines.append("  no attempts yet")
        } else {
            let rows = zip(attempts, Self.attemptNumbers(attempts)).map { a, number -> [String] in
                [String(number), a.phase.rawValue, ReportFormatting.timestamp(a.startedAt) ?? "",
                 a.endedAt.map { String(Int(($0.timeIntervalSince(a.startedAt) * 1000).rounded())) } ?? "-",
                 a.outcome, a.httpStatus.map(String.init) ?? "-", a.difyCode ?? "-", String((a.message ?? "").prefix(70))]
            }
            lines.append(ReportFormatting.table(headers: ["ATTEMPT", "PHASE", "STARTED", "MS", "OUTCOME", "HTTP", "DIFY CODE", "MESSAGE"], rows: rows)
                .split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

