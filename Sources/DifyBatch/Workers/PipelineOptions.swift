import Foundation

/// How a `run` or `watch` invocation behaves. Defaults are on each property.
public struct PipelineOptions: Sendable {
    public enum Mode: String, Sendable {
        /// `run`: process what is there (and what becomes due), then exit.
        case once = "run"
        /// `watch`: run until a shutdown signal.
        case watch
    }

    public var mode: Mode
    /// Documents in flight across every job (default: unlimited, i.e. the sum of the jobs' `concurrency`).
    public var maxInflight: Int?
    /// `run`: stop taking new work after this long (default: none).
    public var maxDuration: Duration?
    /// Run documents again even when the same content already succeeded (default false).
    public var reprocess: Bool = false
    /// `watch`: after a shutdown signal, how long in-flight documents may take before they are cancelled (default 30s).
    public var grace: Duration = .seconds(30)
    /// Wait for a job held by another process instead of exiting with code 5 (default false).
    public var waitForLock: Bool = false
    /// `--adopt-inbox`: a job name the ledger knows with another inbox takes this spec's inbox (the job moved on
    /// purpose). Default false: such a spec is refused with exit 2.
    public var adoptInbox: Bool = false
    /// `--take-over-inbox`: an inbox whose `.dify-batch-owner` names another ledger is taken over by this one (see
    /// ``InboxOwnership``). Default false: such a job does not start (exit 2).
    public var takeOverInbox: Bool = false
    /// Spec files that did not load (issue 16): each is reported as a job that could not start (exit 2 at the end),
    /// while the specs that loaded run. Default none.
    public var badSpecs: [SpecError] = []
    /// Keep every document touched in this invocation for ``JobSummary/touched`` (`--report`, `demo`; default
    /// true). `run` without `--report` and `watch` set false: the job then keeps counts and local-failure marks
    /// only, not a record per document (issue 14: memory that grew with every document a `watch` processed).
    public var keepsTouchedDocuments: Bool = true
    /// How often the job loop wakes to look for due retries and settled files (default 200ms).
    public var tick: Duration = .milliseconds(200)
    /// `watch`: full rescan of the inbox as a safety net for missed events (default 30s).
    public var rescanInterval: Duration = .seconds(30)
    /// Seed for backoff jitter (default: random).
    public var seed: UInt64?
    /// `run`: stop a job after this many consecutive "Dify unreachable" errors (default 3).
    public var unreachableLimit: Int = 3
    /// `run`: after this many local failures (outbox, disposal, ledger) of a document whose result is stored, in
    /// one invocation, `run` no longer waits for it (it may still be retried while other work goes on); it ends
    /// with exit 1 and the next `run` or `watch` tries again. `watch` retries such documents indefinitely. Default 3.
    public var localRetriesPerRun: Int = 3
    /// How often recovery polls a lost run's detail at first (default 500ms).
    public var recoveryPollInterval: Duration = .milliseconds(500)
    /// Use inotify in `watch` mode (default true).
    public var useInotify: Bool = true
    /// Cancelled by a second SIGTERM/SIGINT: the drain ends at once (default: a token nobody cancels).
    public var drainCancellation = ShutdownTrigger()
    /// `watch`: the spec files and folders given on the command line, loaded again on ``specReloads`` requests
    /// (SIGHUP) and every ``specPollInterval``: new or fixed specs start, removed ones stop (drained), changed ones
    /// restart; a spec that does not load is reported and its running version keeps running (issue 16). Default
    /// nil: the jobs given at start run unchanged.
    public var specPaths: [String]? = nil
    /// Requests to load the specs again now (SIGHUP).
    public var specReloads = SpecReloadRequests()
    /// `watch` with ``specPaths``: how often the spec files are looked at for changes (default 2s).
    public var specPollInterval: Duration = .seconds(2)

    public init(mode: Mode) { self.mode = mode }
}
