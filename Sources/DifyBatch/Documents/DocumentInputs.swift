import DifyKit
import Foundation

/// How one document reaches the app, decided per document before anything is sent.
public enum DocumentInputs: Sendable, Equatable {
    /// The uploaded file goes into the app's file variable (a one-element list for `file-list`).
    case file(variable: String, list: Bool, kind: FileKind)
    /// The document's text goes into a text variable (`dify.text_input`); with `attachment`, the uploaded file
    /// also goes in the run's top-level `files` (the app's `file_upload` feature).
    case text(variable: String, ExtractedText, attachment: FileKind?)
    /// Only the uploaded file in top-level `files` (an app without file or text variable whose `file_upload`
    /// feature accepts the type, or a file with no text when the text variable is optional).
    case attachment(FileKind)
    /// One row of a `rows: true` table (issue 13): its inputs with file cells already turned into Dify file
    /// objects, over `dify.inputs`; for a chat app, its message.
    case row(inputs: [String: JSONValue], query: String?)

    /// Whether the file itself must be uploaded first.
    public var uploadsFile: Bool {
        switch self {
        case .file, .attachment: return true
        case .text(_, _, let attachment): return attachment != nil
        case .row: return false
        }
    }

    /// The extracted text, if any.
    public var text: ExtractedText? {
        if case .text(_, let text, _) = self { return text }
        return nil
    }

    /// Adds this document to a run's inputs and top-level files.
    public func apply(uploadFileID: String?, to inputs: inout [String: JSONValue], files: inout [JSONValue]) {
        switch self {
        case .file(let variable, let list, let kind):
            guard let uploadFileID else { return }
            let reference = FileReference.localFile(uploadFileID: uploadFileID, kind: kind)
            inputs[variable] = list ? .array([reference]) : reference
        case .text(let variable, let text, let attachment):
            inputs[variable] = .string(text.text)
            if let attachment, let uploadFileID { files.append(FileReference.localFile(uploadFileID: uploadFileID, kind: attachment)) }
        case .attachment(let kind):
            if let uploadFileID { files.append(FileReference.localFile(uploadFileID: uploadFileID, kind: kind)) }
        case .row(let values, _):
            inputs.merge(values) { _, row in row }
        }
    }

    /// Decides how the file at `path` goes to the app, extracting its text when a text variable takes it.
    /// A failure means the document is rejected with that reason and nothing is sent.
    public static func prepare(path: String, filename: String, preflight: JobPreflight) async throws -> Result<DocumentInputs, ExtractionFailure> {
        let kind = preflight.declaredKind(filename: filename)
        if let variable = preflight.fileVariable {
            return .success(.file(variable: variable.variable, list: variable.kind == .fileList, kind: kind))
        }
        let attachment = preflight.attaches(filename: filename) ? kind : nil
        guard let textVariable = preflight.textVariable else {
            guard let attachment else {
                return .failure(ExtractionFailure("file_type_not_allowed", "the app takes files only through its file_upload feature, which does not accept \(filename)"))
            }
            return .success(.attachment(attachment))
        }
        if preflight.attach == .always && attachment == nil {
            return .failure(ExtractionFailure("file_type_not_allowed", "dify.attach is always but the app's file_upload feature does not accept \(filename)"))
        }
        switch try await preflight.extractor.extract(path: path, filename: filename, maxLength: textVariable.maxLength) {
        case .success(let text):
            return .success(.text(variable: textVariable.variable, text, attachment: attachment))
        case .failure(let failure):
            // An optional text variable may be left out when the file itself can be attached.
            if let attachment, !textVariable.required, ["no_extractor", "extractor_missing"].contains(failure.code) {
                return .success(.attachment(attachment))
            }
            return .failure(failure)
        }
    }
}
