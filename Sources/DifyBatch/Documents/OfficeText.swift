import Foundation
import ZIPFoundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Text of ZIP-packaged office documents (DOCX, ODT, PPTX), read with ZIPFoundation and Foundation's XML
/// parser: paragraphs become lines, tabs and line breaks are kept, formatting is dropped.
enum OfficeText {
    /// Office formats this reads, by lower-case extension.
    static let extensions: Set<String> = ["docx", "odt", "pptx"]
    /// Largest uncompressed XML part read (a guard against ZIP bombs).
    static let maxPartBytes = 64 << 20

    static func extract(path: String, fileExtension: String) throws(ExtractionFailure) -> String {
        let archive: Archive
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read, pathEncoding: nil)
        } catch {
            throw ExtractionFailure("extractor_failed", "the .\(fileExtension) file is not a readable ZIP package (\(error)); is it damaged or misnamed?")
        }
        switch fileExtension {
        case "docx":
            return try text(of: part("word/document.xml", in: archive), format: .docx)
        case "odt":
            return try text(of: part("content.xml", in: archive), format: .odt)
        case "pptx":
            let slides = archive.compactMap { entry -> (Int, String)? in
                let name = entry.path
                guard name.hasPrefix("ppt/slides/slide"), name.hasSuffix(".xml"),
                      let number = Int(name.dropFirst("ppt/slides/slide".count).dropLast(4)) else { return nil }
                return (number, name)
            }.sorted { $0.0 < $1.0 }
            var pages: [String] = []
            for (_, name) in slides { pages.append(try text(of: part(name, in: archive), format: .pptx)) }
            return pages.joined(separator: "\n")
        default:
            throw ExtractionFailure("no_extractor", "no built-in extractor for .\(fileExtension)")
        }
    }

    private static func part(_ name: String, in archive: Archive) throws(ExtractionFailure) -> Data {
        guard let entry = archive[name] else {
            throw ExtractionFailure("extractor_failed", "the package has no \(name); is it really this format?")
        }
        guard entry.uncompressedSize <= UInt64(maxPartBytes) else {
            throw ExtractionFailure("extractor_failed", "\(name) unpacks to \(entry.uncompressedSize) bytes, over the \(maxPartBytes >> 20) MB limit")
        }
        var data = Data()
        do {
            _ = try archive.extract(entry) { chunk in data.append(chunk) }
        } catch {
            throw ExtractionFailure("extractor_failed", "cannot unpack \(name): \(error)")
        }
        return data
    }

    enum Format { case docx, odt, pptx }

    private static func text(of xml: Data, format: Format) throws(ExtractionFailure) -> String {
        let collector = XMLTextCollector(format: format)
        let parser = XMLParser(data: xml)
        parser.delegate = collector
        guard parser.parse() else {
            throw ExtractionFailure("extractor_failed", "the document's XML does not parse: \(parser.parserError.map { "\($0)" } ?? "unknown error")")
        }
        return collector.text
    }
}

/// Collects text runs and turns paragraph ends, tabs and breaks into characters.
private final class XMLTextCollector: NSObject, XMLParserDelegate {
    let format: OfficeText.Format
    var text = ""
    private var inText = 0

    init(format: OfficeText.Format) { self.format = format }

    private var textElements: Set<String> {
        switch format {
        case .docx: return ["w:t"]
        case .odt: return ["text:p", "text:h"]
        case .pptx: return ["a:t"]
        }
    }

    private var paragraphElements: Set<String> {
        switch format {
        case .docx: return ["w:p"]
        case .odt: return ["text:p", "text:h"]
        case .pptx: return ["a:p"]
        }
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        if textElements.contains(name) { inText += 1 }
        switch (format, name) {
        case (.docx, "w:tab"), (.odt, "text:tab"): text += "\t"
        case (.docx, "w:br"), (.docx, "w:cr"), (.odt, "text:line-break"), (.pptx, "a:br"): text += "\n"
        case (.odt, "text:s"): text += String(repeating: " ", count: max(1, Int(attributes["text:c"] ?? "1") ?? 1))
        default: break
        }
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if textElements.contains(name) { inText -= 1 }
        if paragraphElements.contains(name) { text += "\n" }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if inText > 0 { text += string }
    }
}
