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
/// Order of checks on a run request (after auth and request-shape validation): `slowHeaders` delay,
/// `badGatewayRate`, `serverErrorRate`, `tooManyRequestsRate`, `maxActive`; then input validation;
/// then, for a run that starts: `failedWorkflowRate`, `inStreamErrorRate`, `dropAfterStartRate` (streaming only).
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
    /// Delay before the response head of runs and uploads.
    public var slowHeaders: Duration
    /// Run processing time (between the LLM node's start and finish).
    public var latency: Duration
    /// Extra uniformly random processing time in `0...latencyJitter`.
    public var latencyJitter: Duration

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
