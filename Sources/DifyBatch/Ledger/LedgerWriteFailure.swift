/// What `run`/`watch` print (exit 4) when a ledger write around the jobs failed (registering them, recording the
/// run, a write after the drain): another program held the write lock past the busy timeout (an `sqlite3` shell's
/// `BEGIN IMMEDIATE`), or the disk is full / an I/O error. The work is kept for the next run either way.
public enum LedgerWriteFailure {
    /// One sentence naming the ledger, the cause and the fix.
    public static func message(ledger: String, error: any Error) -> String {
        switch LocalFailure.code(error) {
        case "SQLITE_BUSY", "SQLITE_LOCKED":
            return "the ledger \(ledger) stayed locked by another program for longer than the busy timeout (\(error)); end the program holding a write transaction on it (an sqlite3 shell, a backup tool) and run again: the work is kept for the next run"
        default:
            return "the ledger \(ledger) could not be written: \(error); free space on its file system (or fix the I/O error) and run again: the work is kept for the next run"
        }
    }
}
