/// One Dify app behind an API key.
public struct SimulatedApp: Sendable {
    /// The `Authorization: Bearer` key that selects this app.
    public var apiKey: String
    /// `"workflow"`, `"completion"` or `"chat"` (the `mode` of `/info`).
    public var mode: String
    /// The app name (`/info`, and the 429 message).
    public var name: String
    /// Start-node variables, published in `/parameters` and enforced on runs.
    public var userInputForm: [SimulatedInputVariable]
    /// File types the app's `file_upload` feature accepts in a run's top-level `files` (`document`, `image`,
    /// `audio`, `video`); empty: the feature is off, as in a new Dify completion app (capture
    /// `llm/01_parameters_completion2`). Default: `["document"]` for completion/chat apps, none for workflows.
    public var fileUploadTypes: [String]

    public init(apiKey: String, mode: String, name: String, userInputForm: [SimulatedInputVariable], fileUploadTypes: [String]? = nil) {
        self.apiKey = apiKey
        self.mode = mode
        self.name = name
        self.userInputForm = userInputForm
        self.fileUploadTypes = fileUploadTypes ?? (mode == "workflow" ? [] : ["document"])
    }

    /// The key `dify-batch simulate` uses when no `--key` is given.
    public static let defaultAPIKey = "app-simulator-key"

    /// The standard input form: required `file` variable `document` (allowed type `document`, local or remote)
    /// and optional text-input `language` (max 32 characters).
    public static let standardInputForm: [SimulatedInputVariable] = [
        .file("document", required: true, allowedFileTypes: ["document"]),
        .textInput("language", required: false, maxLength: 32),
    ]

    /// Workflow app with key ``defaultAPIKey`` and ``standardInputForm``.
    public static var `default`: SimulatedApp { .workflow(apiKey: defaultAPIKey) }

    /// A workflow app named `simulated-workflow` with ``standardInputForm``.
    public static func workflow(apiKey: String, name: String = "simulated-workflow") -> SimulatedApp {
        SimulatedApp(apiKey: apiKey, mode: "workflow", name: name, userInputForm: standardInputForm)
    }

    /// The form of simulated completion/chat apps, as real Dify allows them (text-input, paragraph, select,
    /// number, checkbox; never a file variable): one required paragraph `text`, like the app of capture
    /// `llm/01_parameters_completion2`. Files reach these apps only through the `file_upload` feature.
    public static let messageInputForm: [SimulatedInputVariable] = [
        .paragraph("text", required: true),
    ]

    /// A completion (Text Generator) app named `simulated-completion` with ``messageInputForm`` and the
    /// `file_upload` feature on for `fileUploadTypes`. The model reads the `text` input, or else the first
    /// entry of `files` (its Document Extractor text); with neither, an empty document.
    public static func completion(apiKey: String, name: String = "simulated-completion", fileUploadTypes: [String] = ["document"]) -> SimulatedApp {
        SimulatedApp(apiKey: apiKey, mode: "completion", name: name, userInputForm: messageInputForm, fileUploadTypes: fileUploadTypes)
    }

    /// A chat app named `simulated-chat` with ``messageInputForm`` (document as for ``completion(apiKey:name:fileUploadTypes:)``).
    public static func chat(apiKey: String, name: String = "simulated-chat", fileUploadTypes: [String] = ["document"]) -> SimulatedApp {
        SimulatedApp(apiKey: apiKey, mode: "chat", name: name, userInputForm: messageInputForm, fileUploadTypes: fileUploadTypes)
    }

    /// The variable types real Dify allows in completion and chat apps' prompt variables.
    public static let messageVariableTypes: Set<String> = ["text-input", "paragraph", "select", "number", "checkbox"]

    /// Variables a real Dify completion/chat app could not declare (file variables, for one); empty when faithful.
    public var unfaithfulVariables: [String] {
        mode == "workflow" ? [] : userInputForm.filter { !Self.messageVariableTypes.contains($0.type) }.map(\.variable)
    }

    /// Stable ids derived from the key, so restarts of the simulator give the same ids.
    var appID: String { StableID.uuid("app:" + apiKey) }
    var workflowID: String { StableID.uuid("workflow:" + apiKey) }
}

/// One start-node variable (an item of `/parameters` → `user_input_form`).
public struct SimulatedInputVariable: Sendable {
    /// The `inputs` key.
    public var variable: String
    public var label: String
    /// `text-input`, `paragraph`, `select`, `number`, `file`, `file-list`, `checkbox` or `json_object`.
    public var type: String
    public var required: Bool
    /// Characters for text types; number of files for `file-list`.
    public var maxLength: Int?
    /// Options of a `select`.
    public var options: [String]
    /// For `file`/`file-list`: `document`, `image`, `audio`, `video`, `custom`.
    public var allowedFileTypes: [String]
    /// For `custom` files, with the leading dot (`.json`); exact match.
    public var allowedFileExtensions: [String]
    /// `local_file`, `remote_url`.
    public var allowedFileUploadMethods: [String]

    public init(
        variable: String, label: String? = nil, type: String, required: Bool, maxLength: Int? = nil,
        options: [String] = [], allowedFileTypes: [String] = [], allowedFileExtensions: [String] = [],
        allowedFileUploadMethods: [String] = ["local_file", "remote_url"]
    ) {
        self.variable = variable
        self.label = label ?? variable
        self.type = type
        self.required = required
        self.maxLength = maxLength
        self.options = options
        self.allowedFileTypes = allowedFileTypes
        self.allowedFileExtensions = allowedFileExtensions
        self.allowedFileUploadMethods = allowedFileUploadMethods
    }

    public static func file(_ name: String, required: Bool = true, allowedFileTypes: [String] = ["document"]) -> Self {
        .init(variable: name, type: "file", required: required, allowedFileTypes: allowedFileTypes)
    }

    public static func fileList(_ name: String, required: Bool = true, maxFiles: Int = 5, allowedFileTypes: [String] = ["document"]) -> Self {
        .init(variable: name, type: "file-list", required: required, maxLength: maxFiles, allowedFileTypes: allowedFileTypes)
    }

    public static func textInput(_ name: String, required: Bool = false, maxLength: Int? = 48) -> Self {
        .init(variable: name, type: "text-input", required: required, maxLength: maxLength)
    }

    /// A `paragraph` (multi-line text) variable; `maxLength` nil: no limit (as in capture `llm/01_parameters_completion2`).
    public static func paragraph(_ name: String, required: Bool = false, maxLength: Int? = nil) -> Self {
        .init(variable: name, type: "paragraph", required: required, maxLength: maxLength)
    }

    /// The `/parameters` dict for this variable, key order like Dify's start node.
    var parametersJSON: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("variable", .string(variable)), ("label", .string(label)), ("type", .string(type)),
            ("required", .bool(required)),
        ]
        if let maxLength { pairs.append(("max_length", .int(maxLength))) }
        if type == "select" { pairs.append(("options", .array(options.map(JSONValue.string)))) }
        if type == "file" || type == "file-list" {
            pairs.append(("allowed_file_types", .array(allowedFileTypes.map(JSONValue.string))))
            pairs.append(("allowed_file_extensions", .array(allowedFileExtensions.map(JSONValue.string))))
            pairs.append(("allowed_file_upload_methods", .array(allowedFileUploadMethods.map(JSONValue.string))))
        }
        return .object([(type, .object(pairs))])
    }
}
