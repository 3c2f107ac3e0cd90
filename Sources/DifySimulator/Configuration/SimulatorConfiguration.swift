/// Everything a ``DifySimulator`` needs to know. Defaults are written next to each property.
public struct SimulatorConfiguration: Sendable {
    /// Interface to bind. Default `127.0.0.1`.
    public var host: String
    /// TCP port; `0` (default) picks a free one, reported through `run(onReady:)`.
    public var port: Int
    /// Apps served, each identified by its API key. Default: `[.default]`.
    public var apps: [SimulatedApp]
    /// Upload size limits in MB per file class (Dify defaults: file 15, image 10, audio 50, video 100).
    public var limits: UploadLimits
    /// Injected faults. Default `.none`.
    public var faults: FaultPlan
    /// A streaming run whose inputs are invalid answers 200, sends one `event: ping`, stays silent for this long,
    /// then closes the stream (Dify: ~300 s). Default 300 s.
    public var invalidInputStreamClose: Duration
    /// Interval between `event: ping` keep-alives while a streamed run is processing. Default 10 s.
    public var pingInterval: Duration
    /// Directory for uploaded files. Default nil: a fresh directory under the system temp dir, removed when
    /// the simulator stops. A directory given here is created if needed and never removed.
    public var storageDirectory: String?
    /// Serve HTTPS with this certificate (for testing a Dify behind an internal CA). Default nil: plain HTTP.
    public var tls: SimulatorTLS? = nil

    public init(
        host: String = "127.0.0.1",
        port: Int = 0,
        apps: [SimulatedApp] = [.default],
        limits: UploadLimits = .init(),
        faults: FaultPlan = .none,
        invalidInputStreamClose: Duration = .seconds(300),
        pingInterval: Duration = .seconds(10),
        storageDirectory: String? = nil
    ) {
        self.host = host
        self.port = port
        self.apps = apps
        self.limits = limits
        self.faults = faults
        self.invalidInputStreamClose = invalidInputStreamClose
        self.pingInterval = pingInterval
        self.storageDirectory = storageDirectory
    }
}

/// Upload size limits in MB (applied as MB × 1024 × 1024 bytes), chosen by the file's extension like Dify.
public struct UploadLimits: Sendable, Equatable {
    /// `UPLOAD_FILE_SIZE_LIMIT`: everything that is not image, audio or video. Default 15.
    public var fileMB: Int
    /// `UPLOAD_IMAGE_FILE_SIZE_LIMIT` (jpg jpeg png webp gif svg). Default 10.
    public var imageMB: Int
    /// `UPLOAD_AUDIO_FILE_SIZE_LIMIT` (mp3 m4a wav amr mpga). Default 50.
    public var audioMB: Int
    /// `UPLOAD_VIDEO_FILE_SIZE_LIMIT` (mp4 mov mpeg webm). Default 100.
    public var videoMB: Int
    /// `WORKFLOW_FILE_UPLOAD_LIMIT`, published in `/parameters`. Default 10.
    public var workflowFileUploadLimit: Int
    /// `UPLOAD_FILE_EXTENSION_BLACKLIST` (lower-case, no dot). Default empty, like Dify.
    public var extensionBlacklist: [String]

    public init(
        fileMB: Int = 15, imageMB: Int = 10, audioMB: Int = 50, videoMB: Int = 100,
        workflowFileUploadLimit: Int = 10, extensionBlacklist: [String] = []
    ) {
        self.fileMB = fileMB
        self.imageMB = imageMB
        self.audioMB = audioMB
        self.videoMB = videoMB
        self.workflowFileUploadLimit = workflowFileUploadLimit
        self.extensionBlacklist = extensionBlacklist
    }

    /// Byte limit for a file with this (lower-case, dot-less) extension.
    public func byteLimit(forExtension ext: String) -> Int {
        let mb: Int
        if FileTypes.imageUploadExtensions.contains(ext) {
            mb = imageMB
        } else if FileTypes.videoUploadExtensions.contains(ext) {
            mb = videoMB
        } else if FileTypes.audioUploadExtensions.contains(ext) {
            mb = audioMB
        } else {
            mb = fileMB
        }
        return mb * 1024 * 1024
    }
}

/// Fault injection. Rates are probabilities in 0...1, drawn from one RNG seeded with `seed`, so a
/// single-threaded sequence of requests sees the same faults every time.
///
/// Order of checks on a run request (after auth): `slowHeaders` delay, `gatewayRateLimitRate` (before the body is
/// read); then request-shape validation, `badGatewayRate`, `serverErrorRate`, `tooManyRequestsRate`, `maxActive`,
/// `dropBeforeRunRate`; then input validation; then, for a run that starts: `failedWorkflowRate`,
/// `inStreamErrorRate`, `pausedRunRate`, `dropAfterStartRate` (streaming) or `dropBlockingAfterStartRate` (blocking).
/// Uploads see `slowHeaders`, `badGatewayRate` and `serverErrorRate` only.
public struct FaultPlan: Sendable, Equatable {
    /// RNG seed. Default 1.
    public var seed: UInt64
    /// 500 `internal_server_error` (JSON) on runs and uploads.
    public var serverErrorRate: Double
    /// 429 `too_many_requests` on runs, with Dify's concurrency message.
    public var tooManyRequestsRate: Double
    /// Real cap on concurrently active runs (all apps together); beyond it 429 `too_many_requests`. A slot is
    /// taken before input validation and held until the run ends — including a streamed run that is stalling on
    /// invalid inputs, as in Dify. nil = unlimited.
    public var maxActive: Int?
    /// 502 with nginx's HTML body, on runs and uploads.
    public var badGatewayRate: Double
    /// Streaming runs: the connection is closed right after `workflow_started` (or the first `message` for
    /// completion/chat); the run still finishes server-side and is visible in run detail and logs.
    public var dropAfterStartRate: Double
    /// Runs: an `error` event (`completion_request_error` 400 or `internal_server_error` 500) instead of
    /// finishing. Blocking runs answer that error as HTTP status + JSON body, as Dify does.
    public var inStreamErrorRate: Double
    /// Workflow runs: `workflow_finished` with status `failed` and an error text (HTTP 200).
    /// Completion/chat apps answer 400 `completion_request_error` instead (they have no failed status).
    public var failedWorkflowRate: Double
    /// The error text of the failed LLM node and of the failed run (`failedWorkflowRate`); nil = the default
    /// "[simulator] Injected node failure: the model returned an invalid response.".
    public var failedWorkflowMessage: String? = nil
    /// Delay before the response head of runs and uploads.
    public var slowHeaders: Duration
    /// Run processing time (between the LLM node's start and finish).
    public var latency: Duration
    /// Extra uniformly random processing time in `0...latencyJitter`.
    public var latencyJitter: Duration

    // MARK: Recovery faults (issue 10). Set them after `init`; each defaults to "off". The order of checks is
    // documented on ``FaultPlan``.

    /// The simulator's "now" is real time shifted by this much (positive: Dify's clock is ahead of the client's).
    /// It moves `created_at` of uploads and runs (and so the `/workflows/logs` filters), `finished_at`, event
    /// timestamps and the `Date` header of every response. Default zero.
    public var clockOffset: Duration = .zero
    /// A run is listed in `GET /workflows/logs` only once it reached a terminal state (succeeded, failed, stopped),
    /// as Dify versions that write the app-log row when the run ends do. Default false (listed while running).
    public var logsOnlyWhenFinished = false
    /// The first N `GET /workflows/run/{id}` requests for EACH run id answer 404 `not_found` ("Workflow run not
    /// found."), then the run is visible (replica lag). Default 0.
    public var runDetailNotFoundFirst = 0
    /// After the 404s above, the next N requests for each run id answer nginx's HTML 502. Default 0.
    public var runDetailBadGatewayFirst = 0
    /// The first N `GET /workflows/logs` requests (all together) answer Flask's HTML 404. Default 0.
    public var logsNotFoundFirst = 0
    /// After the 404s above, the next N logs requests answer nginx's HTML 502. Default 0.
    public var logsBadGatewayFirst = 0
    /// Run POSTs: the connection is closed without any response before a run exists (a proxy or network drop).
    /// No run is recorded; ``SimulatorStats/runRequestsDroppedBeforeRun`` counts them. Default 0.
    public var dropBeforeRunRate = 0.0
    /// Blocking runs: the connection is closed without any response right after the run started; the run
    /// finishes server-side (visible in run detail and logs, billed). Default 0.
    public var dropBlockingAfterStartRate = 0.0
    /// Streaming runs that start: after the first `event: ping`, the stream is silent this long (a buffering
    /// reverse proxy) while the run executes server-side; then the held-back events follow. Default zero.
    public var silenceBeforeStart: Duration = .zero
    /// Runs: a gateway/CDN rate limit answers 429 `text/html` (a Cloudflare "Error 1015" page) before Dify sees the
    /// request. Distinct from Dify's JSON `too_many_requests`. Default 0.
    public var gatewayRateLimitRate = 0.0
    /// `Retry-After` (whole seconds) on the gateway 429 above. Default nil (no header).
    public var gatewayRetryAfter: Duration?
    /// `Retry-After` (whole seconds) on Dify's JSON 429 `too_many_requests` (real Dify sends none). Default nil.
    public var tooManyRequestsRetryAfter: Duration?
    /// Workflow runs: probability that the run pauses for human input after its LLM node (Dify ≥ 1.13 Human Input
    /// node): stream `human_input_required` + `workflow_paused`, then the stream ends; blocking answers 200 with
    /// `data.status: "paused"`; run detail says `paused` until ``DifySimulator/resumePausedRun(id:)`` is called or
    /// `pausedRunResumeAfter` passes, then the run finishes `succeeded` with outputs and usage. Default 0.
    public var pausedRunRate = 0.0
    /// Resume paused runs automatically after this long. Default nil: only ``DifySimulator/resumePausedRun(id:)``.
    public var pausedRunResumeAfter: Duration?

    public init(
        seed: UInt64 = 1,
        serverErrorRate: Double = 0,
        tooManyRequestsRate: Double = 0,
        maxActive: Int? = nil,
        badGatewayRate: Double = 0,
        dropAfterStartRate: Double = 0,
        inStreamErrorRate: Double = 0,
        failedWorkflowRate: Double = 0,
        slowHeaders: Duration = .zero,
        latency: Duration = .zero,
        latencyJitter: Duration = .zero
    ) {
        self.seed = seed
        self.serverErrorRate = serverErrorRate
        self.tooManyRequestsRate = tooManyRequestsRate
        self.maxActive = maxActive
        self.badGatewayRate = badGatewayRate
        self.dropAfterStartRate = dropAfterStartRate
        self.inStreamErrorRate = inStreamErrorRate
        self.failedWorkflowRate = failedWorkflowRate
        self.slowHeaders = slowHeaders
        self.latency = latency
        self.latencyJitter = latencyJitter
    }

    /// No faults, no latency.
    public static let none = FaultPlan()
}

/// The server certificate for an HTTPS simulator: PEM files of the certificate chain (leaf first) and its key.
public struct SimulatorTLS: Sendable, Equatable {
    public var certificateChainFile: String
    public var privateKeyFile: String

    public init(certificateChainFile: String, privateKeyFile: String) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
    }
}
