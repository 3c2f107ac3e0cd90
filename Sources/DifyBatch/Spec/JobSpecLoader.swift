import Crypto
import Foundation
import Yams

/// Loads and validates job specs. Every problem is a ``SpecError`` naming the file, the key path, the line and
/// what is allowed; nothing is touched before all specs load.
public enum JobSpecLoader {
    /// Loads every spec; a folder means every `*.yaml`/`*.yml` in it. Names must be unique.
    public static func load(paths: [String]) throws -> [JobSpec] {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw SpecError(file: path, message: "no such spec file or folder")
            }
            if isDirectory.boolValue {
                let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                let specs = entries.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
                guard !specs.isEmpty else { throw SpecError(file: path, message: "the folder holds no *.yaml job specs") }
                files += specs.map { (path as NSString).appendingPathComponent($0) }
            } else {
                files.append(path)
            }
        }
        var specs: [JobSpec] = []
        for file in files {
            let spec = try load(path: file)
            if let other = specs.first(where: { $0.name == spec.name }) {
                throw SpecError(file: file, keyPath: "name", message: "job name \"\(spec.name)\" is also used by \(other.specPath); names must be unique")
            }
            specs.append(spec)
        }
        return specs
    }

    /// Loads one spec file.
    public static func load(path: String) throws -> JobSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SpecError(file: path, message: "cannot read the spec file; check the path and its permissions")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw SpecError(file: path, message: "the spec is not UTF-8 text")
        }
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        let hash = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        return try parse(text, path: absolute, hash: hash)
    }

    /// Parses spec text; relative paths resolve against the folder of `path`.
    public static func parse(_ text: String, path: String, hash: String = "") throws -> JobSpec {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw SpecError(file: path, line: yamlLine(error), message: "not valid YAML: \(yamlProblem(error))")
        }
        guard let root, let mapping = root.mapping else {
            throw SpecError(file: path, message: "the spec must be a YAML mapping with at least `inbox`, `outbox` and `dify.base_url`")
        }
        let reader = SpecNode(file: path, keyPath: "", node: .mapping(mapping))
        return try build(reader, path: path, hash: hash)
    }

    static let topKeys: Set<String> = ["name", "inbox", "outbox", "dify", "match", "concurrency", "rate_limit", "retry",
                                       "timeout", "recover_deadline", "after_success", "archive", "failed_folder", "recovery", "extractors",
                                       "max_active"]
    static let difyKeys: Set<String> = ["base_url", "api_key_env", "api_key_file", "app", "file_input", "inputs",
                                        "response_mode", "user", "query", "workflow_id", "text_input", "attach"]
    static let matchKeys: Set<String> = ["include", "exclude", "recursive", "settle", "max_size"]
    static let retryKeys: Set<String> = ["max_attempts", "base_delay", "max_delay", "max_backpressure"]
    static let recoveryKeys: Set<String> = ["on_unknown"]

    private static func build(_ root: SpecNode, path: String, hash: String) throws -> JobSpec {
        try root.checkKeys(allowed: topKeys)
        let folder = (path as NSString).deletingLastPathComponent
        func resolve(_ value: String) -> String {
            let expanded = (value as NSString).expandingTildeInPath
            let joined = expanded.hasPrefix("/") ? expanded : (folder as NSString).appendingPathComponent(expanded)
            return URL(fileURLWithPath: joined).standardizedFileURL.path
        }

        let defaultName = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        let name = try root.string("name") ?? defaultName
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw root.error("name", "must be letters, digits, '-', '_' or '.' (got \"\(name)\")")
        }
        guard let inboxText = try root.string("inbox") else {
            throw root.error("inbox", "is required: the folder documents are dropped into (relative to the spec's folder)")
        }
        guard let outboxText = try root.string("outbox") else {
            throw root.error("outbox", "is required: the folder results are written to (relative to the spec's folder)")
        }
        let inbox = resolve(inboxText)
        let outbox = resolve(outboxText)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: inbox, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw root.error("inbox", "the folder \(inbox) does not exist; create it (mkdir -p) or fix the path")
        }
        guard inbox != outbox else { throw root.error("outbox", "must differ from inbox") }

        // dify
        guard let difyNode = try root.child("dify") else {
            throw root.error("dify", "is required, with at least base_url (for example https://api.dify.ai/v1)")
        }
        if difyNode.has("api_key") {
            throw difyNode.error("api_key", "API keys must not be written in a spec; put the key in an environment variable named by api_key_env (default DIFY_API_KEY) or in a file named by api_key_file")
        }
        try difyNode.checkKeys(allowed: difyKeys)
        guard let baseURL = try difyNode.string("base_url") else {
            throw difyNode.error("base_url", "is required: the service API URL, for example https://api.dify.ai/v1")
        }
        guard let url = URL(string: baseURL), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw difyNode.error("base_url", "must be an http(s) URL such as https://api.dify.ai/v1 (got \"\(baseURL)\")")
        }
        let keyEnv = try difyNode.string("api_key_env")
        let keyFile = try difyNode.string("api_key_file")
        if keyEnv != nil && keyFile != nil {
            throw difyNode.error("api_key_file", "give either api_key_env or api_key_file, not both")
        }
        if let keyEnv, !keyEnv.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) || keyEnv.isEmpty {
            throw difyNode.error("api_key_env", "must be the NAME of an environment variable (letters, digits, _), not the key itself")
        }
        if let keyEnv, keyEnv.hasPrefix("app-") {
            throw difyNode.error("api_key_env", "looks like an API key; name the environment variable that holds it instead")
        }
        let apiKey: APIKeySource = keyFile.map { .file(resolve($0)) } ?? .environment(keyEnv ?? "DIFY_API_KEY")
        let appText = try difyNode.string("app") ?? "auto"
        guard let app = DifySettings.AppSelection(rawValue: appText) else {
            throw difyNode.error("app", "must be one of auto, workflow, completion, chat (got \"\(appText)\")")
        }
        let responseMode = try difyNode.string("response_mode") ?? "streaming"
        guard ["streaming", "blocking"].contains(responseMode) else {
            throw difyNode.error("response_mode", "must be streaming or blocking (got \"\(responseMode)\")")
        }
        var inputs: [String: SpecValue] = [:]
        if let inputsNode = try difyNode.child("inputs") {
            guard case .map(let map) = inputsNode.value() else {
                throw difyNode.error("inputs", "must be a mapping of input variable names to values, e.g. {language: en}")
            }
            inputs = map
        }
        let user = try difyNode.string("user") ?? "dify-batch-\(name)"
        guard !user.isEmpty else { throw difyNode.error("user", "must not be empty") }
        let attachText = try difyNode.string("attach") ?? "auto"
        guard let attach = DifySettings.AttachMode(rawValue: attachText) else {
            throw difyNode.error("attach", "must be one of auto, always, never (got \"\(attachText)\")")
        }
        let fileInput = try difyNode.string("file_input"), textInput = try difyNode.string("text_input")
        if fileInput != nil && textInput != nil {
            throw difyNode.error("text_input", "give either file_input (the file goes to a file variable) or text_input (its text goes to a text variable), not both")
        }
        let dify = DifySettings(baseURL: baseURL, apiKey: apiKey, app: app, fileInput: fileInput,
                                inputs: inputs, responseMode: responseMode, user: user,
                                query: try difyNode.string("query"), workflowID: try difyNode.string("workflow_id"),
                                textInput: textInput, attach: attach)

        // match
        var match = MatchRules(include: [], exclude: [], recursive: true, settle: .seconds(2), maxSize: nil)
        if let matchNode = try root.child("match") {
            try matchNode.checkKeys(allowed: matchKeys)
            match.include = try matchNode.stringList("include") ?? []
            match.exclude = try matchNode.stringList("exclude") ?? []
            match.recursive = try matchNode.bool("recursive") ?? true
            match.settle = try matchNode.duration("settle") ?? .seconds(2)
            match.maxSize = try matchNode.size("max_size")
        }

        let concurrency = try root.int("concurrency", range: 1...256) ?? 4
        let rateLimit = try root.int("rate_limit", range: 1...1_000_000)
        let maxActive = try root.int("max_active", range: 1...100_000)
        var retry = RetryPolicy()
        if let retryNode = try root.child("retry") {
            try retryNode.checkKeys(allowed: retryKeys)
            retry.maxAttempts = try retryNode.int("max_attempts", range: 1...1000) ?? 5
            retry.baseDelay = try retryNode.duration("base_delay") ?? .seconds(1)
            retry.maxDelay = try retryNode.duration("max_delay") ?? .seconds(300)
            guard retry.maxDelay >= retry.baseDelay else {
                throw retryNode.error("max_delay", "must be at least base_delay (\(HumanDuration.format(retry.baseDelay)))")
            }
            retry.maxBackpressure = try retryNode.duration("max_backpressure") ?? .seconds(900)
            guard retry.maxBackpressure > .zero else {
                throw retryNode.error("max_backpressure", "must be longer than 0s")
            }
        }
        var recovery = RecoverySettings()
        if let recoveryNode = try root.child("recovery") {
            try recoveryNode.checkKeys(allowed: recoveryKeys)
            let text = try recoveryNode.string("on_unknown") ?? "park"
            guard let onUnknown = RecoverySettings.OnUnknown(rawValue: text) else {
                throw recoveryNode.error("on_unknown", "must be park (default: keep it `unresolved` until you decide) or resend (send it again; it may run twice) (got \"\(text)\")")
            }
            recovery.onUnknown = onUnknown
        }
        let timeout = try root.duration("timeout") ?? .seconds(600)
        guard timeout > .zero else { throw root.error("timeout", "must be longer than 0s") }
        let recoverDeadline = try root.duration("recover_deadline") ?? .seconds(1800)
        let afterText = try root.string("after_success") ?? "move"
        guard let afterSuccess = JobSpec.AfterSuccess(rawValue: afterText) else {
            throw root.error("after_success", "must be one of move, keep, delete (got \"\(afterText)\")")
        }
        let archive = try root.string("archive").map(resolve) ?? URL(fileURLWithPath: inbox).deletingLastPathComponent().appendingPathComponent("done").standardizedFileURL.path
        let failedFolder = try root.string("failed_folder").map(resolve)
        if afterSuccess == .move && (archive == inbox || archive.hasPrefix(inbox + "/")) && match.recursive {
            throw root.error("archive", "must be outside the inbox when match.recursive is true (it would be scanned again)")
        }

        var extractors: [String: ExtractorCommand] = [:]
        if let extractorsNode = try root.child("extractors") {
            for key in extractorsNode.keys {
                guard let entry = try extractorsNode.child(key) else { continue }
                try entry.checkKeys(allowed: ["command", "timeout"])
                guard let command = try entry.string("command"), command.contains("{path}") else {
                    throw entry.error("command", "is required and must contain {path}, e.g. \"pdftotext -layout {path} -\" (stdout is the text)")
                }
                let timeout = try entry.duration("timeout") ?? .seconds(60)
                guard timeout > .zero else { throw entry.error("timeout", "must be longer than 0s") }
                extractors[TextExtractor.normalise(key)] = ExtractorCommand(command: command, timeout: timeout)
            }
        }

        var spec = JobSpec(name: name, specPath: path, specHash: hash, inbox: inbox, outbox: outbox, dify: dify, match: match,
                           concurrency: concurrency, rateLimit: rateLimit, retry: retry, timeout: timeout,
                           recoverDeadline: recoverDeadline, afterSuccess: afterSuccess, archive: archive, failedFolder: failedFolder,
                           recovery: recovery, extractors: extractors)
        spec.maxActive = maxActive
        return spec
    }

    private static func yamlLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    private static func yamlProblem(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): return problem
        default: return "\(error)"
        }
    }
}

/// A mapping node in a spec with the path that led to it, for precise errors.
struct SpecNode {
    let file: String
    let keyPath: String
    let node: Node

    private var pairs: [(key: String, value: Node, line: Int?)] {
        guard let mapping = node.mapping else { return [] }
        return mapping.map { (key: $0.key.string ?? "", value: $0.value, line: $0.key.mark?.line) }
    }

    func path(_ key: String) -> String { keyPath.isEmpty ? key : "\(keyPath).\(key)" }

    func error(_ key: String, _ message: String) -> SpecError {
        let line = pairs.first { $0.key == key }?.line ?? node.mark?.line
        return SpecError(file: file, keyPath: path(key), line: line, message: message)
    }

    func has(_ key: String) -> Bool { pairs.contains { $0.key == key } }

    /// The mapping's keys in file order.
    var keys: [String] { pairs.map(\.key) }

    func checkKeys(allowed: Set<String>) throws {
        for pair in pairs where !allowed.contains(pair.key) {
            let suggestion = allowed.min { distance($0, pair.key) < distance($1, pair.key) }
            var message = "unknown key; allowed here: \(allowed.sorted().joined(separator: ", "))"
            if let suggestion, distance(suggestion, pair.key) <= 2 { message = "unknown key (did you mean \(suggestion)?); allowed here: \(allowed.sorted().joined(separator: ", "))" }
            throw SpecError(file: file, keyPath: path(pair.key), line: pair.line, message: message)
        }
    }

    private func raw(_ key: String) -> Node? {
        guard let value = pairs.first(where: { $0.key == key })?.value else { return nil }
        if value.tag.rawValue == Tag.Name.null.rawValue { return nil }
        return value
    }

    func child(_ key: String) throws -> SpecNode? {
        guard let value = raw(key) else { return nil }
        guard value.mapping != nil else { throw error(key, "must be a mapping (indented keys below it)") }
        return SpecNode(file: file, keyPath: path(key), node: value)
    }

    func string(_ key: String) throws -> String? {
        guard let value = raw(key) else { return nil }
        guard let scalar = value.scalar else { throw error(key, "must be a single value, not a list or mapping") }
        return scalar.string
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = raw(key) else { return nil }
        guard let bool = value.bool, value.tag.rawValue == Tag.Name.bool.rawValue else { throw error(key, "must be true or false") }
        return bool
    }

    func int(_ key: String, range: ClosedRange<Int>) throws -> Int? {
        guard let value = raw(key) else { return nil }
        guard value.tag.rawValue == Tag.Name.int.rawValue, let number = value.int, range.contains(number) else {
            throw error(key, "must be a whole number from \(range.lowerBound) to \(range.upperBound) (got \(value.string ?? "a non-number"))")
        }
        return number
    }

    func duration(_ key: String) throws -> Duration? {
        guard let text = try string(key) else { return nil }
        guard let duration = HumanDuration.parse(text) else {
            throw error(key, "must be a duration such as 500ms, 2s, 5m or 1h (got \"\(text)\")")
        }
        return duration
    }

    func size(_ key: String) throws -> Int64? {
        guard let text = try string(key) else { return nil }
        guard let size = ByteSize.parse(text), size > 0 else {
            throw error(key, "must be a size such as 512KB, 15MB or 1GB (got \"\(text)\")")
        }
        return size
    }

    func stringList(_ key: String) throws -> [String]? {
        guard let value = raw(key) else { return nil }
        if let scalar = value.scalar { return [scalar.string] }
        guard let sequence = value.sequence else { throw error(key, "must be a list of glob patterns, e.g. [\"*.pdf\", \"*.txt\"]") }
        return try sequence.map { item in
            guard let text = item.scalar?.string else { throw error(key, "must be a list of glob patterns (strings)") }
            return text
        }
    }

    /// The node as a plain value (for `inputs`).
    func value() -> SpecValue { Self.value(node) }

    static func value(_ node: Node) -> SpecValue {
        switch node {
        case .scalar:
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .null: return .null
            case .bool: return node.bool.map(SpecValue.bool) ?? .string(node.string ?? "")
            case .int: return node.int.map(SpecValue.int) ?? .string(node.string ?? "")
            case .float: return node.float.map(SpecValue.double) ?? .string(node.string ?? "")
            default: return .string(node.string ?? "")
            }
        case .mapping(let mapping):
            var map: [String: SpecValue] = [:]
            for pair in mapping { map[pair.key.string ?? ""] = value(pair.value) }
            return .map(map)
        case .sequence(let sequence):
            return .list(sequence.map(value))
        case .alias:
            return .null
        }
    }
}

/// Edit distance, for "did you mean" hints.
private func distance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
