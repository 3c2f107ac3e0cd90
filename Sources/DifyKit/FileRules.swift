import Foundation

/// Dify 1.14.1's rule for whether a file fits a file input or the `file_upload` feature.
///
/// The file's type is Dify's own detection (``FileKind/detect(filename:mimeType:)``). It is accepted when no
/// types are listed, when its type is listed, or — `custom` being a fallback for any type — when `custom` is
/// listed and its extension is among the allowed extensions. Extensions are compared without regard to case or
/// a leading dot (`.PDF`, `pdf` and `.pdf` are the same). Source: the Dify 1.14.1 observation (an input
/// allowing only `custom` with `[".pdf", ".txt"]` accepts `invoice.pdf`).
public enum FileRules {
    /// `.PDF` → `pdf`.
    public static func normalisedExtension(_ text: String) -> String {
        var value = text.trimmingCharacters(in: .whitespaces).lowercased()
        while value.hasPrefix(".") { value.removeFirst() }
        return value
    }

    /// Whether a file named `filename` is accepted by these rules.
    public static func accepts(filename: String, allowedTypes: [FileKind], allowedExtensions: [String]) -> Bool {
        guard !allowedTypes.isEmpty else { return true }
        let kind = FileKind.detect(filename: filename, mimeType: MIMEType.forFilename(filename))
        if kind != .custom && allowedTypes.contains(kind) { return true }
        guard allowedTypes.contains(.custom) else { return false }
        let ext = normalisedExtension(FileKind.fileExtension(of: filename))
        return !ext.isEmpty && allowedExtensions.contains { normalisedExtension($0) == ext }
    }
}

/// The app's `file_upload` feature (`GET /parameters`): which files may go in a run's top-level `files`.
/// Shapes: `{"image": {"enabled", "transfer_methods", …}}` (completion, capture `llm/01_parameters_completion2`)
/// and `{"enabled", "allowed_file_types", "allowed_file_extensions", "allowed_file_upload_methods", "image": …}`
/// (capture `llm/03_parameters_llmflow`).
public struct FileUploadFeature: Sendable, Hashable {
    /// Types accepted (empty: the feature is off).
    public var allowedTypes: [FileKind]
    public var allowedExtensions: [String]
    /// Transfer methods accepted for local files (`local_file` must be among them for an upload to be attached).
    public var acceptsLocalFiles: Bool

    public init(allowedTypes: [FileKind] = [], allowedExtensions: [String] = [], acceptsLocalFiles: Bool = true) {
        self.allowedTypes = allowedTypes
        self.allowedExtensions = allowedExtensions
        self.acceptsLocalFiles = acceptsLocalFiles
    }

    public init(json: JSONValue?) {
        var types: [FileKind] = []
        var methods: Set<String> = []
        if json?["enabled"]?.boolValue == true {
            types += json?["allowed_file_types"]?.arrayValue?.compactMap { $0.stringValue.flatMap(FileKind.init(rawValue:)) } ?? []
            methods.formUnion(json?["allowed_file_upload_methods"]?.arrayValue?.compactMap(\.stringValue) ?? ["local_file"])
        }
        if let image = json?["image"], image["enabled"]?.boolValue == true, !types.contains(.image) {
            types.append(.image)
            methods.formUnion(image["transfer_methods"]?.arrayValue?.compactMap(\.stringValue) ?? ["local_file"])
        }
        self.init(allowedTypes: types,
                  allowedExtensions: json?["allowed_file_extensions"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                  acceptsLocalFiles: methods.isEmpty || methods.contains("local_file"))
    }

    public var isEnabled: Bool { !allowedTypes.isEmpty && acceptsLocalFiles }

    /// Whether this file may be attached (uploaded, then sent in `files` with `transfer_method: local_file`).
    public func accepts(filename: String) -> Bool {
        isEnabled && FileRules.accepts(filename: filename, allowedTypes: allowedTypes, allowedExtensions: allowedExtensions)
    }
}

extension AppParameters {
    /// The `file_upload` feature, decoded.
    public var fileUploadFeature: FileUploadFeature { FileUploadFeature(json: fileUpload) }
}
