import Foundation
import Logging

/// Turns a ``ProgressSnapshot`` into text. Pure: no clock, no terminal, no state.
public enum ProgressRenderer {
    /// The states shown, in this order (zero counts are left out, except succeeded).
    public static let shownStates: [DocumentState] = [.succeeded, .skipped, .failed, .dead, .rejected]

    /// `12 succeeded, 1 failed, 2 rejected | 3 in flight, 20 waiting | 1.4 docs/s | ETA 0:14 | 12,340 tokens`
    public static func line(_ snapshot: ProgressSnapshot) -> String {
        var states: [String] = []
        for state in shownStates {
            let count = snapshot.counts[state] ?? 0
            if count > 0 || state == .succeeded { states.append("\(count) \(state.rawValue)") }
        }
        let throughput = snapshot.throughput.map { "\(formatRate($0)) docs/s" } ?? "- docs/s"
        let eta = snapshot.etaSeconds.map { "ETA \(formatDuration($0))" } ?? "ETA -"
        return ([states.joined(separator: ", "),
                 "\(snapshot.inFlight) in flight, \(snapshot.waiting) waiting",
                 throughput, eta,
                 "\(groupThousands(snapshot.tokens)) tokens",
                 formatDuration(snapshot.elapsedSeconds) + " elapsed"] + (snapshot.unsettled.summary.map { [$0] } ?? []))
            .joined(separator: " | ")
    }

    /// The live status line for a terminal: the line, cut to `columns - 1` characters so it never wraps.
    /// Contains no escape codes itself (the writer adds the clear-line sequence).
    public static func statusLine(_ snapshot: ProgressSnapshot, columns: Int?) -> String {
        let text = line(snapshot)
        guard let columns, columns > 1, text.count > columns - 1 else { return text }
        return String(text.prefix(columns - 2)) + "~"
    }

    /// A plain line for pipes and log files: `progress: ...`. Never contains escape codes.
    public static func plainLine(_ snapshot: ProgressSnapshot) -> String {
        "progress: " + line(snapshot)
    }

    /// The plain line as a JSON log record (for `--log-format json`): message `progress`, the counts and rates as fields.
    public static func jsonLine(_ snapshot: ProgressSnapshot, time: Date, label: String = "dify-batch") -> String {
        var metadata: Logger.Metadata = [
            "in_flight": .stringConvertible(snapshot.inFlight), "waiting": .stringConvertible(snapshot.waiting),
            "tokens": .stringConvertible(snapshot.tokens), "elapsed_seconds": .stringConvertible(Int(snapshot.elapsedSeconds.rounded())),
        ]
        for state in shownStates { metadata[state.rawValue] = .stringConvertible(snapshot.counts[state] ?? 0) }
        if let throughput = snapshot.throughput { metadata["docs_per_second"] = .stringConvertible(JSONNumber(formatRate(throughput))) }
        if let eta = snapshot.etaSeconds { metadata["eta_seconds"] = .stringConvertible(Int(eta.rounded())) }
        if snapshot.unsettled.count > 0 {
            metadata["unsettled"] = .stringConvertible(snapshot.unsettled.count)
            metadata["unsettled_oldest"] = "\(snapshot.unsettled.oldestPath ?? "")"
            metadata["unsettled_seconds"] = .stringConvertible(Int(snapshot.unsettled.oldestFor.seconds.rounded(.down)))
        }
        return JSONLogHandler.format(time: time, level: .info, label: label, message: "progress", metadata: metadata)
    }

    /// `0.4`, `12.0`, `130`.
    public static func formatRate(_ rate: Double) -> String {
        if rate >= 100 { return String(Int(rate.rounded())) }
        let tenths = (rate * 10).rounded()
        return "\(Int(tenths) / 10).\(Int(tenths) % 10)"
    }

    /// `0:07`, `3:05`, `1:02:03`.
    public static func formatDuration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "-" }
        let total = max(0, Int(seconds.rounded()))
        let hours = total / 3600, minutes = (total % 3600) / 60, secs = total % 60
        let twoDigits = { (value: Int) in value < 10 ? "0\(value)" : "\(value)" }
        return hours > 0 ? "\(hours):\(twoDigits(minutes)):\(twoDigits(secs))" : "\(minutes):\(twoDigits(secs))"
    }

    /// `12,340`.
    public static func groupThousands(_ value: Int) -> String {
        let digits = String(abs(value))
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return value < 0 ? "-" + out : out
    }
}
