import DifyKit
import Foundation

/// What `dify-batch check` found for one job: the app behind the key, its file input and other inputs, the
/// upload limits, and which files now in the inbox would be rejected. Built by ``JobCheck/run(spec:environment:timeouts:known:)``.
public struct JobCheckReport: Encodable, Sendable {
    /// How the check ended.
    public enum Verdict: String, Encodable, Sendable {
        /// The job can work (exit 0).
        case ok
        /// The API key cannot be read (exit 2).
        case specError = "spec_error"
        /// Dify refused the key, or the app does not fit the spec (exit 3).
        case configuration
        /// Dify could not be reached, or its quota is exhausted (exit 4).
        case unavailable
    }

    public struct App: Encodable, Sendable {
        public var name: String?
        public var mode: String
        /// `dify.app` of the spec (`auto`, `workflow`, ...).
        public var specApp: String
    }

    public struct FileInput: Encodable, Sendable {
        public var variable: String
        /// `file` or `file-list`.
        public var type: String
        public var required: Bool
        /// Empty: any type.
        public var allowedFileTypes: [String]
        public var allowedFileExtensions: [String]
        /// Whether the spec names it (`dify.file_input`) or it was detected.
        public var fromSpec: Bool
    }

    /// The text variable that receives each document's text (`dify.text_input`, or detected).
    public struct TextInput: Encodable, Sendable {
        public var variable: String
        /// `paragraph` or `text-input`.
        public var type: String
        public var required: Bool
        /// Characters (nil: no limit).
        public var maxLength: Int?
        public var fromSpec: Bool
        /// `dify.attach` and the types the app's file upload feature accepts as attachments.
        public var attach: String
        public var attachTypes: [String]
    }

    /// How one inbox file's text will be had.
    public struct Extraction: Encodable, Sendable {
        public var path: String
        /// `utf8`, `pdftotext`, `docx`, `odt`, `pptx`, `command: …`.
        public var extractor: String
        /// Whether the file is also attached (top-level `files`).
        public var attached: Bool
    }

    public struct Input: Encodable, Sendable {
        public var variable: String
        public var type: String
        public var required: Bool
        /// `spec` (dify.inputs), `file` (the document goes there), `default` (the app's default), or nil (not provided).
        public var providedBy: String?
        public var hidden: Bool
    }

    public struct Limits: Encodable, Sendable {
        /// Dify's upload limit per file type, in bytes.
        public var document: Int64
        public var image: Int64
        public var audio: Int64
        public var video: Int64
        /// `match.max_size` of the spec, in bytes.
        public var maxSize: Int64?
    }

    public struct Rejection: Encodable, Sendable {
        public var path: String
        public var bytes: Int64
        public var code: String?
        public var message: String
    }

    public struct Inbox: Encodable, Sendable {
        public var path: String
        /// Files the job's `match` rules take.
        public var files: Int
        /// Of those, the ones the ledger already holds in this version (they are not taken again).
        public var alreadyInLedger: Int?
        /// Files that would be rejected without upload, and why.
        public var rejected: [Rejection]
        /// Sub-folders that cannot be read.
        public var problems: [String]
        /// The file whose outbox names are the longest, and whether they fit the 255-byte name limit (nil: no files).
        public var longestName: LongestName? = nil
        /// Text inputs only: how each file that is not rejected will be extracted.
        public var extraction: [Extraction] = []
        /// Files present but left out by `match.include`/`exclude` (relative paths).
        public var notMatched: [String] = []
        /// `rows: true` (issue 13): each table as the job would read it.
        public var tables: [Table] = []
        /// The ledger that owns the inbox (its `.dify-batch-owner`, see ``InboxOwnership``); nil when none has run it.
        public var owner: Owner? = nil
    }

    /// The ledger recorded as the owner of an inbox: `run`/`watch` with any other ledger is refused (exit 2).
    public struct Owner: Encodable, Sendable {
        public var ledgerID: String
        public var ledger: String
        public var job: String
        public var host: String
        public var claimedAt: String
        /// The marker file it was read from.
        public var file: String
    }

    /// The inbox file with the longest `.error.json` (or temporary) name in the outbox.
    /// One table of a `rows: true` job: its rows, which columns fill which variables, and what would be rejected.
    public struct Table: Encodable, Sendable {
        public var path: String
        public var rows: Int
        /// Columns named for an input variable (and `query` for a chat app).
        public var matched: [String]
        /// Columns no variable takes (not sent).
        public var unknown: [String]
        /// Why the whole table would be rejected (nil: its rows run).
        public var rejection: String?
        /// Rows that would be rejected, with the reason.
        public var rejectedRows: [RejectedRow]
    }

    public struct RejectedRow: Encodable, Sendable {
        public var row: Int
        public var message: String
    }

    public struct LongestName: Encodable, Sendable {
        public var path: String
        /// Bytes of the longest name the outbox needs for it (the temporary file's, while it is written).
        public var bytes: Int
        public var fits: Bool
    }

    public var job: String
    public var specPath: String
    public var baseURL: String
    /// Where the key comes from (`env NAME` or `file PATH`); never the key.
    public var apiKey: String
    public var verdict: Verdict
    public var exitCode: Int32
    /// Why the job cannot work (empty when `verdict == .ok`).
    public var problems: [String] = []
    /// Things that do not stop the job but deserve a look.
    public var warnings: [String] = []
    public var app: App?
    public var fileInput: FileInput?
    public var textInput: TextInput?
    public var inputs: [Input] = []
    public var limits: Limits?
    public var inbox: Inbox?

    init(spec: JobSpec) {
        job = spec.name
        specPath = spec.specPath
        baseURL = spec.dify.baseURL
        apiKey = spec.dify.apiKey.description
        verdict = .ok
        exitCode = ExitStatus.success.rawValue
    }

    mutating func fail(_ verdict: Verdict, _ status: ExitStatus, _ message: String) {
        self.verdict = verdict
        exitCode = status.rawValue
        problems.append(message)
    }

    /// The report as pretty JSON with snake_case keys.
    public static func json(_ reports: [JobCheckReport]) throws -> String {
        struct Document: Encodable {
            var ok: Bool
            var exitCode: Int32
            var jobs: [JobCheckReport]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let document = Document(ok: reports.allSatisfy { $0.verdict == .ok }, exitCode: JobCheck.exitCode(reports), jobs: reports)
        return String(decoding: try encoder.encode(document), as: UTF8.self) + "\n"
    }

    /// A human-readable report.
    public func renderText() -> String {
        var lines: [String] = []
        func row(_ label: String, _ value: String) { lines.append("  " + label.padding(toLength: 13, withPad: " ", startingAt: 0) + value) }
        func more(_ value: String) { lines.append(String(repeating: " ", count: 15) + value) }
        lines.append("job \(job) (\(specPath))")
        row("dify:", "\(baseURL), key from \(apiKey)")
        if let app {
            row("app:", "\(app.name.map { "\"\($0)\", " } ?? "")\(app.mode) app (dify.app: \(app.specApp))")
        }
        if let fileInput {
            let types = fileInput.allowedFileTypes.isEmpty ? "any type" : fileInput.allowedFileTypes.joined(separator: ", ")
            let extensions = fileInput.allowedFileExtensions.isEmpty ? "" : "; extensions " + fileInput.allowedFileExtensions.joined(separator: " ")
            row("file input:", "\(fileInput.variable) (\(fileInput.type), \(fileInput.required ? "required" : "optional"), \(fileInput.fromSpec ? "dify.file_input" : "detected")) accepts \(types)\(extensions)")
        }
        if let textInput {
            let limit = textInput.maxLength.map { "max \($0) characters" } ?? "no length limit"
            let attach = textInput.attachTypes.isEmpty ? "no attachments (file upload off)" : "attach \(textInput.attach): \(textInput.attachTypes.joined(separator: ", "))"
            row("text input:", "\(textInput.variable) (\(textInput.type), \(textInput.required ? "required" : "optional"), \(limit), \(textInput.fromSpec ? "dify.text_input" : "detected")) gets each document's text; \(attach)")
        }
        let others = inputs.filter { $0.providedBy != "file" && $0.providedBy != "text" }
        if !others.isEmpty {
            for (index, input) in others.enumerated() {
                let state: String
                switch input.providedBy {
                case "spec"?: state = "provided by the spec"
                case "default"?: state = "the app's default is used"
                case "table column"?: state = "from the table's column of that name (rows: true)"
                default: state = input.required ? "MISSING: add it under dify.inputs" : "not provided (optional)"
                }
                let text = "\(input.variable) (\(input.type), \(input.required ? "required" : "optional")): \(state)"
                if index == 0 { row("inputs:", text) } else { more(text) }
            }
        } else if app != nil {
            row("inputs:", "none besides the file")
        }
        if let limits {
            var text = "document \(ByteSize.format(limits.document)), image \(ByteSize.format(limits.image)), audio \(ByteSize.format(limits.audio)), video \(ByteSize.format(limits.video))"
            if let maxSize = limits.maxSize { text += "; match.max_size \(ByteSize.format(maxSize))" }
            row("size limits:", text)
        }
        if let inbox {
            var text = "\(inbox.path): \(inbox.files) file\(inbox.files == 1 ? "" : "s")"
            if let known = inbox.alreadyInLedger, known > 0 { text += " (\(known) already in the ledger)" }
            text += inbox.rejected.isEmpty ? ", none would be rejected" : ", \(inbox.rejected.count) would be rejected:"
            row("inbox:", text)
            for rejection in inbox.rejected { more("\(rejection.path): \(rejection.message)") }
            if let owner = inbox.owner {
                more("owned by the ledger \(owner.ledger) (ledger id \(owner.ledgerID), job \(owner.job), host \(owner.host), since \(owner.claimedAt)): run it with that --db; another ledger is refused unless --take-over-inbox")
            }
            for problem in inbox.problems { more("cannot read \(problem)") }
            let byExtractor = Dictionary(grouping: inbox.extraction, by: \.extractor)
            for extractor in byExtractor.keys.sorted() {
                let paths = byExtractor[extractor]!.map(\.path)
                more("text by \(extractor): \(paths.prefix(8).joined(separator: ", "))\(paths.count > 8 ? " (+\(paths.count - 8) more)" : "")")
            }
            for table in inbox.tables {
                var text = "\(table.path): \(table.rows) row\(table.rows == 1 ? "" : "s"); columns → variables: \(table.matched.isEmpty ? "none" : table.matched.joined(separator: ", "))"
                if !table.unknown.isEmpty { text += "; not sent: \(table.unknown.joined(separator: ", "))" }
                if let rejection = table.rejection {
                    text += "; the whole file would be rejected: \(rejection)"
                } else {
                    text += table.rejectedRows.isEmpty ? "; no row would be rejected" : "; \(table.rejectedRows.count) row(s) would be rejected:"
                }
                more(text)
                for rejected in table.rejectedRows.prefix(20) { more("  row \(rejected.row): \(rejected.message)") }
                if table.rejectedRows.count > 20 { more("  (+\(table.rejectedRows.count - 20) more)") }
            }
            if !inbox.notMatched.isEmpty {
                more("not matched: \(inbox.notMatched.count) (\(inbox.notMatched.prefix(8).joined(separator: ", "))\(inbox.notMatched.count > 8 ? ", …" : "")); not processed: widen match.include or drop match.exclude to take them")
            }
        }
        for warning in warnings { row("warning:", warning) }
        switch verdict {
        case .ok: row("result:", "OK, the job can run")
        default:
            for (index, problem) in problems.enumerated() {
                if index == 0 { row("result:", "NOT OK (\(verdict.rawValue), exit \(exitCode)): \(problem)") } else { more(problem) }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// `dify-batch check`: everything a job needs, verified without uploading or running anything.
public enum JobCheck {
    /// Checks one job: resolves the key, asks `GET /info` and `GET /parameters`, runs ``JobPreflight/run(spec:client:)``
    /// and judges the files now in the inbox. `known`: the ledger's latest version per inbox path, if a ledger exists.
    public static func run(spec: JobSpec, environment: [String: String] = ProcessInfo.processInfo.environment,
                           timeouts: DifyClient.Timeouts = .init(connect: .seconds(5), responseHead: .seconds(20), streamIdle: .seconds(20), total: .seconds(30)),
                           known: [PathKey: DocumentRecord]? = nil) async -> JobCheckReport {
        var report = JobCheckReport(spec: spec)
        let key: String
        do {
            key = try spec.dify.apiKey.resolve(environment: environment)
        } catch var error as SpecError {
            if error.file == "environment" { error.file = spec.specPath }
            report.fail(.specError, .usage, "\(error)")
            return report
        } catch {
            report.fail(.specError, .usage, "\(error)")
            return report
        }
        checkFolders(spec: spec, into: &report)
        let httpClient = DifyClient.makeHTTPClient(timeouts: timeouts, maxConnectionsPerHost: 2,
                                                   trust: TLSTrust.resolve(caFile: spec.dify.caFile, environment: environment))
        let client = DifyClient(configuration: DifyClient.Configuration(baseURL: spec.dify.baseURL, apiKey: key, timeouts: timeouts),
                                httpClient: httpClient)
        await inspect(spec: spec, client: client, known: known, into: &report)
        try? await httpClient.shutdown()
        return report
    }

    /// The outbox, archive (`after_success: move`) and failed folder must be writable by this user: `run` would
    /// refuse to start the job (exit 2). Nothing is created: a missing folder's nearest parent is probed.
    static func checkFolders(spec: JobSpec, into report: inout JobCheckReport) {
        var folders = [("outbox", spec.outbox)]
        if spec.afterSuccess == .move { folders.append(("archive", spec.archive)) }
        if let failed = spec.failedFolder { folders.append(("failed_folder", failed)) }
        for (key, folder) in folders {
            do { try WritableFolder.verify(folder, create: false) } catch {
                report.fail(.specError, .usage, WritableFolder.problem(key: key, folder: folder, error: error))
            }
        }
    }

    /// The worst exit code of several reports: 2 before 3 before 4, else 0.
    public static func exitCode(_ reports: [JobCheckReport]) -> Int32 {
        for status in [ExitStatus.usage, .configuration, .unavailable] where reports.contains(where: { $0.exitCode == status.rawValue }) {
            return status.rawValue
        }
        return ExitStatus.success.rawValue
    }

    private static func inspect(spec: JobSpec, client: DifyClient, known: [PathKey: DocumentRecord]?, into report: inout JobCheckReport) async {
        let info: AppInfo
        let parameters: AppParameters
        do {
            info = try await client.info()
            parameters = try await client.parameters()
        } catch {
            fail(error, spec: spec, into: &report)
            return
        }
        report.app = .init(name: info.name, mode: info.mode.rawValue, specApp: spec.dify.app.rawValue)
        report.limits = .init(document: parameters.systemParameters.sizeLimitBytes(for: .document),
                              image: parameters.systemParameters.sizeLimitBytes(for: .image),
                              audio: parameters.systemParameters.sizeLimitBytes(for: .audio),
                              video: parameters.systemParameters.sizeLimitBytes(for: .video),
                              maxSize: spec.match.maxSize)
        // The file variable as the preflight would choose it (named by the spec, else the only file input).
        let plan = try? JobPreflight.resolve(spec: spec, mode: info.mode, parameters: parameters)
        let fileVariable: InputVariable?
        if spec.rows {
            fileVariable = nil  // issue 13: the table's columns fill the variables
        } else if let name = spec.dify.fileInput {
            fileVariable = parameters.variable(named: name).flatMap { $0.isFile ? $0 : nil }
        } else {
            let files = parameters.userInputForm.filter(\.isFile)
            fileVariable = files.count == 1 ? files[0] : nil
        }
        let textVariable = fileVariable == nil && !spec.rows ? plan?.textVariable : nil
        if let textVariable {
            report.textInput = .init(variable: textVariable.variable, type: textVariable.kind.rawValue, required: textVariable.required,
                                     maxLength: textVariable.maxLength, fromSpec: spec.dify.textInput != nil, attach: spec.dify.attach.rawValue,
                                     attachTypes: parameters.fileUploadFeature.isEnabled ? parameters.fileUploadFeature.allowedTypes.map(\.rawValue) : [])
        }
        if let fileVariable {
            report.fileInput = .init(variable: fileVariable.variable, type: fileVariable.kind.rawValue, required: fileVariable.required,
                                     allowedFileTypes: fileVariable.allowedFileTypes.map(\.rawValue),
                                     allowedFileExtensions: fileVariable.allowedFileExtensions, fromSpec: spec.dify.fileInput != nil)
        }
        for variable in parameters.userInputForm {
            let providedBy: String?
            if variable.variable == fileVariable?.variable {
                providedBy = "file"
            } else if variable.variable == textVariable?.variable {
                providedBy = "text"
            } else if spec.dify.inputs[variable.variable] != nil {
                providedBy = "spec"
            } else if spec.rows {
                providedBy = "table column"
            } else if variable.default != nil {
                providedBy = "default"
            } else {
                providedBy = nil
            }
            report.inputs.append(.init(variable: variable.variable, type: variable.kind.rawValue, required: variable.required,
                                       providedBy: providedBy, hidden: variable.hide))
        }
        let formNames = Set(parameters.userInputForm.map(\.variable))
        for name in spec.dify.inputs.keys.sorted() where !formNames.contains(name) {
            report.warnings.append("dify.inputs.\(name): the app has no input variable \"\(name)\"; Dify ignores it")
        }

        // The verdict is the pipeline's own preflight.
        var preflight: JobPreflight?
        do {
            preflight = try await JobPreflight.run(spec: spec, client: client)
        } catch let stop as JobStop {
            report.fail(stop.reason == .configuration ? .configuration : .unavailable, stop.exitStatus, stop.message)
        } catch {
            fail(error, spec: spec, into: &report)
        }
        if preflight == nil, let fileVariable {
            // Judge the inbox even though the preflight refused the job.
            preflight = JobPreflight(mode: info.mode, fileVariable: fileVariable, limits: parameters.systemParameters, maxSize: spec.match.maxSize)
        } else if preflight == nil, let plan, plan.textVariable != nil || plan.fileUpload.isEnabled {
            preflight = plan
        }
        guard let preflight else { return }
        report.inbox = inboxReport(spec: spec, preflight: preflight, known: known)
        if let longest = report.inbox?.longestName, !longest.fits {
            report.fail(.specError, .usage, "\(longest.path): its outbox file needs a \(longest.bytes)-byte name, more than the 255 bytes a file name may have; its result could not be written after the run is paid. Rename the file (shorter name)")
        }
    }

    /// Which files in the inbox the job would take, and which of them it would reject (never uploaded).
    static func inboxReport(spec: JobSpec, preflight: JobPreflight, known: [PathKey: DocumentRecord]?) -> JobCheckReport.Inbox {
        let excluded = [spec.outbox, spec.archive] + (spec.failedFolder.map { [$0] } ?? [])
        let scanner = InboxScanner(inbox: spec.inbox, rules: spec.match, excluding: excluded)
        var inbox = JobCheckReport.Inbox(path: spec.inbox, files: 0, alreadyInLedger: known.map { _ in 0 }, rejected: [], problems: [])
        for file in InboxOwnership.markerPaths(spec) {
            guard let owner = InboxOwnership.Owner(contentsOf: file) else { continue }
            inbox.owner = .init(ledgerID: owner.ledgerID, ledger: owner.ledger, job: owner.job, host: owner.host, claimedAt: owner.claimedAt, file: file)
            break
        }
        do {
            let scan = try scanner.scanAll()
            let (files, problems) = (scan.files, scan.problems)
            inbox.files = files.count
            inbox.problems = problems.map { "\($0.relativePath): \($0.message)" }
            inbox.notMatched = scan.notMatched
            let outbox = OutboxWriter(outbox: spec.outbox)
            let targets = OutboxTargets(spec: spec)
            for file in files {
                let bytes = [outbox.errorPath(for: file.relativePath), outbox.successPath(for: file.relativePath)].map { path in
                    let name = (path as NSString).lastPathComponent
                    return max(name.utf8.count, AtomicFile.temporaryName().utf8.count)
                }.max() ?? 0
                if bytes > (inbox.longestName?.bytes ?? -1) {
                    inbox.longestName = .init(path: file.relativePath, bytes: bytes, fits: bytes <= 255)
                }
                if let existing = known?[PathKey(file.relativePath)], existing.size == file.size, existing.mtimeNanoseconds == file.mtimeNanoseconds {
                    inbox.alreadyInLedger = (inbox.alreadyInLedger ?? 0) + 1
                }
                // An outbox path that cannot be written (a clash of two inbox paths, something in the way) is refused
                // before the run, as the pipeline does.
                if let rejection = preflight.rejection(of: file) ?? targets.problem(relativePath: file.relativePath) {
                    inbox.rejected.append(.init(path: file.relativePath, bytes: file.size, code: rejection.code, message: rejection.message))
                } else if preflight.rowForm != nil {
                    inbox.tables.append(tableReport(path: file.absolutePath, relativePath: file.relativePath, spec: spec, preflight: preflight))
                } else if preflight.fileVariable == nil {
                    let method = preflight.textVariable == nil ? "none" : preflight.extractor.method(forFilename: file.name).description
                    inbox.extraction.append(.init(path: file.relativePath, extractor: method == "none" ? "attachment only" : method,
                                                  attached: preflight.attaches(filename: file.name)))
                }
            }
        } catch {
            inbox.problems.append("\(error)")
        }
        return inbox
    }

    private static func fail(_ error: any Error, spec: JobSpec, into report: inout JobCheckReport) {
        guard let error = error as? DifyError else {
            report.fail(.unavailable, .unavailable, "Dify is unreachable at \(spec.dify.baseURL): \(error)")
            return
        }
        let stop = PreflightFailure.stop(for: error, spec: spec)
        report.fail(stop.reason == .configuration ? .configuration : .unavailable, stop.exitStatus, stop.message)
    }
}
