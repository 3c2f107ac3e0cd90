import DifyKit
import Foundation

/// The source document a result belongs to.
public struct SourceInfo: Sendable, Equatable {
    /// Relative to the job's inbox, `/`-separated.
    public var path: String
    public var sha256: String?
    public var bytes: Int64

    public init(path: String, sha256: String?, bytes: Int64) {
        self.path = path
        self.sha256 = sha256
        self.bytes = bytes
    }
}

/// What `<outbox>/<relativePath>.json` says about a document that succeeded.
public struct SuccessRecord: Sendable {
    /// `succeeded` or `partial-succeeded`.
    public var status: String
    public var job: String
    public var source: SourceInfo
    /// `workflow`, `completion`, `chat`, ...
    public var appMode: String
    /// Workflow outputs; for completion and chat apps `["answer": .string(...)]`. The writer adds `answer_json`
    /// when the answer is JSON (raw or in the first ``` / ```json fenced block).
    public var outputs: [String: JSONValue]
    public var usage: UsageAmounts?
    public var uploadFileID: String?
    public var workflowRunID: String?
    public var messageID: String?
    public var taskID: String?
    public var attempts: Int
    public var elapsedMilliseconds: Int64
    public var finishedAt: Date
    /// Relative path of the first document with the same content.
    public var duplicateOf: String?

    public init(status: String = "succeeded", job: String, source: SourceInfo, appMode: String,
                outputs: [String: JSONValue], usage: UsageAmounts?, uploadFileID: String?,
                workflowRunID: String?, messageID: String?, taskID: String?, attempts: Int,
                elapsedMilliseconds: Int64, finishedAt: Date, duplicateOf: String? = nil) {
        self.status = status
        self.job = job
        self.source = source
        self.appMode = appMode
        self.outputs = outputs
        self.usage = usage
        self.uploadFileID = uploadFileID
        self.workflowRunID = workflowRunID
        self.messageID = messageID
        self.taskID = taskID
        self.attempts = attempts
        self.elapsedMilliseconds = elapsedMilliseconds
        self.finishedAt = finishedAt
        self.duplicateOf = duplicateOf
    }
}

/// What `<outbox>/<relativePath>.error.json` says about a document that is `dead`, `rejected` or `unresolved`.
public struct FailureRecord: Sendable {
    /// `dead`, `rejected` or `unresolved`.
    public var status: String
    public var job: String
    public var source: SourceInfo
    public var errorCode: String?
    public var errorMessage: String
    public var httpStatus: Int?
    public var difyCode: String?
    public var attempts: Int
    public var finishedAt: Date

    public init(status: String, job: String, source: SourceInfo, errorCode: String?, errorMessage: String,
                httpStatus: Int? = nil, difyCode: String? = nil, attempts: Int, finishedAt: Date) {
        self.status = status
        self.job = job
        self.source = source
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.httpStatus = httpStatus
        self.difyCode = difyCode
        self.attempts = attempts
        self.finishedAt = finishedAt
    }
}

// MARK: - JSON documents

extension SourceInfo {
    var jsonValue: JSONValue {
        .object([
            "path": .string(path),
            "sha256": sha256.map(JSONValue.string) ?? .null,
            "bytes": .int(bytes),
        ])
    }
}

extension UsageAmounts {
    /// Dify's names; the price is an exact decimal string; unknown fields are null.
    var outboxJSON: JSONValue {
        func int(_ value: Int?) -> JSONValue { value.map { .int(Int64($0)) } ?? .null }
        return .object([
            "prompt_tokens": int(promptTokens),
            "completion_tokens": int(completionTokens),
            "total_tokens": int(totalTokens),
            "total_price": ReportFormatting.price(totalPrice).map(JSONValue.string) ?? .null,
            "currency": currency.map(JSONValue.string) ?? .null,
        ])
    }
}

private func optionalString(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
private func optionalInt(_ value: Int?) -> JSONValue { value.map { .int(Int64($0)) } ?? .null }

extension SuccessRecord {
    /// The document as written, `answer_json` included.
    public var jsonDocument: JSONValue {
        let outputs = AnswerJSON.addingAnswerJSON(to: outputs)
        var dify: [String: JSONValue] = [
            "upload_file_id": optionalString(uploadFileID),
            "task_id": optionalString(taskID),
        ]
        if appMode == "workflow" {
            dify["workflow_run_id"] = optionalString(workflowRunID)
        } else {
            dify["message_id"] = optionalString(messageID)
        }
        var document: [String: JSONValue] = [
            "status": .string(status),
            "job": .string(job),
            "source": source.jsonValue,
            "app": .object(["mode": .string(appMode)]),
            "outputs": .object(outputs),
            "usage": usage?.outboxJSON ?? .null,
            "dify": .object(dify),
            "attempts": .int(Int64(attempts)),
            "elapsed_ms": .int(elapsedMilliseconds),
            "finished_at": .string(ReportFormatting.timestamp(finishedAt) ?? ""),
        ]
        if let duplicateOf { document["duplicate_of"] = .string(duplicateOf) }
        return .object(document)
    }
}

extension FailureRecord {
    /// The document as written.
    public var jsonDocument: JSONValue {
        .object([
            "status": .string(status),
            "job": .string(job),
            "source": source.jsonValue,
            "error": .object([
                "code": optionalString(errorCode),
                "message": .string(errorMessage),
                "http_status": optionalInt(httpStatus),
                "dify_code": optionalString(difyCode),
            ]),
            "attempts": .int(Int64(attempts)),
            "finished_at": .string(ReportFormatting.timestamp(finishedAt) ?? ""),
        ])
    }
}

// MARK: - Bytes in one pass (issue 14)

extension SuccessRecord {
    /// ``jsonDocument`` as the outbox writes it (pretty, sorted keys, unescaped slashes, no trailing newline),
    /// written member by member in key order without building it; nil for outputs holding a number that is not
    /// finite (then `JSONEncoder` refuses the document). `OutboxJSONBytesTests` compares both.
    func outboxBytes() -> [UInt8]? {
        var text = JSONText.ObjectWriter(pretty: true)
        text.openObject()
        text.key("app")
        text.openObject()
        text.key("mode")
        text.string(appMode)
        text.closeObject()
        text.key("attempts")
        text.int(attempts)
        text.key("dify")
        text.openObject()
        if appMode != "workflow" {
            text.key("message_id")
            text.string(messageID)
        }
        text.key("task_id")
        text.string(taskID)
        text.key("upload_file_id")
        text.string(uploadFileID)
        if appMode == "workflow" {
            text.key("workflow_run_id")
            text.string(workflowRunID)
        }
        text.closeObject()
        if let duplicateOf {
            text.key("duplicate_of")
            text.string(duplicateOf)
        }
        text.key("elapsed_ms")
        text.int(elapsedMilliseconds)
        text.key("finished_at")
        text.string(ReportFormatting.timestamp(finishedAt) ?? "")
        text.key("job")
        text.string(job)
        text.key("outputs")
        text.value(.object(AnswerJSON.addingAnswerJSON(to: outputs)))
        text.key("source")
        source.write(to: &text)
        text.key("status")
        text.string(status)
        text.key("usage")
        if let usage {
            text.openObject()
            text.key("completion_tokens")
            text.int(usage.completionTokens)
            text.key("currency")
            text.string(usage.currency)
            text.key("prompt_tokens")
            text.int(usage.promptTokens)
            text.key("total_price")
            text.string(ReportFormatting.price(usage.totalPrice))
            text.key("total_tokens")
            text.int(usage.totalTokens)
            text.closeObject()
        } else {
            text.null()
        }
        text.closeObject()
        return text.bytes
    }
}

extension FailureRecord {
    /// ``jsonDocument`` as the outbox writes it, member by member in key order (see ``SuccessRecord/outboxBytes()``).
    func outboxBytes() -> [UInt8]? {
        var text = JSONText.ObjectWriter(pretty: true, capacity: 512)
        text.openObject()
        text.key("attempts")
        text.int(attempts)
        text.key("error")
        text.openObject()
        text.key("code")
        text.string(errorCode)
        text.key("dify_code")
        text.string(difyCode)
        text.key("http_status")
        text.int(httpStatus)
        text.key("message")
        text.string(errorMessage)
        text.closeObject()
        text.key("finished_at")
        text.string(ReportFormatting.timestamp(finishedAt) ?? "")
        text.key("job")
        text.string(job)
        text.key("source")
        source.write(to: &text)
        text.key("status")
        text.string(status)
        text.closeObject()
        return text.bytes
    }
}

extension SourceInfo {
    /// ``jsonValue`` member by member.
    func write(to text: inout JSONText.ObjectWriter) {
        text.openObject()
        text.key("bytes")
        text.int(bytes)
        text.key("path")
        text.string(path)
        text.key("sha256")
        text.string(sha256)
        text.closeObject()
    }
}
