import Foundation

/// `--report FILE`: one JSON line per document touched by a `run`, in its last state, then written atomically.
public enum RunReport {
    /// The JSONL text for these summaries (keys as in `list --json`).
    public static func jsonLines(_ summaries: [JobSummary]) throws -> String {
        try summaries.flatMap(\.touched).map { try ReportFormatting.jsonLine(DocumentJSON($0)) }.joined()
    }

    /// The one-line summary per job printed to stderr at the end of a run: `JOB: succeeded N, skipped N, dead N,
    /// rejected N[, unresolved N][, paused N]; N waiting…` (unresolved and paused only when there are any).
    /// `stopLogged`: the reason the job stopped was already logged when it happened (`watch`), so the line refers
    /// to it instead of repeating it.
    public static func summaryLine(_ summary: JobSummary, stopLogged: Bool = false) -> String {
        let order: [DocumentState] = [.succeeded, .skipped, .dead, .rejected]
        // `unresolved` (exit 1: a run that may have been billed) and `paused` are named whenever there are any.
        let named = order + [DocumentState.unresolved, .paused].filter { (summary.counts[$0] ?? 0) > 0 }
        let parts = named.map { "\($0.rawValue) \(summary.counts[$0] ?? 0)" }.joined(separator: ", ")
        var line = "\(summary.job): \(parts); \(summary.remaining) waiting"
        if summary.localFailures > 0 {
            line += " (\(summary.localFailures) with a stored result whose local work failed; retried without calling Dify)"
        }
        if !summary.notMatched.isEmpty {
            line += "; not matched \(summary.notMatched.count) (\(summary.notMatched.prefix(5).joined(separator: ", "))\(summary.notMatched.count > 5 ? ", …" : ""))"
        }
        if let waiting = summary.unsettled.summary { line += "; \(waiting)" }
        if let stop = summary.stop { line += stopLogged ? " — stopped (exit \(stop.exitStatus.rawValue), reason logged above)" : " — stopped: \(stop.message)" }
        return line
    }
}
