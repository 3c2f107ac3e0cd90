import Foundation

/// Whether a run the ledger shows as not ended is still going: `running`, `ended`, or `gone` (its process, on
/// this host, no longer exists — killed or crashed before it could record its end).
public enum RunLiveness: String, Sendable, Encodable {
    case running, ended, gone

    /// The state of a run recorded with `pid` on `host` that ended at `endedAt` (nil: no end recorded).
    /// A run on another host is taken as `running`: its process cannot be seen from here.
    public static func of(endedAt: Date?, pid: Int, host: String, currentHost: String = ProcessInfo.processInfo.hostName,
                          isAlive: (Int) -> Bool = RunLiveness.isDifyBatchAlive) -> RunLiveness {
        if endedAt != nil { return .ended }
        guard host == currentHost else { return .running }
        return isAlive(pid) ? .running : .gone
    }

    /// True when `pid` exists and (where /proc shows it) is a dify-batch process — a reused pid is not the run.
    public static func isDifyBatchAlive(_ pid: Int) -> Bool {
        guard pid > 0, let id = pid_t(exactly: pid) else { return false }
        if kill(id, 0) != 0 && errno == ESRCH { return false }
        guard let data = ProcFS.contents("/proc/\(pid)/cmdline"), !data.isEmpty else { return true }
        let arguments = String(decoding: data, as: UTF8.self).split(separator: "\0")
        guard let program = arguments.first else { return true }
        // The program itself, or a test runner hosting the pipeline in-process.
        return program.hasSuffix("dify-batch") || arguments.contains { $0.contains("dify-batch") }
    }
}
