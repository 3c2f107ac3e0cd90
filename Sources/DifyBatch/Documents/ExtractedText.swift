import Crypto
import Foundation

/// A document's text as sent in a text input variable.
public struct ExtractedText: Sendable, Equatable {
    public var text: String
    /// Which extractor produced it (`utf8`, `pdftotext`, `docx`, `odt`, `pptx`, `command`).
    public var method: String

    public init(text: String, method: String) {
        self.text = text
        self.method = method
    }

    /// Length in characters (Unicode scalars would overcount combined characters; Dify's `max_length` is
    /// checked with Python's `len`, which counts code points: so this counts code points too).
    public var length: Int { text.unicodeScalars.count }

    /// sha256 of the UTF-8 bytes, lower-case hex (stored in the ledger as `documents.text_sha256`).
    public var sha256: String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// Why a document's text could not be had; the document is `rejected` with ``code`` and ``message``.
public struct ExtractionFailure: Error, Sendable, Equatable {
    /// `no_extractor`, `extractor_missing`, `extractor_failed`, `not_utf8`, `empty_text`, `text_too_long`.
    public var code: String
    public var message: String

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }
}
