import Foundation
import ZIPFoundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// The simulator's Document Extractor node: the text Dify's workflow would get from a file, so outputs show
/// text rather than a PDF's or DOCX's raw bytes.
///
/// - PDF: poppler's `pdftotext` when it is installed (`apt-get install poppler-utils`); without it, a clear
///   placeholder (``pdfWithoutPoppler``) — the simulator and the demo never fail for lack of it.
/// - DOCX: the text of `word/document.xml` (paragraphs as lines), read with ZIPFoundation.
/// - Anything else: `nil`, and the caller keeps the bytes decoded as UTF-8 (txt, md, csv, …).
public enum DocumentExtractor {
    /// The text given for a PDF when `pdftotext` is not installed.
    public static let pdfWithoutPoppler = "[simulator] PDF text extraction needs pdftotext (apt-get install poppler-utils)"

    /// Where `pdftotext` is, looked up once (nil: not installed).
    static let pdftotext: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { String($0) + "/pdftotext" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// The extracted text of the file at `path`, or nil when the type is read as plain text.
    public static func text(path: String, fileExtension: String) -> String? {
        switch fileExtension.lowercased() {
        case "pdf": return pdfText(path: path)
        case "docx": return docxText(path: path)
        default: return nil
        }
    }

    /// The same for bytes in memory (written to a temporary file first).
    public static func text(bytes: [UInt8], fileExtension: String) -> String? {
        guard ["pdf", "docx"].contains(fileExtension.lowercased()) else { return nil }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sim-extract-\(UUID().uuidString).\(fileExtension)").path
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { return nil }
        defer { try? FileManager.default.removeItem(atPath: path) }
        return text(path: path, fileExtension: fileExtension)
    }

    static func pdfText(path: String) -> String {
        guard let tool = pdftotext else { return pdfWithoutPoppler }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["-enc", "UTF-8", "-q", path, "-"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return pdfWithoutPoppler }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return "" }  // Dify gives empty text for a PDF it cannot read
        return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\u{0C}", with: "\n")
    }

    static func docxText(path: String) -> String {
        let archive: Archive
        do { archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read, pathEncoding: nil) } catch { return "" }
        guard let entry = archive["word/document.xml"], entry.uncompressedSize < 64 << 20 else { return "" }
        var xml = Data()
        guard (try? archive.extract(entry, consumer: { xml.append($0) })) != nil else { return "" }
        let reader = DocxReader()
        let parser = XMLParser(data: xml)
        parser.delegate = reader
        _ = parser.parse()
        return reader.text
    }
}

/// `w:t` runs, `w:tab` as a tab, `w:br` as a line break, each `w:p` ending a line.
private final class DocxReader: NSObject, XMLParserDelegate {
    var text = ""
    private var inRun = false

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        switch name {
        case "w:t": inRun = true
        case "w:tab": text += "\t"
        case "w:br", "w:cr": text += "\n"
        default: break
        }
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "w:t" { inRun = false }
        if name == "w:p" { text += "\n" }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if inRun { text += string }
    }
}

extension DocumentSummary {
    /// This summary with `text` replaced by the Document Extractor's text when the type has one.
    func extracted(path: String, fileExtension: String) -> DocumentSummary {
        var copy = self
        if let text = DocumentExtractor.text(path: path, fileExtension: fileExtension) { copy.text = text }
        return copy
    }
}

extension JSONValue {
    /// This object with one more key at the end (unchanged if not an object).
    func adding(_ key: String, _ value: JSONValue) -> JSONValue {
        guard case .object(let pairs) = self else { return self }
        return .object(pairs + [(key, value)])
    }
}
