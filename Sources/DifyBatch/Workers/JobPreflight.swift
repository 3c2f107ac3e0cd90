import DifyKit
import Foundation

/// What a job learned from `GET /info` and `GET /parameters` before touching any document.
public struct JobPreflight: Sendable {
    /// The app mode to call.
    public var mode: AppMode
    /// The input variable that receives the file.
    public var fileVariable: InputVariable
    /// The system upload limits.
    public var limits: SystemParameters
    /// `match.max_size` from the spec, if set.
    public var maxSize: Int64?

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
        let fileVariables = parameters.userInputForm.filter(\.isFile)
        let variable: InputVariable
        if let name = spec.dify.fileInput {
            guard let found = parameters.variable(named: name) else {
                let known = parameters.userInputForm.map(\.variable).joined(separator: ", ")
                throw JobStop(.configuration, job: spec.name, "dify.file_input: the app has no input variable \"\(name)\" (it has: \(known.isEmpty ? "none" : known))")
            }
            guard found.isFile else {
                throw JobStop(.configuration, job: spec.name, "dify.file_input: the variable \"\(name)\" is a \(found.kind.rawValue) input, not a file; add a file input to the app's Start node or name the file variable")
            }
            variable = found
        } else {
            guard let first = fileVariables.first else {
                throw JobStop(.configuration, job: spec.name, "the app has no file input variable; add a file (or file-list) variable to its Start node / prompt variables")
            }
            guard fileVariables.count == 1 else {
                throw JobStop(.configuration, job: spec.name, "the app has several file inputs (\(fileVariables.map(\.variable).joined(separator: ", "))); choose one with dify.file_input")
            }
            variable = first
        }
        let provided = Set(spec.dify.inputs.keys).union([variable.variable])
        let missing = parameters.userInputForm.filter { $0.required && !provided.contains($0.variable) && $0.default == nil }
        if !missing.isEmpty {
            throw JobStop(.configuration, job: spec.name, "the app requires inputs the spec does not provide: \(missing.map(\.variable).joined(separator: ", ")); add them under dify.inputs")
        }
        return JobPreflight(mode: mode, fileVariable: variable, limits: parameters.systemParameters, maxSize: spec.match.maxSize)
    }

    /// Why this file cannot succeed, or nil when it may be sent. Checked before any upload.
    public func rejection(filename: String, size: Int64) -> RecordedError? {
        let kind = FileKind.detect(filename: filename, mimeType: MIMEType.forFilename(filename))
        if size == 0 {
            return RecordedError(errorClass: "rejected", code: "empty_file", message: "the file is empty")
        }
        let limit = min(maxSize ?? Int64.max, limits.sizeLimitBytes(for: kind))
        if size > limit {
            return RecordedError(errorClass: "rejected", code: "file_too_large",
                                 message: "\(ByteSize.format(size)) is over the \(ByteSize.format(limit)) limit for \(kind.rawValue) files")
        }
        let allowed = fileVariable.allowedFileTypes
        if !allowed.isEmpty {
            let ext = "." + (filename as NSString).pathExtension.lowercased()
            let accepted = kind == .custom
                ? allowed.contains(.custom) && fileVariable.allowedFileExtensions.contains(ext)
                : allowed.contains(kind)
            if !accepted {
                let extensions = fileVariable.allowedFileExtensions.isEmpty ? "" : " with extensions " + fileVariable.allowedFileExtensions.joined(separator: " ")
                return RecordedError(errorClass: "rejected", code: "file_type_not_allowed",
                                     message: "Dify detects \(ext) files as \(kind.rawValue), which the app's \"\(fileVariable.variable)\" input does not accept (allowed: \(allowed.map(\.rawValue).joined(separator: ", "))\(extensions))")
            }
        }
        return nil
    }

    /// The type to declare for this file in the run's file object: exactly the type Dify detects, or Dify answers 400.
    public func declaredKind(filename: String) -> FileKind {
        FileKind.detect(filename: filename, mimeType: MIMEType.forFilename(filename))
    }
}
