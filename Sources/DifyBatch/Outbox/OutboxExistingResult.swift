import DifyKit
import Foundation

/// A success document already in the outbox for exactly this content: `<outbox>/<path>.json` whose `status` is
/// `succeeded` or `partial-succeeded`, whose `source.path` is the document's path and whose `source.sha256` is
/// the document's sha256. Whoever wrote it (an earlier ledger, one since deleted, one whose inbox was taken over
/// with `--take-over-inbox`, or a dify-batch from before inbox owners), the run it records was paid for: the
/// scanner ends such a document `skipped` from it and never sends it again (unless `--reprocess`).
struct OutboxExistingResult: Sendable {
    /// The outbox file.
    var path: String
    var status: String
    var outputs: [String: JSONValue]
    /// `job` and `finished_at` as the file has them (for the log line).
    var job: String?
    var finishedAt: String?

    /// The success document of `relativePath` in `writer`'s outbox if it is one for content `sha256`, else nil
    /// (no file, not JSON, another path or content, a failure document).
    static func find(_ writer: OutboxWriter, relativePath: String, sha256: String) -> OutboxExistingResult? {
        let path = writer.successPath(for: relativePath)
        guard let data = FileManager.default.contents(atPath: path),
              let document = (try? JSONValue.parse(data))?.objectValue,
              let status = document["status"]?.stringValue, ["succeeded", "partial-succeeded"].contains(status),
              let source = document["source"]?.objectValue,
              source["path"]?.stringValue == relativePath, source["sha256"]?.stringValue == sha256,
              let outputs = document["outputs"]?.objectValue else { return nil }
        return OutboxExistingResult(path: path, status: status, outputs: outputs, job: document["job"]?.stringValue,
                                    finishedAt: document["finished_at"]?.stringValue)
    }

    /// The `unresolved` failure document of `relativePath` in `writer`'s outbox for content `sha256`: a run of it was
    /// sent (by a ledger this one does not know) and may have been billed. Returns the file and its message.
    static func unresolved(_ writer: OutboxWriter, relativePath: String, sha256: String) -> (path: String, job: String?, message: String)? {
        let path = writer.errorPath(for: relativePath)
        guard let data = FileManager.default.contents(atPath: path),
              let document = (try? JSONValue.parse(data))?.objectValue,
              document["status"]?.stringValue == DocumentState.unresolved.rawValue,
              let source = document["source"]?.objectValue,
              source["path"]?.stringValue == relativePath, source["sha256"]?.stringValue == sha256 else { return nil }
        return (path, document["job"]?.stringValue, document["error"]?["message"]?.stringValue ?? "")
    }
}
