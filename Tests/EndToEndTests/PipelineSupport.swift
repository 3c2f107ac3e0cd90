import DifyBatch
import DifyKit
import DifySimulator
import Foundation
import Logging

/// A job workspace on disk: `in/`, `out/`, `done/` and `jobs/job.yaml` pointing at a simulator.
struct Workspace {
    let scratch: Scratch
    let baseURL: String
    let key: String
    var inbox: String { scratch.file("in") }
    var outbox: String { scratch.file("out") }
    var archive: String { scratch.file("done") }
    var specPath: String { scratch.file("jobs/job.yaml") }
    var dbPath: String { scratch.file("state/ledger.sqlite") }

    init(baseURL: String, key: String = SimulatedApp.defaultAPIKey, extra: String = "", concurrency: Int = 4,
         retry: String = "{max_attempts: 6, base_delay: 10ms, max_delay: 100ms}", recoverDeadline: String = "20s") throws {
        scratch = try Scratch()
        self.baseURL = baseURL
        self.key = key
        try FileManager.default.createDirectory(atPath: scratch.file("in"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: scratch.file("jobs"), withIntermediateDirectories: true)
        let spec = """
            name: docs
            inbox: ../in
            outbox: ../out
            dify:
              base_url: \(baseURL)
              api_key_env: DIFY_TEST_KEY
              inputs: {language: de}
            match:
              settle: 0s
            concurrency: \(concurrency)
            retry: \(retry)
            timeout: 30s
            recover_deadline: \(recoverDeadline)
            \(extra)
            """
        try spec.write(toFile: specPath, atomically: true, encoding: .utf8)
    }

    /// Writes a file into the inbox (creating folders).
    @discardableResult
    func drop(_ relativePath: String, _ content: String) throws -> String {
        let path = (inbox as NSString).appendingPathComponent(relativePath)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(content.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    var environment: [String: String] { ["DIFY_TEST_KEY": key] }

    /// Runs the pipeline in-process.
    func run(mode: PipelineOptions.Mode = .once, timeouts: DifyClient.Timeouts = DifyClient.Timeouts(connect: .milliseconds(500)),
             observers: [any PipelineObserver] = [],
             configure: (inout PipelineOptions) -> Void = { _ in }) async throws -> (PipelineResult, SQLiteLedger) {
        let specs = try JobSpecLoader.load(paths: [specPath])
        let ledger = try SQLiteLedger(path: dbPath)
        var options = PipelineOptions(mode: mode)
        options.tick = .milliseconds(20)
        options.recoveryPollInterval = .milliseconds(20)
        options.seed = 42
        configure(&options)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let pipeline = Pipeline(specs: specs, ledger: ledger, options: options,
                                logger: logger, environment: environment, timeouts: timeouts, observers: observers)
        return (try await pipeline.run(), ledger)
    }

    /// Every `*.json` result file in the outbox (relative paths), excluding `.error.json`.
    func outputs() -> [String] { files(in: outbox).filter { $0.hasSuffix(".json") && !$0.hasSuffix(".error.json") }.sorted() }
    func errorOutputs() -> [String] { files(in: outbox).filter { $0.hasSuffix(".error.json") }.sorted() }

    func files(in folder: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: folder) else { return [] }
        var result: [String] = []
        while let item = enumerator.nextObject() as? String {
            // The inbox owner marker (InboxOwnership) is not a document or an outcome.
            if (item as NSString).lastPathComponent == InboxOwnership.fileName { continue }
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent(item), isDirectory: &isDirectory), !isDirectory.boolValue {
                result.append(item)
            }
        }
        return result
    }

    func json(_ relativePath: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: (outbox as NSString).appendingPathComponent(relativePath)))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }
}

/// Deterministic, varied document texts.
func documentText(_ index: Int) -> String {
    let words = ["invoice", "total", "Straße", "naïve", "résumé", "amount", "due", "日本語", "data", "line"]
    var text = "Document \(index)\n"
    for line in 0..<(index % 7 + 1) {
        text += (0..<(index % 5 + 3)).map { words[($0 + line + index) % words.count] }.joined(separator: " ") + "\n"
    }
    return text
}
