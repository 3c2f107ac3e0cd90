import Foundation

/// `GET /parameters`.
public struct AppParameters: Sendable {
    public var userInputForm: [InputVariable]
    public var systemParameters: SystemParameters
    /// The app's raw `file_upload` feature dict (governs top-level `files`, not input variables).
    public var fileUpload: JSONValue?
    /// The whole response, for fields not modelled here.
    public var raw: JSONValue

    public init(userInputForm: [InputVariable], systemParameters: SystemParameters = SystemParameters(),
                fileUpload: JSONValue? = nil, raw: JSONValue = .object([:])) {
        self.userInputForm = userInputForm
        self.systemParameters = systemParameters
        self.fileUpload = fileUpload
        self.raw = raw
    }

    init(json: JSONValue) throws {
        guard json.objectValue != nil else { throw LenientDecodingError("parameters response is not an object") }
        var form: [InputVariable] = []
        for item in json["user_input_form"]?.arrayValue ?? [] {
            // Single-key object: {"<type>": {variable dict}}.
            guard let object = item.objectValue else { continue }
            for (key, value) in object.sorted(by: { $0.key < $1.key }) {
                if let variable = InputVariable(typeKey: key, json: value) { form.append(variable) }
            }
        }
        self.init(
            userInputForm: form,
            systemParameters: SystemParameters(json: json["system_parameters"]),
            fileUpload: json["file_upload"]?.nonNull,
            raw: json
        )
    }

    /// The variable with this `variable` name.
    public func variable(named name: String) -> InputVariable? {
        userInputForm.first { $0.variable == name }
    }
}

/// One start-node variable from `user_input_form`.
public struct InputVariable: Sendable, Hashable {
    public enum Kind: Sendable, Hashable, CustomStringConvertible {
        case textInput, paragraph, select, number, file, fileList, checkbox, jsonObject, externalDataTool
        case unknown(String)

        public init(rawValue: String) {
            switch rawValue {
            case "text-input": self = .textInput
            case "paragraph": self = .paragraph
            case "select": self = .select
            case "number": self = .number
            case "file": self = .file
            case "file-list": self = .fileList
            case "checkbox": self = .checkbox
            case "json_object": self = .jsonObject
            case "external_data_tool": self = .externalDataTool
            default: self = .unknown(rawValue)
            }
        }

        public var rawValue: String {
            switch self {
            case .textInput: return "text-input"
            case .paragraph: return "paragraph"
            case .select: return "select"
            case .number: return "number"
            case .file: return "file"
            case .fileList: return "file-list"
            case .checkbox: return "checkbox"
            case .jsonObject: return "json_object"
            case .externalDataTool: return "external_data_tool"
            case .unknown(let value): return value
            }
        }

        public var description: String { rawValue }
    }

    public var variable: String
    public var label: String?
    public var kind: Kind
    public var required: Bool
    /// Characters for text; max number of files for `file-list`.
    public var maxLength: Int?
    public var options: [String]
    public var allowedFileTypes: [FileKind]
    /// With leading dot, e.g. ".pdf" (exact, case-sensitive match on the server).
    public var allowedFileExtensions: [String]
    public var allowedFileUploadMethods: [String]
    public var `default`: JSONValue?
    public var hide: Bool

    public init(variable: String, label: String? = nil, kind: Kind, required: Bool = false, maxLength: Int? = nil,
                options: [String] = [], allowedFileTypes: [FileKind] = [], allowedFileExtensions: [String] = [],
                allowedFileUploadMethods: [String] = [], default: JSONValue? = nil, hide: Bool = false) {
        self.variable = variable
        self.label = label
        self.kind = kind
        self.required = required
        self.maxLength = maxLength
        self.options = options
        self.allowedFileTypes = allowedFileTypes
        self.allowedFileExtensions = allowedFileExtensions
        self.allowedFileUploadMethods = allowedFileUploadMethods
        self.default = `default`
        self.hide = hide
    }

    init?(typeKey: String, json: JSONValue) {
        guard let name = json["variable"]?.stringValue else { return nil }
        let strings: (String) -> [String] = { key in json[key]?.arrayValue?.compactMap(\.stringValue) ?? [] }
        let requiredValue: Bool
        switch json["required"] {
        case .bool(let flag)?: requiredValue = flag
        case .some(let other): requiredValue = other.intValue.map { $0 != 0 } ?? (other.stringValue == "true")
        case nil: requiredValue = false
        }
        self.init(
            variable: name,
            label: json["label"]?.stringValue,
            kind: Kind(rawValue: json["type"]?.stringValue ?? typeKey),
            required: requiredValue,
            maxLength: json["max_length"]?.intValue,
            options: strings("options"),
            allowedFileTypes: strings("allowed_file_types").compactMap { FileKind(rawValue: $0) },
            allowedFileExtensions: strings("allowed_file_extensions"),
            allowedFileUploadMethods: strings("allowed_file_upload_methods"),
            default: json["default"]?.nonNull,
            hide: json["hide"]?.boolValue ?? false
        )
    }

    public var isFile: Bool { kind == .file || kind == .fileList }
}

/// `system_parameters` of `/parameters`. Sizes in MB (applied as MB × 1024 × 1024).
public struct SystemParameters: Sendable, Hashable {
    public var fileSizeLimitMB: Int
    public var imageFileSizeLimitMB: Int
    public var audioFileSizeLimitMB: Int
    public var videoFileSizeLimitMB: Int
    public var workflowFileUploadLimit: Int?

    /// Dify defaults: 15, 10, 50, 100.
    public init(fileSizeLimitMB: Int = 15, imageFileSizeLimitMB: Int = 10, audioFileSizeLimitMB: Int = 50,
                videoFileSizeLimitMB: Int = 100, workflowFileUploadLimit: Int? = nil) {
        self.fileSizeLimitMB = fileSizeLimitMB
        self.imageFileSizeLimitMB = imageFileSizeLimitMB
        self.audioFileSizeLimitMB = audioFileSizeLimitMB
        self.videoFileSizeLimitMB = videoFileSizeLimitMB
        self.workflowFileUploadLimit = workflowFileUploadLimit
    }

    init(json: JSONValue?) {
        self.init(
            fileSizeLimitMB: json?["file_size_limit"]?.intValue ?? 15,
            imageFileSizeLimitMB: json?["image_file_size_limit"]?.intValue ?? 10,
            audioFileSizeLimitMB: json?["audio_file_size_limit"]?.intValue ?? 50,
            videoFileSizeLimitMB: json?["video_file_size_limit"]?.intValue ?? 100,
            workflowFileUploadLimit: json?["workflow_file_upload_limit"]?.intValue
        )
    }

    /// Upload size limit in bytes for a file of this kind (document and custom use `file_size_limit`).
    public func sizeLimitBytes(for kind: FileKind) -> Int64 {
        let megabytes: Int
        switch kind {
        case .image: megabytes = imageFileSizeLimitMB
        case .audio: megabytes = audioFileSizeLimitMB
        case .video: megabytes = videoFileSizeLimitMB
        case .document, .custom: megabytes = fileSizeLimitMB
        }
        return Int64(megabytes) * 1024 * 1024
    }

    /// Limit for a filename: Dify picks the limit by extension only.
    public func sizeLimitBytes(forFilename filename: String) -> Int64 {
        let ext = FileKind.fileExtension(of: filename).lowercased()
        if FileKind.imageExtensions.contains(ext) { return sizeLimitBytes(for: .image) }
        if FileKind.videoExtensions.contains(ext) { return sizeLimitBytes(for: .video) }
        if FileKind.audioExtensions.contains(ext) { return sizeLimitBytes(for: .audio) }
        return sizeLimitBytes(for: .document)
    }
}
