import Crypto
import Foundation

/// The simulator's deterministic "model". Tests and end-to-end checks compute expected results with it.
///
/// For a document (the run's first file input; an empty document named `""` when there is none):
/// - `text`: the Document Extractor's text for PDF and DOCX (``DocumentExtractor``); for other types the first
///   ``textPrefixBytes`` (65 536) bytes decoded as UTF-8, invalid sequences (including one cut at the boundary)
///   replaced by U+FFFD. For a completion/chat run that has a `text` input, the document is that text.
/// - `sha256`: lower-case hex SHA-256 of all bytes. `bytes`: byte count.
/// - `words`: number of maximal runs of bytes that are not ASCII whitespace (space, \t, \n, \v, \f, \r).
/// - `lines`: number of `\n` bytes, plus 1 if the document is non-empty and does not end with `\n`.
/// - `filename`: the uploaded name. `language`: the `language` input if it is a non-empty string, else `"en"`.
///
/// Workflow apps return these seven keys (in this order) as `outputs`. Completion apps return
/// ``answerJSON(_:)`` (the same object as compact JSON text) as `answer`; chat apps return it fenced as
/// `` ```json\n…\n``` `` (see ``chatAnswer(_:)``).
public enum SimulatedOutput {
    /// Bytes of the document that go into `text`.
    public static let textPrefixBytes = 65_536

    /// Workflow `outputs` for a document held in memory.
    public static func workflowOutputs(fileBytes: [UInt8], filename: String, inputs: [String: String] = [:]) -> [String: JSONValue] {
        Dictionary(uniqueKeysWithValues: workflowOutputsJSON(fileBytes: fileBytes, filename: filename, inputs: inputs).objectValue ?? [])
    }

    /// Workflow `outputs` for a document on disk (read in chunks).
    public static func workflowOutputs(filePath: String, filename: String? = nil, inputs: [String: String] = [:]) throws -> [String: JSONValue] {
        let name = filename ?? (filePath as NSString).lastPathComponent
        let summary = try DocumentSummary(contentsOf: filePath).extracted(path: filePath, fileExtension: (name as NSString).pathExtension)
        return Dictionary(uniqueKeysWithValues: outputsJSON(summary, filename: name, language: inputs["language"]).objectValue ?? [])
    }

    /// Workflow `outputs` with Dify's key order (`text, sha256, bytes, words, lines, filename, language`).
    public static func workflowOutputsJSON(fileBytes: [UInt8], filename: String, inputs: [String: String] = [:]) -> JSONValue {
        var summary = DocumentSummary(bytes: fileBytes)
        if let text = DocumentExtractor.text(bytes: fileBytes, fileExtension: (filename as NSString).pathExtension) { summary.text = text }
        return outputsJSON(summary, filename: filename, language: inputs["language"])
    }

    /// The completion/chat `answer` for a run whose `text` input holds the document (`filename` "" unless a
    /// file was attached too).
    public static func completionAnswer(text: String, filename: String = "", inputs: [String: String] = [:]) -> String {
        answerJSON(outputsJSON(DocumentSummary(bytes: Array(text.utf8)), filename: filename, language: inputs["language"]))
    }

    /// The completion `answer` for a document: ``workflowOutputsJSON(fileBytes:filename:inputs:)`` as compact
    /// JSON (raw UTF-8, no `\/`).
    public static func completionAnswer(fileBytes: [UInt8], filename: String, inputs: [String: String] = [:]) -> String {
        answerJSON(workflowOutputsJSON(fileBytes: fileBytes, filename: filename, inputs: inputs))
    }

    /// The chat `answer`: the completion answer wrapped in a Markdown ```json fence.
    public static func chatAnswer(fileBytes: [UInt8], filename: String, inputs: [String: String] = [:]) -> String {
        chatAnswer(completionAnswer(fileBytes: fileBytes, filename: filename, inputs: inputs))
    }

    /// Compact JSON text of an outputs object.
    public static func answerJSON(_ outputs: JSONValue) -> String { outputs.encoded(.stream) }

    /// Wraps an answer in a Markdown ```json fence.
    public static func chatAnswer(_ answer: String) -> String { "```json\n" + answer + "\n```" }

    /// Token usage and price of a run that produced a result:
    /// `prompt = 32 + ceil(byteCount / 4)`, `completion = 16 + ceil(wordCount / 8)`, `total = prompt + completion`,
    /// `price = prompt × 0.000002 + completion × 0.000004` (exact `Decimal`), currency `USD`.
    public static func usage(byteCount: Int, wordCount: Int) -> (prompt: Int, completion: Int, total: Int, price: Decimal, currency: String) {
        let prompt = 32 + (byteCount + 3) / 4
        let completion = 16 + (wordCount + 7) / 8
        let price = Decimal(prompt) * Decimal(string: "0.000002")! + Decimal(completion) * Decimal(string: "0.000004")!
        return (prompt, completion, prompt + completion, price, "USD")
    }

    /// Price in Dify's string spelling: 7 decimals, e.g. `"0.0012890"`.
    public static func priceString(_ price: Decimal) -> String {
        var units = price * 10_000_000
        var rounded = Decimal()
        NSDecimalRound(&rounded, &units, 0, .plain)
        let n = NSDecimalNumber(decimal: rounded).int64Value
        let digits = String(n)
        let padded = String(repeating: "0", count: max(0, 8 - digits.count)) + digits
        return String(padded.dropLast(7)) + "." + String(padded.suffix(7))
    }

    static func outputsJSON(_ s: DocumentSummary, filename: String, language: String?) -> JSONValue {
        .object([
            ("text", .string(s.text)), ("sha256", .string(s.sha256)), ("bytes", .int(s.bytes)),
            ("words", .int(s.words)), ("lines", .int(s.lines)), ("filename", .string(filename)),
            ("language", .string(language.flatMap { $0.isEmpty ? nil : $0 } ?? "en")),
        ])
    }
}

/// What the model needs to know about a document; computed incrementally while an upload streams in.
struct DocumentSummary: Sendable, Equatable {
    var text: String
    var sha256: String
    var bytes: Int
    var words: Int
    var lines: Int

    init(bytes: [UInt8]) {
        var digest = DocumentDigest()
        bytes.withUnsafeBytes { digest.update($0) }
        self = digest.finalize()
    }

    init(text: String, sha256: String, bytes: Int, words: Int, lines: Int) {
        self.text = text
        self.sha256 = sha256
        self.bytes = bytes
        self.words = words
        self.lines = lines
    }

    init(contentsOf path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        defer { try? handle.close() }
        var digest = DocumentDigest()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            chunk.withUnsafeBytes { digest.update($0) }
        }
        self = digest.finalize()
    }
}

/// Incremental SHA-256, byte/word/line counts and text prefix.
struct DocumentDigest {
    private var hasher = SHA256()
    private var byteCount = 0
    private var wordCount = 0
    private var newlineCount = 0
    private var inWord = false
    private var lastByte: UInt8?
    private var prefix: [UInt8] = []

    mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard !buffer.isEmpty else { return }
        hasher.update(bufferPointer: buffer)
        byteCount += buffer.count
        if prefix.count < SimulatedOutput.textPrefixBytes {
            let take = min(SimulatedOutput.textPrefixBytes - prefix.count, buffer.count)
            prefix.append(contentsOf: buffer[0..<take])
        }
        var words = 0
        var newlines = 0
        var inWord = self.inWord
        for b in buffer {
            let isSpace = b == 0x20 || (b >= 0x09 && b <= 0x0D)
            if b == 0x0A { newlines += 1 }
            if isSpace {
                inWord = false
            } else if !inWord {
                inWord = true
                words += 1
            }
        }
        self.inWord = inWord
        wordCount += words
        newlineCount += newlines
        lastByte = buffer[buffer.count - 1]
    }

    func finalize() -> DocumentSummary {
        let hex = StableID.hex(hasher.finalize())
        var lines = newlineCount
        if let lastByte, lastByte != 0x0A { lines += 1 }
        return DocumentSummary(
            text: String(decoding: prefix, as: UTF8.self), sha256: hex, bytes: byteCount, words: wordCount, lines: lines)
    }
}
