import Foundation

/// An error that knows the code of its cause in the form the ledger records (`SQLITE_BUSY`). The SQLite ledger
/// makes GRDB's `DatabaseError` conform, so nothing outside it needs to know SQLite.
protocol LocalErrorCause: Error {
    var causeCode: String { get }
}

/// What is recorded on a document when local work after a paid run fails (writing the outbox, recording in the
/// ledger, disposing of the source): class `local`, the cause as a code (`EACCES`, `ENOSPC`, `SQLITE_BUSY`, ...),
/// and a message naming the step, the cause and the fix. Such failures never count against `retry.max_attempts`.
enum LocalFailure {
    /// The ledger's `last_error_class` of a local failure.
    static let errorClass = "local"

    /// The matchable cause code of an error.
    static func code(_ error: any Error) -> String {
        if let file = error as? FileOperationError { return ErrnoName.name(file.errorNumber) }
        if let cause = error as? any LocalErrorCause { return cause.causeCode }
        if let ledger = error as? LedgerError { return "ledger_\(ledger.code)" }
        return "local_error"
    }

    /// The record for a failed `step` ("write the outbox file", ...), retried after `delay`.
    static func recorded(_ error: any Error, step: String, delay: Duration) -> RecordedError {
        let code = code(error)
        var message = "could not \(step): \(error)"
        if let hint = hint(code) { message += "; \(hint)" }
        message += ". Dify's result is kept in the ledger: this is tried again in \(HumanDuration.format(delay)) without running the document again"
        return RecordedError(errorClass: errorClass, code: code, message: message)
    }

    static func hint(_ code: String) -> String? {
        switch code {
        case "EACCES", "EPERM": return "make the folder writable for user \(WritableFolder.currentUserName())"
        case "ENOSPC", "EDQUOT": return "free space on that file system"
        case "EROFS": return "the file system is read-only: remount it read-write or choose another folder"
        case "ENOTDIR": return "a file is in the way of a folder on that path: move it"
        case "EISDIR": return "a folder (or another non-file) is in the way of the outbox file: move it"
        case "ENAMETOOLONG": return "the name is too long for the file system"
        case "SQLITE_BUSY", "SQLITE_LOCKED": return "another process held the ledger for longer than the busy timeout"
        case "SQLITE_FULL": return "the disk holding the ledger is full"
        case "SQLITE_READONLY": return "the ledger file or its folder is read-only for this user"
        default: return nil
        }
    }
}
