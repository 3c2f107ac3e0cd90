import Foundation

/// Where the ledger lives when `--db` is not given.
public enum LedgerLocation {
    /// `$DIFY_BATCH_DB` if set, else `$XDG_STATE_HOME/dify-batch/dify-batch.sqlite`, else
    /// `~/.local/state/dify-batch/dify-batch.sqlite`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit = environment["DIFY_BATCH_DB"], !explicit.isEmpty { return explicit }
        let stateHome: String
        if let xdg = environment["XDG_STATE_HOME"], xdg.hasPrefix("/") {
            stateHome = xdg
        } else {
            let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
            stateHome = (home as NSString).appendingPathComponent(".local/state")
        }
        return (stateHome as NSString).appendingPathComponent("dify-batch/dify-batch.sqlite")
    }

    /// `--db` if given, else ``defaultPath(environment:)``.
    public static func resolve(_ option: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let option, !option.isEmpty { return option }
        return defaultPath(environment: environment)
    }
}
