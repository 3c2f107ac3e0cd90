/// A problem in a job spec: the file, the key path (`dify.api_key_env`), the line when known, and what is allowed.
public struct SpecError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var keyPath: String?
    public var line: Int?
    public var message: String
    /// Further problems found in the same file, after this one in file order (issue 16: all at once).
    public var more: [SpecError] = []

    public init(file: String, keyPath: String? = nil, line: Int? = nil, message: String) {
        self.file = file
        self.keyPath = keyPath
        self.line = line
        self.message = message
    }

    /// `jobs/a.yaml:12: concurrency: must be a whole number from 1 to 256 (got -1)`, one line per problem.
    public var description: String {
        ([self] + more).map(\.line1).joined(separator: "\n")
    }

    /// Every problem, this one first.
    public var all: [SpecError] {
        var first = self
        first.more = []
        return [first] + more
    }

    private var line1: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if let keyPath, !keyPath.isEmpty { text += "\(keyPath): " }
        return text + message
    }

    /// The problems as one error, in file order (by line; problems without a line last), or nil when there are none.
    static func combined(_ problems: [SpecError]) -> SpecError? {
        let ordered = problems.enumerated().sorted { a, b in
            switch (a.element.line, b.element.line) {
            case let (x?, y?) where x != y: return x < y
            case (_?, nil): return true
            case (nil, _?): return false
            default: return a.offset < b.offset
            }
        }.map(\.element)
        guard var first = ordered.first else { return nil }
        first.more = Array(ordered.dropFirst())
        return first
    }
}
