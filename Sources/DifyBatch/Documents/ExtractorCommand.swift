import Foundation

/// A spec's `extractors.<ext>`: an external command whose stdout is the document's text.
public struct ExtractorCommand: Sendable, Equatable {
    /// Run with `/bin/sh -c`; `{path}` is replaced by the file's path, shell-quoted.
    public var command: String
    /// The command is killed after this long (default 60s) and the document rejected.
    public var timeout: Duration

    public init(command: String, timeout: Duration = .seconds(60)) {
        self.command = command
        self.timeout = timeout
    }

    /// The shell line for this file.
    func shellLine(path: String) -> String {
        command.replacingOccurrences(of: "{path}", with: "'" + path.replacingOccurrences(of: "'", with: "'\\''") + "'")
    }
}
