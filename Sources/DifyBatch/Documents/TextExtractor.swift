import Foundation

/// Turns a document into the text sent in a text input variable (`dify.text_input`).
///
/// Per lower-case extension, first match wins: a spec override (`extractors.<ext>`: a shell command with
/// `{path}`, stdout = text); plain-text types decoded as UTF-8 (a UTF-8 BOM is dropped, UTF-16 with a BOM is
/// decoded, anything else that is not UTF-8 is rejected); PDF through poppler's `pdftotext` (`apt-get install
/// poppler-utils`); DOCX, ODT and PPTX through ZIPFoundation and an XML reader. Everything else has no extractor.
/// Every failure is an ``ExtractionFailure``: the document is rejected and nothing is sent.
public struct TextExtractor: Sendable {
    /// Extensions read as UTF-8 text.
    public static let plainTextExtensions: Set<String> = [
        "txt", "text", "md", "markdown", "mdx", "csv", "tsv", "json", "jsonl", "xml", "html", "htm", "vtt", "srt",
        "properties", "yaml", "yml", "toml", "ini", "cfg", "conf", "log", "rst", "tex", "eml",
    ]

    /// How a file's text will be had.
    public enum Method: Sendable, Equatable, CustomStringConvertible {
        case utf8
        /// poppler's `pdftotext` at this path (nil: not installed).
        case pdftotext(String?)
        /// Built-in ZIP/XML reader for `docx`, `odt`, `pptx`.
        case office(String)
        case command(ExtractorCommand)
        case none

        public var description: String {
            switch self {
            case .utf8: return "utf8"
            case .pdftotext: return "pdftotext"
            case .office(let format): return format
            case .command(let command): return "command: \(command.command)"
            case .none: return "none"
            }
        }
    }

    /// Spec overrides by lower-case extension without a dot.
    public var overrides: [String: ExtractorCommand]
    /// Where `pdftotext` was found on `PATH` when this extractor was made (nil: not installed).
    public var pdftotextPath: String?
    /// The longest time `pdftotext` may take for one file (default 60s).
    public var pdfTimeout: Duration

    public init(overrides: [String: ExtractorCommand] = [:], pdftotextPath: String? = TextExtractor.locate("pdftotext"),
                pdfTimeout: Duration = .seconds(60)) {
        var normalised: [String: ExtractorCommand] = [:]
        for (key, value) in overrides { normalised[Self.normalise(key)] = value }
        self.overrides = normalised
        self.pdftotextPath = pdftotextPath
        self.pdfTimeout = pdfTimeout
    }

    /// The path of a program on `PATH`, or nil when it is not installed.
    public static func locate(_ program: String) -> String? { ExternalCommand.which(program) }

    /// `.PDF`, `pdf`, `.pdf` → `pdf`.
    static func normalise(_ ext: String) -> String {
        var text = ext.trimmingCharacters(in: .whitespaces).lowercased()
        while text.hasPrefix(".") { text.removeFirst() }
        return text
    }

    static func fileExtension(_ filename: String) -> String {
        let ext = (filename as NSString).pathExtension
        return ext.lowercased()
    }

    public func method(forFilename filename: String) -> Method {
        let ext = Self.fileExtension(filename)
        if let command = overrides[ext] { return .command(command) }
        if Self.plainTextExtensions.contains(ext) { return .utf8 }
        if ext == "pdf" { return .pdftotext(pdftotextPath) }
        if OfficeText.extensions.contains(ext) { return .office(ext) }
        return .none
    }

    /// Why this file cannot be extracted at all (no extractor, tool missing), without reading it; nil when it can be tried.
    public func unavailable(filename: String) -> ExtractionFailure? {
        switch method(forFilename: filename) {
        case .none:
            let ext = Self.fileExtension(filename)
            return ExtractionFailure("no_extractor", "no text extractor for \(ext.isEmpty ? "files without an extension" : ".\(ext) files"); add one under extractors.\(ext.isEmpty ? "<ext>" : ext) in the spec (a command with {path} that prints the text), or exclude these files with match.exclude")
        case .pdftotext(nil):
            return ExtractionFailure("extractor_missing", "PDF text needs poppler's pdftotext, which is not installed; install it (apt-get install poppler-utils) or set extractors.pdf.command in the spec")
        default:
            return nil
        }
    }

    /// The file's text. `maxLength` is the text variable's `max_length` (characters, as Dify counts them).
    public func extract(path: String, filename: String, maxLength: Int? = nil) async throws -> Result<ExtractedText, ExtractionFailure> {
        if let problem = unavailable(filename: filename) { return .failure(problem) }
        let method = method(forFilename: filename)
        let text: String
        do {
            switch method {
            case .utf8:
                text = try Self.decodeText(try Self.read(path), what: "the file")
            case .pdftotext(let tool?):
                text = try await Self.runTool(tool, ["-enc", "UTF-8", "-q", path, "-"], timeout: pdfTimeout, name: "pdftotext")
                    .replacingOccurrences(of: "\u{0C}", with: "\n")
            case .office(let format):
                text = try OfficeText.extract(path: path, fileExtension: format)
            case .command(let command):
                text = try await Self.runTool("/bin/sh", ["-c", command.shellLine(path: path)], timeout: command.timeout,
                                              name: "the extractor command \"\(command.command)\"")
            case .pdftotext(nil), .none:
                return .failure(ExtractionFailure("no_extractor", "no text extractor"))
            }
        } catch let failure as ExtractionFailure {
            return .failure(failure)
        }
        let result = ExtractedText(text: text, method: method.description)
        if text.allSatisfy(\.isWhitespace) {
            let hint = method == .pdftotext(pdftotextPath) ? " (a scanned PDF without a text layer? OCR it first, e.g. with ocrmypdf)" : ""
            return .failure(ExtractionFailure("empty_text", "the document has no text\(hint); nothing was sent"))
        }
        if let maxLength, result.length > maxLength {
            return .failure(ExtractionFailure("text_too_long", "the text has \(result.length) characters, over the \(maxLength)-character max_length of the app's text variable; raise max_length in the app or split the document"))
        }
        return .success(result)
    }

    private static func read(_ path: String) throws(ExtractionFailure) -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ExtractionFailure("unreadable", "cannot read the file; check its permissions")
        }
        return data
    }

    /// UTF-8 (BOM dropped) or UTF-16 with a BOM; anything else is rejected with the reason.
    static func decodeText(_ data: Data, what: String) throws(ExtractionFailure) -> String {
        let bytes = [UInt8](data.prefix(3))
        if bytes.count >= 2, (bytes[0] == 0xFF && bytes[1] == 0xFE) || (bytes[0] == 0xFE && bytes[1] == 0xFF) {
            let encoding: String.Encoding = bytes[0] == 0xFF ? .utf16LittleEndian : .utf16BigEndian
            guard let text = String(data: data.dropFirst(2), encoding: encoding) else {
                throw ExtractionFailure("not_utf8", "\(what) starts with a UTF-16 byte-order mark but is not valid UTF-16")
            }
            return text
        }
        let body = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? data.dropFirst(3) : data[...]
        guard let text = String(data: body, encoding: .utf8) else {
            throw ExtractionFailure("not_utf8", "\(what) is not UTF-8 text (another encoding, or binary); convert it first, e.g. iconv -f WINDOWS-1252 -t UTF-8")
        }
        if text.contains("\u{0}") {
            throw ExtractionFailure("not_utf8", "\(what) contains NUL bytes: it looks binary, not text")
        }
        return text
    }

    private static func runTool(_ executable: String, _ arguments: [String], timeout: Duration, name: String) async throws -> String {
        let output: ExternalCommand.Output
        do {
            output = try await ExternalCommand.run(executable, arguments, timeout: timeout)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw ExtractionFailure("extractor_failed", "\(name) could not be started: \(error)")
        }
        if output.timedOut {
            throw ExtractionFailure("extractor_failed", "\(name) took longer than \(HumanDuration.format(timeout)) and was stopped")
        }
        guard output.status == 0 else {
            throw ExtractionFailure("extractor_failed", "\(name) failed with exit status \(output.status)\(output.stderrTail.isEmpty ? "" : ": \(output.stderrTail)")")
        }
        return try decodeText(output.stdout, what: "the output of \(name)")
    }
}
