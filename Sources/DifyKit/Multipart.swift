import Foundation
import NIOCore

/// The framing of Dify's upload body: a `user` field, then the `file` part streamed from disk.
struct MultipartUpload: Sendable {
    let boundary: String
    let head: ByteBuffer
    let tail: ByteBuffer

    init(boundary: String, user: String?, filename: String, contentType: String) {
        self.boundary = boundary
        var head = ByteBuffer()
        if let user {
            head.writeString("--\(boundary)\r\n")
            head.writeString("Content-Disposition: form-data; name=\"user\"\r\n\r\n")
            head.writeString(user)
            head.writeString("\r\n")
        }
        head.writeString("--\(boundary)\r\n")
        head.writeString(
            "Content-Disposition: form-data; name=\"file\"; filename=\"\(Self.quotedParameter(filename))\"\r\n")
        head.writeString("Content-Type: \(contentType)\r\n\r\n")
        self.head = head
        var tail = ByteBuffer()
        tail.writeString("\r\n--\(boundary)--\r\n")
        self.tail = tail
    }

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    func contentLength(fileSize: Int64) -> Int64 {
        Int64(head.readableBytes) + fileSize + Int64(tail.readableBytes)
    }

    /// A filename Dify accepts: the last path component (Dify rejects `/` and `\`), no CR/LF/NUL.
    static func sanitizedFilename(_ name: String) -> String {
        // Most names need nothing: no separator or CR/LF/NUL, ASCII non-blank at both ends.
        let utf8 = name.utf8
        if let first = utf8.first, let last = utf8.last, first > 0x20, first < 0x80, last > 0x20, last < 0x80,
           !utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "\\") || $0 == 0x0D || $0 == 0x0A || $0 == 0 }) {
            return name
        }
        let last = name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let cleaned = String(last.unicodeScalars.filter { $0 != "\r" && $0 != "\n" && $0 != "\0" })
            .trimmingCharacters(in: .whitespaces)
        return cleaned.isEmpty ? "file" : cleaned
    }

    /// Escapes `"` the way browsers do (`%22`); the rest is sent as UTF-8.
    static func quotedParameter(_ value: String) -> String {
        value.replacingOccurrences(of: "\"", with: "%22")
    }

    static func randomBoundary() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var bytes = Array("DifyKitBoundary".utf8)
        for _ in 0..<2 {
            var word = generator.next()  // 16 hex digits (64 random bits) per word
            for _ in 0..<16 {
                bytes.append(digits[Int(word & 0x0F)])
                word >>= 4
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
