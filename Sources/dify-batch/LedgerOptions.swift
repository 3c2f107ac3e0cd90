import ArgumentParser
import DifyBatch
import Foundation

/// `--db PATH` and `--json`, shared by the reading commands.
struct LedgerOptions: ParsableArguments {
    @Option(name: .long, help: "The ledger file (default: $DIFY_BATCH_DB, else $XDG_STATE_HOME/dify-batch/dify-batch.sqlite).")
    var db: String?

    var path: String { LedgerLocation.resolve(db) }

    /// Opens the ledger for reading, or returns nil (after telling the user on stderr) when it does not exist yet.
    func openExisting() throws -> SQLiteLedger? {
        let path = self.path
        guard FileManager.default.fileExists(atPath: path) else {
            Console.error("dify-batch: no ledger at \(path) yet: nothing has been processed. Run `dify-batch run jobs/<job>.yaml` (or give --db).")
            return nil
        }
        do {
            return try SQLiteLedger(path: path)
        } catch {
            Console.error("dify-batch: \(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
    }
}

/// Output helpers: data to stdout, diagnostics to stderr.
enum Console {
    static func out(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }
}
