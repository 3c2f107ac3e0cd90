import Foundation

/// One server-sent event (after blank-line dispatch).
public struct SSEEvent: Sendable, Hashable {
    /// The `event:` field, if any (Dify uses it only for `ping`).
    public var event: String?
    /// `data:` lines joined with "\n".
    public var data: String
    public var id: String?

    public init(event: String? = nil, data: String, id: String? = nil) {
        self.event = event
        self.data = data
        self.id = id
    }
}

/// Incremental SSE parser over raw bytes as they arrive.
///
/// Handles chunk boundaries anywhere (also inside UTF-8 sequences and between CR and LF), LF, CRLF and lone CR
/// line endings, `data:` with or without the space, `:` comments, and `event:` without `data:` (Dify's ping).
/// An event is dispatched on a blank line; a block that only carries `event:` is dispatched with empty data.
public struct SSEParser: Sendable {
    private var line: [UInt8] = []
    private var lastWasCR = false
    private var eventName: String?
    private var dataLines: [String] = []
    private var hasData = false
    private var lastID: String?
    private var sawField = false

    public init() {}

    /// Feeds bytes; returns the events completed by them.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) -> [SSEEvent] where Bytes.Element == UInt8 {
        var events: [SSEEvent] = []
        let handled: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            feedContiguous(buffer, into: &events)
        }
        if handled == nil {
            let array = Array(bytes)
            array.withUnsafeBufferPointer { feedContiguous($0, into: &events) }
        }
        return events
    }

    private mutating func feedContiguous(_ buffer: UnsafeBufferPointer<UInt8>, into events: inout [SSEEvent]) {
        let lf = UInt8(ascii: "\n")
        let cr = UInt8(ascii: "\r")
        var index = 0
        let count = buffer.count
        while index < count {
            if lastWasCR {
                lastWasCR = false
                if buffer[index] == lf {  // second half of CRLF
                    index += 1
                    continue
                }
            }
            // Scan to the next line terminator and copy the run in bulk.
            var end = index
            while end < count, buffer[end] != lf, buffer[end] != cr { end += 1 }
            if end > index { line.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[index..<end])) }
            guard end < count else { return }
            lastWasCR = buffer[end] == cr
            endLine(into: &events)
            index = end + 1
        }
    }

    /// Call at end of stream: dispatches a pending event that lacked its trailing blank line.
    public mutating func finish() -> [SSEEvent] {
        var events: [SSEEvent] = []
        if !line.isEmpty { endLine(into: &events) }
        dispatch(into: &events)
        return events
    }

    private mutating func endLine(into events: inout [SSEEvent]) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            dispatch(into: &events)
            return
        }
        if line.first == UInt8(ascii: ":") { return }  // comment
        let field: String
        var value: String
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = String(decoding: line[..<colon], as: UTF8.self)
            var start = line.index(after: colon)
            if start < line.endIndex, line[start] == UInt8(ascii: " ") { start = line.index(after: start) }
            value = String(decoding: line[start...], as: UTF8.self)
        } else {
            field = String(decoding: line, as: UTF8.self)
            value = ""
        }
        switch field {
        case "data":
            dataLines.append(value)
            hasData = true
            sawField = true
        case "event":
            eventName = value
            sawField = true
        case "id":
            if !value.contains("\0") { lastID = value }
        default:
            value = ""  // unknown field (incl. "retry"): ignored
        }
    }

    private mutating func dispatch(into events: inout [SSEEvent]) {
        defer {
            eventName = nil
            dataLines.removeAll()
            hasData = false
            sawField = false
        }
        guard sawField, hasData || eventName != nil else { return }
        events.append(SSEEvent(event: eventName, data: dataLines.joined(separator: "\n"), id: lastID))
    }
}
