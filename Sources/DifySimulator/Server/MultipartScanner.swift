import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Headers of one multipart/form-data part.
struct MultipartPartHeaders: Sendable, Equatable {
    /// `name` from Content-Disposition.
    var name: String?
    /// `filename` from Content-Disposition; nil when the parameter is absent (a plain form field),
    /// `""` when present but empty.
    var filename: String?
    /// The part's Content-Type (nil when absent).
    var contentType: String?
}

/// Incremental multipart/form-data parser: feed it body chunks as they arrive, it reports part starts,
/// data slices (without copying) and part ends. Memory use is bounded by the chunk size plus the boundary.
struct MultipartScanner {
    enum Event {
        case partStart(MultipartPartHeaders)
        case data(UnsafeRawBufferPointer)
        case partEnd
    }

    struct MalformedBody: Error {}

    private enum State { case preamble, afterDelimiter, headers, body, done }

    private let delimiter: [UInt8]
    private var pending: [UInt8] = [0x0D, 0x0A]  // lets the first boundary match "\r\n--boundary" too
    private var start = 0
    private var state = State.preamble

    /// The scanner for a `multipart/form-data; boundary=…` content type, or nil if there is no boundary.
    init?(contentType: String) {
        guard contentType.lowercased().hasPrefix("multipart/form-data"),
            let boundary = Self.parameters(contentType.split(separator: ";").dropFirst().joined(separator: ";"))["boundary"],
            !boundary.isEmpty
        else { return nil }
        delimiter = Array("\r\n--\(boundary)".utf8)
    }

    var isComplete: Bool { state == .done }

    /// Consumes `chunk`, calling `handler` for every event it completes.
    mutating func feed(_ chunk: UnsafeRawBufferPointer, _ handler: (Event) throws -> Void) throws {
        guard state != .done else { return }
        if start > 0 && start >= pending.count / 2 {
            pending.removeFirst(start)
            start = 0
        }
        pending.append(contentsOf: chunk)
        try process(handler)
    }

    private func find(_ needle: [UInt8], from: Int) -> Int? {
        guard pending.count - from >= needle.count else { return nil }
        return pending.withUnsafeBytes { hay -> Int? in
            needle.withUnsafeBytes { n -> Int? in
                let base = hay.baseAddress!
                let first = Int32(n[0])
                var i = from
                let last = hay.count - n.count
                while i <= last {
                    guard let p = memchr(base + i, first, last - i + 1) else { return nil }
                    let idx = UnsafeRawPointer(p) - base
                    if memcmp(base + idx, n.baseAddress!, n.count) == 0 { return idx }
                    i = idx + 1
                }
                return nil
            }
        }
    }

    private mutating func process(_ handler: (Event) throws -> Void) throws {
        while true {
            switch state {
            case .done:
                return
            case .preamble:
                guard let idx = find(delimiter, from: start) else {
                    start = max(start, pending.count - delimiter.count + 1)
                    return
                }
                start = idx + delimiter.count
                state = .afterDelimiter
            case .afterDelimiter:
                guard pending.count - start >= 2 else { return }
                if pending[start] == UInt8(ascii: "-") && pending[start + 1] == UInt8(ascii: "-") {
                    state = .done
                    return
                }
                // Transport padding (spaces/tabs) may precede the CRLF.
                var i = start
                while i < pending.count, pending[i] == 0x20 || pending[i] == 0x09 { i += 1 }
                guard pending.count - i >= 2 else { return }
                guard pending[i] == 0x0D, pending[i + 1] == 0x0A else { throw MalformedBody() }
                start = i  // keep the CRLF so an empty header block "\r\n\r\n" is found
                state = .headers
            case .headers:
                guard let idx = find([0x0D, 0x0A, 0x0D, 0x0A], from: start) else {
                    if pending.count - start > 16 * 1024 { throw MalformedBody() }
                    return
                }
                let block = idx >= start + 2 ? String(decoding: pending[(start + 2)..<idx], as: UTF8.self) : ""
                start = idx + 4
                state = .body
                try handler(.partStart(Self.parseHeaders(block)))
            case .body:
                if let idx = find(delimiter, from: start) {
                    if idx > start {
                        try pending.withUnsafeBytes { try handler(.data(UnsafeRawBufferPointer(rebasing: $0[start..<idx]))) }
                    }
                    try handler(.partEnd)
                    start = idx + delimiter.count
                    state = .afterDelimiter
                } else {
                    let safeEnd = pending.count - (delimiter.count - 1)
                    if safeEnd > start {
                        let s = start
                        try pending.withUnsafeBytes { try handler(.data(UnsafeRawBufferPointer(rebasing: $0[s..<safeEnd]))) }
                        start = safeEnd
                    }
                    return
                }
            }
        }
    }

    static func parseHeaders(_ block: String) -> MultipartPartHeaders {
        var headers = MultipartPartHeaders()
        for line in block.split(separator: "\r\n", omittingEmptySubsequences: true) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch name {
            case "content-disposition":
                let semi = value.firstIndex(of: ";") ?? value.endIndex
                let params = parameters(String(value[semi...]))
                headers.name = params["name"]
                if let star = params["filename*"] {
                    let encoded = star.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false).last.map(String.init) ?? star
                    headers.filename = encoded.removingPercentEncoding ?? encoded
                } else {
                    headers.filename = params["filename"]
                }
            case "content-type":
                headers.contentType = value.isEmpty ? nil : value
            default:
                break
            }
        }
        return headers
    }

    /// Parses `; key=value; key="quoted \" value"` into a dictionary (keys lower-cased).
    static func parameters(_ s: String) -> [String: String] {
        var result: [String: String] = [:]
        let chars = Array(s)
        var i = 0
        while i < chars.count {
            while i < chars.count, chars[i] == ";" || chars[i] == " " || chars[i] == "\t" { i += 1 }
            var key = ""
            while i < chars.count, chars[i] != "=", chars[i] != ";" { key.append(chars[i]); i += 1 }
            key = key.trimmingCharacters(in: .whitespaces).lowercased()
            guard i < chars.count, chars[i] == "=" else { continue }
            i += 1
            var value = ""
            if i < chars.count, chars[i] == "\"" {
                i += 1
                while i < chars.count, chars[i] != "\"" {
                    if chars[i] == "\\", i + 1 < chars.count { i += 1 }
                    value.append(chars[i])
                    i += 1
                }
                i += 1
            } else {
                while i < chars.count, chars[i] != ";" { value.append(chars[i]); i += 1 }
                value = value.trimmingCharacters(in: .whitespaces)
            }
            if !key.isEmpty, result[key] == nil { result[key] = value }
        }
        return result
    }
}
