/// Why a job stopped before its work was done. Maps to the documented exit codes.
public struct JobStop: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Reason: String, Sendable {
        /// 401/403, wrong app mode, no file variable, required inputs missing: exit 3.
        case configuration
        /// Dify unreachable or quota exhausted; work is kept: exit 4.
        case unavailable
        /// Another process holds the job: exit 5.
        case locked
        /// The job cannot start as configured (a folder it must write is not writable, its inbox cannot be
        /// locked by this user): exit 2, nothing of it was touched.
        case usage
    }

    public var reason: Reason
    public var job: String
    public var message: String
    /// The stop is because Dify could not be reached at all (as opposed to a quota).
    public var isUnreachable: Bool

    public init(_ reason: Reason, job: String, _ message: String, isUnreachable: Bool = false) {
        self.reason = reason
        self.job = job
        self.message = message
        self.isUnreachable = isUnreachable
    }

    public var description: String { "job \(job): \(message)" }

    public var exitStatus: ExitStatus {
        switch reason {
        case .configuration: return .configuration
        case .unavailable: return .unavailable
        case .locked: return .locked
        case .usage: return .usage
        }
    }
}
