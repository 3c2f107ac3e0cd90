import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import DifyKit

@Suite("Redact before cutting")
struct RedactionTests {
    static let key = "app-Q7vK2mZp9RxT4wLc8NbY"

    /// Every run of 6 characters of the key: none may appear in a message (a cut key leaks its prefix).
    static func leaksKey(_ text: String) -> Bool {
        let characters = Array(key)
        for start in 0...(characters.count - 6) where text.contains(String(characters[start..<start + 6])) {
            return true
        }
        return false
    }

    @Test("an HTML error page echoing Authorization is redacted before it is cut, at every offset around the cut",
          arguments: Array(170...215))
    func httpError_whenHTMLPageEchoesKeyAroundCut_neverLeaksAPrefix(offset: Int) {
        let filler = String(repeating: "x", count: offset)
        let html = "<html><body><p>\(filler) Authorization: Bearer \(Self.key) and more text after it</p></body></html>"
        let error = DifyClient.httpError(status: 502, headers: ["Content-Type": "text/html"], body: ByteBuffer(string: html),
                                         endpoint: "POST /workflows/run", isRun: true, apiKey: Self.key)
        #expect(!Self.leaksKey(error.message), "offset \(offset): \(error.message)")
        #expect(error.message.contains("xxxx"))
    }

    @Test("a plain-text error body and a non-JSON 200 are redacted before they are cut", arguments: [180, 195, 199, 205])
    func snippet_whenBodyEchoesKeyAroundCut_neverLeaksAPrefix(offset: Int) {
        let text = String(repeating: "y", count: offset) + " Bearer \(Self.key) tail"
        let plain = DifyClient.httpError(status: 500, headers: ["Content-Type": "text/plain"], body: ByteBuffer(string: text),
                                         endpoint: "POST /files/upload", isRun: false, apiKey: Self.key)
        #expect(!Self.leaksKey(plain.message), "offset \(offset): \(plain.message)")
        let snippet = DifyClient.redactedSnippet(ByteBuffer(string: text), apiKey: Self.key)
        #expect(!Self.leaksKey(snippet))
        #expect(snippet.count <= 200)
    }

    @Test("a key in an HTML title is redacted before the title is cut")
    func htmlSummary_whenTitleHoldsKey_redactsIt() {
        let title = String(repeating: "t", count: 190) + Self.key
        let summary = DifyClient.htmlSummary(ByteBuffer(string: "<html><title>\(title)</title></html>"), apiKey: Self.key)
        #expect(!Self.leaksKey(summary), "\(summary)")
    }

    @Test("redactThenCut keeps the placeholder whole or cuts after removing the key")
    func redactThenCut_removesKeyFirst() {
        let text = String(repeating: "a", count: 10) + Self.key
        #expect(Redactor.redactThenCut(text, key: Self.key, limit: 15) == "aaaaaaaaaaapp-*…")
        #expect(Redactor.redactThenCut("  a \n b  ", key: Self.key, limit: 200) == "a b")
    }
}
