import DifyKit
import DifySimulator
import Foundation
import Logging
import Synchronization
import Testing
@testable import DifyBatch

/// attack4: a file the scan rejects gets its `.error.json` before its `rejected` row. Row first, a kill -9 between
/// the two left the row without its outcome file for good (nothing settles a terminal row again):
/// Scripts/attack/reject-kill.sh lost one outcome per kill during a scan of many rejected files.
@Suite struct ScanRejectionOrderTests {
    @Test func scan_rejectingAFile_writesItsErrorFileBeforeItsRejectedRow() async throws {
        try await withDifySimulator { simulator, baseURL in
            let dir = try TemporaryDirectory()
            try dir.write("in/big.txt", String(repeating: "x", count: 3000))
            try dir.write("in/small.txt", "Invoice total 12 EUR")
            let specPath = try dir.write("job.yaml", """
                name: rejections
                inbox: in
                outbox: out
                dify: {base_url: \(baseURL), api_key_env: DIFY_TEST_KEY, response_mode: streaming}
                match: {settle: 0s, max_size: 1KB}
                """)
            let errorFile = dir.file("out/big.txt.error.json")
            // Whether the outbox file existed when each rejected row was inserted.
            let seenAtInsert = Mutex<[Bool]>([])
            // The output path each rejected row carried into its insert (no second write, so no window without it).
            let pathAtInsert = Mutex<[String?]>([])
            let ledgerPath = dir.file("ledger.sqlite")
            let ledger = BusyOnSuccessLedger(base: try SQLiteLedger(path: ledgerPath), path: ledgerPath, times: 0) { new in
                if new.state == .rejected {
                    seenAtInsert.withLock { $0.append(FileManager.default.fileExists(atPath: errorFile)) }
                    pathAtInsert.withLock { $0.append(new.outputPath) }
                }
            }
            var options = PipelineOptions(mode: .once)
            options.tick = .milliseconds(20)
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let result = try await Pipeline(specs: try JobSpecLoader.load(paths: [specPath]), ledger: ledger, options: options,
                                            logger: logger, environment: ["DIFY_TEST_KEY": SimulatedApp.defaultAPIKey]).run()

            #expect(seenAtInsert.withLock { $0 } == [true], "the .error.json exists before the rejected row is inserted")
            #expect(pathAtInsert.withLock { $0 } == [errorFile], "the row is inserted with its output path")
            #expect(result.exitStatus == .documentsFailed)
            let documents = try await ledger.documents(matching: DocumentFilter())
            let big = try #require(documents.first { $0.path == "big.txt" })
            #expect(big.state == .rejected && big.outputPath == errorFile)
            let outcome = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: errorFile))) as? [String: Any]
            #expect(outcome?["status"] as? String == "rejected")
            #expect(documents.first { $0.path == "small.txt" }?.state == .succeeded)
            #expect(simulator.stats.requestsByEndpoint["POST /v1/files/upload"] == 1, "only the small file was uploaded")
            #expect(simulator.stats.requestsByEndpoint["POST /v1/workflows/run"] == 1)
        }
    }
}
