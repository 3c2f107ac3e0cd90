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

    /// What a jobs folder holds: the specs that load, and one error (listing all of its problems) per file that
    /// does not. A missing path or an empty folder is an error of its own.
    public struct FolderReport: Sendable, Equatable {
        public var specs: [JobSpec]
        public var failures: [SpecError]
    }

    /// Loads what can be loaded (issue 16: one bad spec does not stop the others). A duplicate job name makes the
    /// later file a failure.
    public static func loadReport(paths: [String]) -> FolderReport {
        var report = FolderReport(specs: [], failures: [])
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                report.failures.append(SpecError(file: path, message: "no such spec file or folder"))
                continue
            }
            if isDirectory.boolValue {
                let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                let specs = entries.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
                if specs.isEmpty { report.failures.append(SpecError(file: path, message: "the folder holds no *.yaml job specs")) }
                files += specs.map { (path as NSString).appendingPathComponent($0) }
            } else {
                files.append(path)
            }
        }
        for file in files {
            do {
                let spec = try load(path: file)
                if let other = report.specs.first(where: { $0.name == spec.name }) {
                    throw SpecError(file: file, keyPath: "name", message: "job name \"\(spec.name)\" is also used by \(other.specPath); names must be unique")
                }
                report.specs.append(spec)
            } catch let error as SpecError {
                report.failures.append(error)
            } catch {
                report.failures.append(SpecError(file: file, message: "\(error)"))
            }
        }
        return report
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
                                       "max_active", "rows"]
    static let difyKeys: Set<String> = ["base_url", "api_key_env", "api_key_file", "app", "file_input", "inputs",
                                        "response_mode", "user", "query", "workflow_id", "text_input", "attach", "ca_file"]
    static let matchKeys: Set<String> = ["include", "exclude", "recursive", "settle", "max_size", "settle_timeout"]
    static let retryKeys: Set<String> = ["max_attempts", "base_delay", "max_delay", "max_backpressure"]
    static let recoveryKeys: Set<String> = ["on_unknown"]

    /// Builds the spec, collecting every problem (a bad value falls back to its default so the checks after it
    /// still run); throws one ``SpecError`` listing them all in file order.
    private static func build(_ root: SpecNode, path: String, hash: String) throws -> JobSpec {
        var problems: [SpecError] = []
        /// Runs one check; a ``SpecError`` is recorded and the value is nil.
        func soft<T>(_ body: () throws -> T?) -> T? {
            do { return try body() } catch let error as SpecError { problems.append(error); return nil } catch { return nil }
        }
        func fail(_ error: SpecError) { problems.append(error) }
        problems += root.unknownKeys(allowed: topKeys)
        let folder = PathText.folder(of: path)
        func resolve(_ value: String) -> String {
            let expanded = (value as NSString).expandingTildeInPath
            let joined = expanded.hasPrefix("/") ? expanded : (folder as NSString).appendingPathComponent(expanded)
            return URL(fileURLWithPath: joined).standardizedFileURL.path
        }

        let defaultName = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        var name = soft { try root.string("name") } ?? defaultName
        if name.isEmpty || !name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) {
            fail(root.error("name", "must be letters, digits, '-', '_' or '.' (got \"\(name)\")"))
            name = defaultName
        }
        // An empty folder name would be the spec's own folder (its spec, ledger and logs taken as documents).
        func folderText(_ key: String) -> String? {
            guard let text = soft({ try root.string(key) }) else { return nil }
            guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
                fail(root.error(key, "must name a folder (got an empty value); write . for the spec's own folder"))
                return nil
            }
            return text
        }
        let inboxText = folderText("inbox")
        if inboxText == nil && !root.hasValue("inbox") {
            fail(root.error("inbox", "is required: the folder documents are dropped into (relative to the spec's folder)"))
        }
        let outboxText = folderText("outbox")
        if outboxText == nil && !root.hasValue("outbox") {
            fail(root.error("outbox", "is required: the folder results are written to (relative to the spec's folder)"))
        }
        let inbox = inboxText.map(resolve) ?? resolve("inbox")
        let outbox = outboxText.map(resolve) ?? resolve("outbox")
        if inboxText != nil {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: inbox, isDirectory: &isDirectory) || !isDirectory.boolValue {
                fail(root.error("inbox", "the folder \(inbox) does not exist; create it (mkdir -p) or fix the path"))
            }
        }
        if inboxText != nil && inbox == outbox { fail(root.error("outbox", "must differ from inbox")) }

        // dify
        var dify = DifySettings(baseURL: "", apiKey: .environment("DIFY_API_KEY"), app: .auto, fileInput: nil, inputs: [:],
                                responseMode: "streaming", user: "dify-batch-\(name)", query: nil, workflowID: nil)
        let difyNode = soft { try root.child("dify") }
        if difyNode == nil && !root.hasValue("dify") {
            fail(root.error("dify", "is required, with at least base_url (for example https://api.dify.ai/v1)"))
        }
        if let difyNode {
            if difyNode.has("api_key") {
                fail(difyNode.error("api_key", "API keys must not be written in a spec; put the key in an environment variable named by api_key_env (default DIFY_API_KEY) or in a file named by api_key_file"))
            }
            problems += difyNode.unknownKeys(allowed: difyKeys.union(["api_key"]))
            if let baseURL = soft({ try difyNode.string("base_url") }) {
                if let url = URL(string: baseURL), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil {
                    dify.baseURL = baseURL
                } else {
                    fail(difyNode.error("base_url", "must be an http(s) URL such as https://api.dify.ai/v1 (got \"\(baseURL)\")"))
                }
            } else if !difyNode.hasValue("base_url") {
                fail(difyNode.error("base_url", "is required: the service API URL, for example https://api.dify.ai/v1"))
            }
            var keyEnv = soft { try difyNode.string("api_key_env") }
            let keyFile = soft { try difyNode.string("api_key_file") }
            if keyEnv != nil && keyFile != nil {
                fail(difyNode.error("api_key_file", "give either api_key_env or api_key_file, not both"))
            }
            if let name = keyEnv, name.isEmpty || !name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
                fail(difyNode.error("api_key_env", "must be the NAME of an environment variable (letters, digits, _), not the key itself"))
                keyEnv = nil
            } else if let name = keyEnv, name.hasPrefix("app-") {
                fail(difyNode.error("api_key_env", "looks like an API key; name the environment variable that holds it instead"))
                keyEnv = nil
            }
            dify.apiKey = keyFile.map { .file(resolve($0)) } ?? .environment(keyEnv ?? "DIFY_API_KEY")
            let appText = soft { try difyNode.string("app") } ?? "auto"
            if let app = DifySettings.AppSelection(rawValue: appText) {
                dify.app = app
            } else {
                fail(difyNode.error("app", "must be one of auto, workflow, completion, chat (got \"\(appText)\")"))
            }
            let responseMode = soft { try difyNode.string("response_mode") } ?? "streaming"
            if ["streaming", "blocking"].contains(responseMode) {
                dify.responseMode = responseMode
            } else {
                fail(difyNode.error("response_mode", "must be streaming or blocking (got \"\(responseMode)\")"))
            }
            if let inputsNode = soft({ try difyNode.child("inputs") }) {
                if case .map(let map) = inputsNode.value() {
                    dify.inputs = map
                } else {
                    fail(difyNode.error("inputs", "must be a mapping of input variable names to values, e.g. {language: en}"))
                }
            }
            let user = soft { try difyNode.string("user") } ?? "dify-batch-\(name)"
            if user.isEmpty { fail(difyNode.error("user", "must not be empty")) } else { dify.user = user }
            let attachText = soft { try difyNode.string("attach") } ?? "auto"
            if let attach = DifySettings.AttachMode(rawValue: attachText) {
                dify.attach = attach
            } else {
                fail(difyNode.error("attach", "must be one of auto, always, never (got \"\(attachText)\")"))
            }
            dify.fileInput = soft { try difyNode.string("file_input") }
            dify.textInput = soft { try difyNode.string("text_input") }
            if dify.fileInput != nil && dify.textInput != nil {
                fail(difyNode.error("text_input", "give either file_input (the file goes to a file variable) or text_input (its text goes to a text variable), not both"))
            }
            dify.query = soft { try difyNode.string("query") }
            dify.workflowID = soft { try difyNode.string("workflow_id") }
            if let caText = soft({ try difyNode.string("ca_file") }) {
                let caFile = resolve(caText)
                if let data = FileManager.default.contents(atPath: caFile) {
                    if String(decoding: data, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") {
                        dify.caFile = caFile
                    } else {
                        fail(difyNode.error("ca_file", "\(caFile) holds no PEM certificate (-----BEGIN CERTIFICATE-----)"))
                    }
                } else {
                    fail(difyNode.error("ca_file", "cannot read \(caFile); name a readable PEM file of CA certificates"))
                }
            }
        }

        // match
        var match = MatchRules(include: [], exclude: [], recursive: true, settle: .seconds(2), maxSize: nil)
        if let matchNode = soft({ try root.child("match") }) {
            problems += matchNode.unknownKeys(allowed: matchKeys)
            match.include = soft { try matchNode.stringList("include") } ?? []
            match.exclude = soft { try matchNode.stringList("exclude") } ?? []
            match.recursive = soft { try matchNode.bool("recursive") } ?? true
            match.settle = soft { try matchNode.duration("settle") } ?? .seconds(2)
            match.maxSize = soft { try matchNode.size("max_size") }
            if let timeout = soft({ try matchNode.duration("settle_timeout") }) {
                if timeout > match.settle {
                    match.settleTimeout = timeout
                } else {
                    fail(matchNode.error("settle_timeout", "must be longer than match.settle (\(HumanDuration.format(match.settle)))"))
                }
            } else if !matchNode.hasValue("settle_timeout") && match.settle >= match.settleTimeout {
                // `run` would give up on every file before it could settle.
                fail(matchNode.error("settle", "must be shorter than match.settle_timeout (\(HumanDuration.format(match.settleTimeout)) by default); set match.settle_timeout longer"))
            }
        }

        let concurrency = soft { try root.int("concurrency", range: 1...256) } ?? 4
        let rateLimit = soft { try root.int("rate_limit", range: 1...1_000_000) }
        let maxActive = soft { try root.int("max_active", range: 1...100_000) }
        var retry = RetryPolicy()
        if let retryNode = soft({ try root.child("retry") }) {
            problems += retryNode.unknownKeys(allowed: retryKeys)
            retry.maxAttempts = soft { try retryNode.int("max_attempts", range: 1...1000) } ?? 5
            retry.baseDelay = soft { try retryNode.duration("base_delay") } ?? .seconds(1)
            retry.maxDelay = soft { try retryNode.duration("max_delay") } ?? .seconds(300)
            if retry.maxDelay < retry.baseDelay {
                fail(retryNode.error("max_delay", "must be at least base_delay (\(HumanDuration.format(retry.baseDelay)))"))
            }
            let maxBackpressure = soft { try retryNode.duration("max_backpressure") } ?? .seconds(900)
            if maxBackpressure > .zero {
                retry.maxBackpressure = maxBackpressure
            } else {
                fail(retryNode.error("max_backpressure", "must be longer than 0s"))
            }
        }
        var recovery = RecoverySettings()
        if let recoveryNode = soft({ try root.child("recovery") }) {
            problems += recoveryNode.unknownKeys(allowed: recoveryKeys)
            let text = soft { try recoveryNode.string("on_unknown") } ?? "park"
            if let onUnknown = RecoverySettings.OnUnknown(rawValue: text) {
                recovery.onUnknown = onUnknown
            } else {
                fail(recoveryNode.error("on_unknown", "must be park (default: keep it `unresolved` until you decide) or resend (send it again; it may run twice) (got \"\(text)\")"))
            }
        }
        var timeout = soft { try root.duration("timeout") } ?? .seconds(600)
        if timeout <= .zero {
            fail(root.error("timeout", "must be longer than 0s"))
            timeout = .seconds(600)
        }
        let recoverDeadline = soft { try root.duration("recover_deadline") } ?? .seconds(1800)
        let afterText = soft { try root.string("after_success") } ?? "move"
        let afterSuccess = JobSpec.AfterSuccess(rawValue: afterText) ?? .move
        if JobSpec.AfterSuccess(rawValue: afterText) == nil {
            fail(root.error("after_success", "must be one of move, keep, delete (got \"\(afterText)\")"))
        }
        let archive = folderText("archive").map(resolve) ?? URL(fileURLWithPath: inbox).deletingLastPathComponent().appendingPathComponent("done").standardizedFileURL.path
        let failedFolder = folderText("failed_folder").map(resolve)
        if inboxText != nil && afterSuccess == .move && (archive == inbox || archive.hasPrefix(inbox + "/")) && match.recursive {
            fail(root.error("archive", "must be outside the inbox when match.recursive is true (it would be scanned again)"))
        }

        var extractors: [String: ExtractorCommand] = [:]
        do {
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
        } catch let error as SpecError {
            fail(error)
        }

        let rows = soft { try root.bool("rows") } ?? false
        if let first = SpecError.combined(problems) { throw first }
        var spec = JobSpec(name: name, specPath: path, specHash: hash, inbox: inbox, outbox: outbox, dify: dify, match: match,
                           concurrency: concurrency, rateLimit: rateLimit, retry: retry, timeout: timeout,
                           recoverDeadline: recoverDeadline, afterSuccess: afterSuccess, archive: archive, failedFolder: failedFolder,
                           recovery: recovery, extractors: extractors)
        spec.maxActive = maxActive
        spec.rows = rows
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

    /// Whether `key` is given a value: present and not null (`inbox:` or `inbox: ~` give none).
    func hasValue(_ key: String) -> Bool { raw(key) != nil }

    /// One error per key not in `allowed`, with a "did you mean" when a close key exists.
    func unknownKeys(allowed: Set<String>) -> [SpecError] {
        let shown = allowed.subtracting(["api_key"])
        return pairs.filter { !allowed.contains($0.key) }.map { pair in
            let suggestion = shown.min { distance($0, pair.key) < distance($1, pair.key) }
            var message = "unknown key; allowed here: \(shown.sorted().joined(separator: ", "))"
            if let suggestion, distance(suggestion, pair.key) <= 2 { message = "unknown key (did you mean \(suggestion)?); allowed here: \(shown.sorted().joined(separator: ", "))" }
            return SpecError(file: file, keyPath: path(pair.key), line: pair.line, message: message)
        }
    }

    /// The mapping's keys in file order.
    var keys: [String] { pairs.map(\.key) }

    func checkKeys(allowed: Set<String>) throws {
        if let first = unknownKeys(allowed: allowed).first { throw first }
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
