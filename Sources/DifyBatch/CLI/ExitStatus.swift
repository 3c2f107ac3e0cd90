/// The documented, stable exit codes of `dify-batch`.
public enum ExitStatus: Int32, Sendable, CaseIterable {
    /// Everything succeeded, or there was nothing to do.
    case success = 0
    /// Some documents ended `dead`, `rejected` or `unresolved` in this invocation.
    case documentsFailed = 1
    /// Usage or spec error: nothing was touched.
    case usage = 2
    /// A job stopped on an auth/app configuration problem (401, 403, wrong app mode, no file variable).
    case configuration = 3
    /// Dify unreachable or quota exhausted: work is kept for the next run.
    case unavailable = 4
    /// The job is held by another `run`/`watch` process.
    case locked = 5
}
