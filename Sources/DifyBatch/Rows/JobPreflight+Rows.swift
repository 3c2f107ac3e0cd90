import DifyKit
import Foundation

extension JobPreflight {
    /// The preflight of a `rows: true` job: no file or text variable is chosen (the table's columns fill the
    /// variables) and required inputs are checked per table, not per job.
    static func rowsPreflight(spec: JobSpec, mode: AppMode, parameters: AppParameters) -> JobPreflight {
        var preflight = JobPreflight(mode: mode, fileVariable: nil, fileUpload: parameters.fileUploadFeature, attach: .never,
                                     extractor: TextExtractor(overrides: spec.extractors), limits: parameters.systemParameters,
                                     maxSize: spec.match.maxSize)
        preflight.rowForm = parameters.userInputForm
        return preflight
    }

    /// Whether the app is a chat app (its rows need a message).
    var isChat: Bool { [AppMode.chat, .advancedChat, .agentChat, .agent].contains(mode) }

    /// A table file that cannot be a table of this job: empty, over `match.max_size`, or not CSV/TSV/JSONL.
    func tableRejection(filename: String, size: Int64) -> RecordedError? {
        if size == 0 {
            return RecordedError(errorClass: "rejected", code: "empty_file", message: "the file is empty")
        }
        if let maxSize, size > maxSize {
            return RecordedError(errorClass: "rejected", code: "file_too_large",
                                 message: "\(ByteSize.format(size)) is over match.max_size (\(ByteSize.format(maxSize)))")
        }
        guard RowTable.format(forPath: filename) != nil else {
            return RecordedError(errorClass: "rejected", code: "not_a_table",
                                 message: "a rows: true job reads .csv, .tsv, .jsonl and .ndjson files (UTF-8); XLSX is not read: save the sheet as CSV UTF-8, or exclude the file with match.exclude")
        }
        return nil
    }
}
