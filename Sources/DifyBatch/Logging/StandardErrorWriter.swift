#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Writes whole lines to standard error (file descriptor 2) under one lock, so log lines never interleave.
///
/// When a live status line is shown (a progress display on a terminal), every log line first clears it and
/// the status line is drawn again below, so logs and progress never overwrite each other.
public final class StandardErrorWriter: Sendable {
    /// The writer for the process's standard error.
    public static let shared = StandardErrorWriter(fileDescriptor: 2)

    private let fileDescriptor: Int32
    private let status = Mutex<String?>(nil)

    public init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    /// Whether the descriptor is a terminal.
    public var isTerminal: Bool { isatty(fileDescriptor) == 1 }

    /// The terminal's width in columns, when it is a terminal that says.
    public var terminalColumns: Int? {
        var size = winsize()
        guard ioctl(fileDescriptor, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }

    /// Writes one line (a newline is added when missing).
    public func writeLine(_ line: String) {
        let text = line.hasSuffix("\n") ? line : line + "\n"
        status.withLock { current in
            if let current {
                writeAll(TerminalEscapes.clearLine + text + current)
            } else {
                writeAll(text)
            }
        }
    }

    /// Shows (or replaces) the live status line. Only for terminals: it uses escape codes.
    public func showStatus(_ line: String) {
        status.withLock { current in
            current = line
            writeAll(TerminalEscapes.clearLine + line)
        }
    }

    /// Removes the live status line, leaving the cursor at the start of an empty line.
    public func clearStatus() {
        status.withLock { current in
            guard current != nil else { return }
            current = nil
            writeAll(TerminalEscapes.clearLine)
        }
    }

    private func writeAll(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer in
                write(fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}

/// The few ANSI sequences the live status line uses.
public enum TerminalEscapes {
    /// Carriage return, then erase the whole line.
    public static let clearLine = "\r\u{1B}[2K"
}
