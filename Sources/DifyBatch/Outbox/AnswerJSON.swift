import DifyKit
import Foundation

/// Finds JSON in an LLM answer (the outbox's `answer_json`).
///
/// Reasoning is never read: `<think>…</think>` and `<reasoning>…</reasoning>` blocks are removed first (an
/// unclosed block runs to the end; a closing tag without an opening one drops everything before it). Then, in
/// order: the first ```` ```json ```` fence whose body parses; the last fence (any other info string) whose body
/// parses; the whole remaining answer.
public enum AnswerJSON {
    /// The answer's JSON, or nil when none of the candidates parses.
    public static func extract(from answer: String) -> JSONValue? {
        let visible = withoutReasoning(answer)
        let fences = fencedBlocks(in: visible)
        for fence in fences where fence.info.lowercased() == "json" {
            if let value = parse(fence.body) { return value }
        }
        for fence in fences.reversed() where fence.info.lowercased() != "json" {
            if let value = parse(fence.body) { return value }
        }
        return parse(visible)
    }

    /// `outputs` as written to the outbox: a completion/chat `answer` that holds JSON is also given as
    /// `answer_json` (unless the app already returned that key). Used for files and for table rows alike.
    public static func addingAnswerJSON(to outputs: [String: JSONValue]) -> [String: JSONValue] {
        guard outputs["answer_json"] == nil, case .string(let answer)? = outputs["answer"],
              let parsed = extract(from: answer) else { return outputs }
        var outputs = outputs
        outputs["answer_json"] = parsed
        return outputs
    }

    private static func parse(_ text: Substring) -> JSONValue? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return nil }
        return try? JSONValue.parse(trimmed)
    }

    private static let reasoningTags = [("<think>", "</think>"), ("<reasoning>", "</reasoning>")]

    /// The answer without reasoning blocks (tags matched case-insensitively).
    static func withoutReasoning(_ answer: String) -> Substring {
        var text = Substring(answer)
        for (open, close) in reasoningTags {
            // A model whose template opened the block in the prompt emits only the closing tag.
            if let closing = text.range(of: close, options: .caseInsensitive),
               text.range(of: open, options: .caseInsensitive, range: text.startIndex..<closing.lowerBound) == nil {
                text = text[closing.upperBound...]
            }
            var kept = ""
            var rest = text
            while let start = rest.range(of: open, options: .caseInsensitive) {
                kept += rest[..<start.lowerBound]
                guard let end = rest.range(of: close, options: .caseInsensitive, range: start.upperBound..<rest.endIndex) else {
                    rest = rest[rest.endIndex...]
                    break
                }
                rest = rest[end.upperBound...]
            }
            kept += rest
            text = Substring(kept)
        }
        return text
    }

    struct Fence { var info: String; var body: Substring }

    /// Closed ```` ``` ```` blocks in order. The info string runs to the end of the opening line; a one-line
    /// block (```` ```{"a":1}``` ````) has none.
    static func fencedBlocks(in text: Substring) -> [Fence] {
        var fences: [Fence] = []
        var rest = text
        while let open = rest.range(of: "```") {
            let afterFence = rest[open.upperBound...]
            let lineEnd = afterFence.firstIndex(of: "\n") ?? afterFence.endIndex
            var info = afterFence[..<lineEnd].trimmingCharacters(in: .whitespaces)
            let bodyStart: Substring.Index
            if info.hasPrefix("{") || info.hasPrefix("[") {
                info = ""
                bodyStart = afterFence.startIndex
            } else {
                bodyStart = lineEnd < afterFence.endIndex ? afterFence.index(after: lineEnd) : lineEnd
            }
            let body = rest[bodyStart...]
            guard let close = body.range(of: "```") else { break }
            fences.append(Fence(info: info, body: body[..<close.lowerBound]))
            rest = body[close.upperBound...]
        }
        return fences
    }
}
