/// The lifecycle of one document (one version of one inbox file). The names are public: they appear in
/// `--json` output, `list --state` and the ledger. Every state change goes through ``canTransition(to:)``.
///
/// ```
/// pending ──► uploading ──► uploaded ──► running ──► succeeded
///    │            │             │           │
///    │            └─► failed ◄──┴───────────┤ (retryable; next_attempt_at)
///    │                  │                   ├─► recovering ─► succeeded | failed | dead | pending
///    ├─► rejected       └─► dead            └─► dead      recovering ─► unresolved | paused
///    └─► skipped                                            running ─► paused ─► succeeded | failed | dead
/// ```
///
/// A run request that may have reached Dify leaves `running`/`recovering` only on evidence Dify gave
/// (`succeeded`, `failed`, `dead`, `paused`) or for `unresolved` (issue 10).
public enum DocumentState: String, CaseIterable, Codable, Sendable, Comparable {
    /// Known and waiting to be processed.
    case pending
    /// The file is being uploaded.
    case uploading
    /// Dify holds the file (`upload_file_id` set); the run has not been sent.
    case uploaded
    /// The run request was sent; ids are recorded as soon as Dify sends them.
    case running
    /// The run was sent but its outcome is unknown (dropped stream, timeout, crash): recovery looks it up
    /// before anything is sent again. Also a document whose result is stored while its local work (outbox,
    /// disposal) is done again from that result.
    case recovering
    /// The result was written to the outbox.
    case succeeded
    /// The last attempt failed in a way worth retrying; `next_attempt_at` says when.
    case failed
    /// Out of attempts, or failed permanently after it was sent. An `.error.json` was written.
    case dead
    /// Bad input that was never sent (too big, wrong type, empty, unreadable, symlink). An `.error.json` was written.
    case rejected
    /// The same content already succeeded for this job; the output was written from the stored result.
    case skipped
    /// A run was sent and its outcome could not be established within `recover_deadline`: it may have run (and
    /// been billed). Never re-sent automatically; `dify-batch retry --state unresolved` (or the spec's
    /// `recovery: {on_unknown: resend}`) sends it again, counted in `duplicate_runs`. An `.error.json` was written.
    case unresolved
    /// The run is paused in Dify (a Human Input node waits for a person). It is polled, never re-sent.
    case paused

    /// States a document rests in when no process is working on it.
    public var isTerminal: Bool {
        switch self {
        case .succeeded, .dead, .rejected, .skipped, .unresolved: return true
        default: return false
        }
    }

    /// The `run_jobs` column that counts documents settling in this state during a `run`/`watch` process
    /// (`succeeded`, `failed`, `dead`, `rejected`, `skipped`); nil for states not counted there. Both ledgers
    /// interpolate it into SQL, so it is only ever one of these five fixed names.
    public var runJobsColumn: String? {
        switch self {
        case .succeeded, .failed, .dead, .rejected, .skipped: return rawValue
        default: return nil
        }
    }

    /// States in which a document's content is on its way to a run (issue 10 rule 6): a copy of that content waits
    /// behind such a document instead of being sent. `unresolved` counts too: its run may have happened and been
    /// billed, so a copy waits with it (held, not sent) until someone decides about the original
    /// (`retry --state unresolved`), instead of paying again. As SQL string literals for both ledgers' queries
    /// (`'pending', 'uploading', …`; raw values are plain words).
    public static let holdingCopiesSQL = [DocumentState.pending, .uploading, .uploaded, .running, .recovering, .failed, .paused, .unresolved]
        .map { "'\($0.rawValue)'" }.joined(separator: ", ")

    /// States that mean a process was working on the document; after a crash they need recovery.
    public var isInFlight: Bool {
        switch self {
        case .uploading, .uploaded, .running, .recovering: return true
        default: return false
        }
    }

    /// The legal transitions, in one place.
    public static let transitions: [DocumentState: Set<DocumentState>] = [
        .pending: [.uploading, .uploaded, .rejected, .skipped, .recovering, .failed],
        .uploading: [.uploaded, .failed, .dead, .rejected, .pending],
        .uploaded: [.running, .uploading, .failed, .dead, .pending],
        .running: [.succeeded, .failed, .dead, .recovering, .uploading, .paused],
        .recovering: [.running, .succeeded, .failed, .dead, .pending, .skipped, .unresolved, .paused],
        .failed: [.uploading, .uploaded, .recovering, .pending, .dead],
        .succeeded: [.pending],
        .dead: [.pending],
        .rejected: [.pending],
        .skipped: [.pending],
        .unresolved: [.pending],
        .paused: [.succeeded, .failed, .dead, .recovering],
    ]

    /// Whether a document in this state may move to `next`.
    public func canTransition(to next: DocumentState) -> Bool {
        Self.transitions[self]?.contains(next) ?? false
    }

    public static func < (lhs: DocumentState, rhs: DocumentState) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
