/// A problem in a job spec: the file, the key path (`dify.api_key_env`), the line when known, and what is allowed.
public struct SpecError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var keyPath: String?
    public var line: Int?
    public var message: String

    public init(file: String, keyPath: String? = nil, line: Int? = nil, message: String) {
        self.file = file
        self.keyPath = keyPath
        self.line = line
        self.message = message
    }

    /// `jobs/a.yaml:12: concurrency: must be a whole number from 1 to 256 (got -1)`
    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if let keyPath, !keyPath.isEmpty { text += "\(keyPath): " }
        return text + message
    }
}
