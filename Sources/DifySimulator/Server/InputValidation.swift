import Foundation

/// A file input resolved to a stored upload.
struct ResolvedFile: Sendable {
    var variable: String
    var type: String
    var transferMethod: String
    var upload: StoredUpload
}

/// Dify's `_prepare_user_inputs` / file-factory checks for the declared start-node variables.
/// Only declared variables are kept; messages are Dify's (all become 400 `invalid_param`).
struct InputValidation {
    let form: [SimulatedInputVariable]
    let apiKey: String
    let user: String
    let state: SimulatorState

    struct Failure: Error { let message: String }

    /// The kept inputs (declared variables only, form order) and the resolved files, or the first failure.
    func validate(_ inputs: [(String, JSONValue)]) -> Result<(inputs: [(String, JSONValue)], files: [ResolvedFile]), Failure> {
        var kept: [(String, JSONValue)] = []
        var files: [ResolvedFile] = []
        let given = Dictionary(inputs, uniquingKeysWith: { _, last in last })
        for v in form {
            let name = v.variable
            let value = given[name] ?? .null
            let isEmpty: Bool
            switch value {
            case .null: isEmpty = true
            case let .string(s): isEmpty = s.isEmpty
            default: isEmpty = false
            }
            if isEmpty {
                if v.required { return .failure(Failure(message: "\(name) is required in input form")) }
                if case .string = value { kept.append((name, value)) }
                continue
            }
            switch v.type {
            case "text-input", "paragraph", "select":
                guard case let .string(s) = value else { return .failure(Failure(message: "\(name) in input form must be a string")) }
                if v.type == "select", !v.options.contains(s) {
                    return .failure(Failure(message: "\(name) in input form must be one of the following: \(v.options)"))
                }
                if let max = v.maxLength, v.type != "select", s.count > max {
                    return .failure(Failure(message: "\(name) in input form must be less than \(max) characters"))
                }
                kept.append((name, .string(s.utf8.contains(0) ? s.replacingOccurrences(of: "\u{0}", with: "") : s)))
            case "number":
                switch value {
                case .int, .double: kept.append((name, value))
                case let .string(s) where Double(s) != nil: kept.append((name, value))
                default: return .failure(Failure(message: "\(name) in input form must be a valid number"))
                }
            case "file":
                guard case let .object(mapping) = value else { return .failure(Failure(message: "\(name) in input form must be a file")) }
                switch resolve(mapping, variable: v) {
                case let .success(file):
                    files.append(file)
                    kept.append((name, value))
                case let .failure(f): return .failure(f)
                }
            case "file-list":
                guard case let .array(items) = value, items.allSatisfy({ $0.objectValue != nil }) else {
                    return .failure(Failure(message: "\(name) in input form must be a list of files"))
                }
                if let max = v.maxLength, items.count > max {
                    return .failure(Failure(message: "\(name) in input form must be less than \(max) files"))
                }
                for item in items {
                    switch resolve(item.objectValue ?? [], variable: v) {
                    case let .success(file): files.append(file)
                    case let .failure(f): return .failure(f)
                    }
                }
                kept.append((name, value))
            default:
                kept.append((name, value))
            }
        }
        return .success((kept, files))
    }

    /// Completion/chat apps also take files in the top-level `files` array (the app's file-upload feature,
    /// on simulated completion/chat apps for ``SimulatedApp/fileUploadTypes``), local or remote.
    func validateTopLevelFiles(_ value: JSONValue?, allowedTypes: [String]) -> Result<[ResolvedFile], Failure> {
        guard let items = value?.arrayValue else { return .success([]) }
        let feature = SimulatedInputVariable(
            variable: "files", type: "file-list", required: false, allowedFileTypes: allowedTypes)
        var files: [ResolvedFile] = []
        for item in items {
            guard let mapping = item.objectValue else { return .failure(Failure(message: "Invalid file mapping")) }
            switch resolve(mapping, variable: feature) {
            case let .success(file): files.append(file)
            case let .failure(f): return .failure(f)
            }
        }
        return .success(files)
    }

    private func resolve(_ pairs: [(String, JSONValue)], variable v: SimulatedInputVariable) -> Result<ResolvedFile, Failure> {
        let mapping = JSONValue.object(pairs)
        guard let method = mapping["transfer_method"]?.stringValue else {
            return .failure(Failure(message: "transfer_method is required in file mapping"))
        }
        let upload: StoredUpload
        switch method {
        case "local_file":
            guard let id = mapping["upload_file_id"]?.stringValue, !id.isEmpty else {
                return .failure(Failure(message: "Invalid upload file id"))
            }
            guard UUID(uuidString: id) != nil else {
                return .failure(Failure(message: "Invalid upload file id format"))
            }
            guard let u = state.upload(id: id.lowercased()), u.apiKey == apiKey, u.user == user else {
                return .failure(Failure(message: "Invalid upload file"))
            }
            upload = u
        case "remote_url":
            guard let url = mapping["url"]?.stringValue, !url.isEmpty else {
                return .failure(Failure(message: "Invalid file url"))
            }
            // The simulator fetches nothing: every remote URL is unreachable.
            return .failure(Failure(message: "Reached maximum retries (3) for URL \(url)"))
        default:
            return .failure(Failure(message: "Invalid upload file"))
        }
        let detected = FileTypes.detect(extension: upload.extension_, mimeType: upload.mimeType)
        guard let type = mapping["type"]?.stringValue, type == detected else {
            return .failure(Failure(message: "Detected file type does not match the specified type. Please verify the file."))
        }
        let validationFailure = Failure(message: "File validation failed for file: \(upload.name)")
        // Dify 1.14.1: a listed type is accepted; `custom` is a fallback for any type whose extension is listed
        // (compared without regard to case or a leading dot).
        let listedExtension = v.allowedFileExtensions.contains { FileTypes.sameExtension($0, upload.extension_) }
        if !v.allowedFileTypes.isEmpty, !(type != "custom" && v.allowedFileTypes.contains(type)),
           !(v.allowedFileTypes.contains("custom") && listedExtension) {
            return .failure(validationFailure)
        }
        if !v.allowedFileUploadMethods.contains(method) { return .failure(validationFailure) }
        return .success(ResolvedFile(variable: v.variable, type: type, transferMethod: method, upload: upload))
    }
}
