import DifyKit
import Foundation

/// What a job learned from `GET /info` and `GET /parameters` before touching any document.
public struct JobPreflight: Sendable {
    /// The app mode to call.
    public var mode: AppMode
    /// The input variable that receives the file (nil when documents go as text or attachments).
    public var fileVariable: InputVariable?
    /// The text-input/paragraph variable that receives each document's text (`dify.text_input`).
    public var textVariable: InputVariable?
    /// The app's `file_upload` feature (top-level `files`).
    public var fileUpload: FileUploadFeature
    /// `dify.attach`.
    public var attach: DifySettings.AttachMode
    /// How documents' text is had (spec overrides, pdftotext, built-in readers).
    public var extractor: TextExtractor
    /// The system upload limits.
    public var limits: SystemParameters
    /// `match.max_size` from the spec, if set.
    public var maxSize: Int64?
    /// `rows: true` (issue 13): the app's input form, which each table's header and rows are checked against;
    /// nil for a job whose files are documents.
    public var rowForm: [InputVariable]? = nil

    public init(mode: AppMode, fileVariable: InputVariable?, textVariable: InputVariable? = nil,
                fileUpload: FileUploadFeature = FileUploadFeature(), attach: DifySettings.AttachMode = .auto,
                extractor: TextExtractor = TextExtractor(), limits: SystemParameters, maxSize: Int64?) {
        self.mode = mode
        self.fileVariable = fileVariable
        self.textVariable = textVariable
        self.fileUpload = fileUpload
        self.attach = attach
        self.extractor = extractor
        self.limits = limits
        self.maxSize = maxSize
    }

    /// Checks the spec against the app. Throws ``JobStop`` (configuration) for a spec that cannot work with
    /// this app, and DifyKit's errors for transport problems.
    public static func run(spec: JobSpec, client: DifyClient) async throws -> JobPreflight {
        let info = try await client.info()
        let mode: AppMode
        switch spec.dify.app {
        case .auto:
            mode = info.mode
        case .workflow, .completion, .chat:
            mode = AppMode(rawValue: spec.dify.app.rawValue)
            let compatible = mode == info.mode || (mode == .chat && [.advancedChat, .agentChat, .agent].contains(info.mode))
            guard compatible else {
                throw JobStop(.configuration, job: spec.name,
                              "the spec says dify.app: \(spec.dify.app.rawValue) but the app behind this key is a \(info.mode.rawValue) app; set dify.app to auto or \(info.mode.rawValue), or use the right key")
            }
        }
        switch mode {
        case .workflow, .completion, .chat, .advancedChat, .agentChat, .agent: break
        case .unknown(let raw):
            throw JobStop(.configuration, job: spec.name, "the app mode \(raw) is not supported; dify-batch runs workflow, completion and chat apps")
        }
        let parameters = try await client.parameters()
        if spec.rows { return rowsPreflight(spec: spec, mode: mode, parameters: parameters) }
        let preflight = try resolve(spec: spec, mode: mode, parameters: parameters)
        let provided = Set(spec.dify.inputs.keys).union([preflight.fileVariable?.variable, preflight.textVariable?.variable].compactMap { $0 })
        let missing = parameters.userInputForm.filter { $0.required && !provided.contains($0.variable) && $0.default == nil }
        if !missing.isEmpty {
            throw JobStop(.configuration, job: spec.name, "the app requires inputs the spec does not provide: \(missing.map(\.variable).joined(separator: ", ")); add them under dify.inputs")
        }
        return preflight
    }

    /// Which variable takes the document: `dify.file_input`, `dify.text_input`, the app's only file variable,
    /// or (no file variable) its only text-input/paragraph variable the spec does not fill, or else the
    /// `file_upload` feature alone. Throws ``JobStop`` when none fits or the choice is ambiguous.
    static func resolve(spec: JobSpec, mode: AppMode, parameters: AppParameters) throws -> JobPreflight {
        let fileVariables = parameters.userInputForm.filter(\.isFile)
        let known = parameters.userInputForm.map(\.variable).joined(separator: ", ")
        let textKinds: [InputVariable.Kind] = [.textInput, .paragraph]
        var preflight = JobPreflight(mode: mode, fileVariable: nil, fileUpload: parameters.fileUploadFeature, attach: spec.dify.attach,
                                     extractor: TextExtractor(overrides: spec.extractors), limits: parameters.systemParameters,
                                     maxSize: spec.match.maxSize)
        if let name = spec.dify.fileInput {
            guard let found = parameters.variable(named: name) else {
                throw JobStop(.configuration, job: spec.name, "dify.file_input: the app has no input variable \"\(name)\" (it has: \(known.isEmpty ? "none" : known))")
            }
            guard found.isFile else {
                throw JobStop(.configuration, job: spec.name, "dify.file_input: the variable \"\(name)\" is a \(found.kind.rawValue) input, not a file; add a file input to the app's Start node, name the file variable, or use dify.text_input: \(name) to send the document's text")
            }
            preflight.fileVariable = found
        } else if let name = spec.dify.textInput {
            guard let found = parameters.variable(named: name) else {
                throw JobStop(.configuration, job: spec.name, "dify.text_input: the app has no input variable \"\(name)\" (it has: \(known.isEmpty ? "none" : known))")
            }
            guard textKinds.contains(found.kind) else {
                throw JobStop(.configuration, job: spec.name, "dify.text_input: the variable \"\(name)\" is a \(found.kind.rawValue) input; the text goes only into a text-input or paragraph variable")
            }
            preflight.textVariable = found
        } else if fileVariables.count > 1 {
            throw JobStop(.configuration, job: spec.name, "the app has several file inputs (\(fileVariables.map(\.variable).joined(separator: ", "))); choose one with dify.file_input")
        } else if let only = fileVariables.first {
            preflight.fileVariable = only
        } else {
            let texts = parameters.userInputForm.filter { textKinds.contains($0.kind) && spec.dify.inputs[$0.variable] == nil }
            if texts.count == 1 {
                preflight.textVariable = texts[0]
            } else if texts.count > 1 {
                throw JobStop(.configuration, job: spec.name, "the app has no file input variable and several text variables (\(texts.map(\.variable).joined(separator: ", "))); name the one that receives each document's text with dify.text_input")
            } else if !parameters.fileUploadFeature.isEnabled || spec.dify.attach == .never {
                throw JobStop(.configuration, job: spec.name, "the app has no file input variable, no text variable for the document's text, and no file upload feature; add a file (or paragraph) variable to its Start node / prompt variables")
            }
        }
        if preflight.attach == .always && preflight.fileVariable == nil && !parameters.fileUploadFeature.isEnabled {
            throw JobStop(.configuration, job: spec.name, "dify.attach is always but the app's file upload feature is off (or takes no local files); enable it in the app or use attach: auto")
        }
        return preflight
    }

    /// Whether this file is also sent in top-level `files` (only when no file variable takes it).
    public func attaches(filename: String) -> Bool {
        fileVariable == nil && attach != .never && fileUpload.accepts(filename: filename)
    }

    /// Why this file cannot succeed, or nil when it may be sent. Checked before any upload; cheap (the text is
    /// extracted later, and a failure there rejects the document too).
    public func rejection(filename: String, size: Int64) -> RecordedError? {
        if rowForm != nil { return tableRejection(filename: filename, size: size) }
        let kind = FileKind.detect(filename: filename, mimeType: MIMEType.forFilename(filename))
        if size == 0 {
            return RecordedError(errorClass: "rejected", code: "empty_file", message: "the file is empty")
        }
        let uploads = fileVariable != nil || attaches(filename: filename)
        let limit = min(maxSize ?? Int64.max, uploads ? limits.sizeLimitBytes(for: kind) : Int64.max)
        if size > limit {
            return RecordedError(errorClass: "rejected", code: "file_too_large",
                                 message: "\(ByteSize.format(size)) is over the \(ByteSize.format(limit)) limit for \(kind.rawValue) files")
        }
        let ext = "." + (filename as NSString).pathExtension.lowercased()
        if let fileVariable {
            let allowed = fileVariable.allowedFileTypes
            if !FileRules.accepts(filename: filename, allowedTypes: allowed, allowedExtensions: fileVariable.allowedFileExtensions) {
                let extensions = fileVariable.allowedFileExtensions.isEmpty ? "" : " with extensions " + fileVariable.allowedFileExtensions.joined(separator: " ")
                return RecordedError(errorClass: "rejected", code: "file_type_not_allowed",
                                     message: "Dify detects \(ext) files as \(kind.rawValue), which the app's \"\(fileVariable.variable)\" input does not accept (allowed: \(allowed.map(\.rawValue).joined(separator: ", "))\(extensions))")
            }
            return nil
        }
        let attached = attaches(filename: filename)
        if attach == .always && !attached {
            return RecordedError(errorClass: "rejected", code: "file_type_not_allowed",
                                 message: "dify.attach is always but the app's file upload feature does not accept \(ext) files")
        }
        guard let textVariable else {
            return attached ? nil : RecordedError(errorClass: "rejected", code: "file_type_not_allowed",
                                                  message: "the app takes files only through its file upload feature, which does not accept \(ext) files")
        }
        if let problem = extractor.unavailable(filename: filename), textVariable.required || !attached {
            return RecordedError(errorClass: "rejected", code: problem.code, message: problem.message)
        }
        return nil
    }

    /// The type to declare for this file in the run's file object: exactly the type Dify detects, or Dify answers 400.
    public func declaredKind(filename: String) -> FileKind {
        FileKind.detect(filename: filename, mimeType: MIMEType.forFilename(filename))
    }
}
