import Foundation
import Testing
@testable import DifyBatch

@Suite struct ConcurrentAccessTests {
    /// Two independent connections pools on one file behave like two processes at the SQLite level: the writer
    /// holds write transactions continuously while the reader runs status queries.
    @Test func readerNeverSeesDatabaseLocked_whileAnotherConnectionWrites() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("shared.sqlite")
        let writer = try SQLiteLedger(path: path)
        let reader = try SQLiteLedger(path: path)
        let job = try await makeJob(writer)

        let writes = 400
        try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                for index in 0..<writes {
                    let doc = try await writer.insert(NewDocument(jobID: job.id, path: "f\(index)", sha256: "\(index)", size: 1, mtimeNanoseconds: 1))
                    try await writer.transition(doc.id, from: .pending, to: .uploading, [])
                    try await writer.recordUsage(documentID: doc.id, jobID: job.id, runID: nil, difyRunID: nil, UsageAmounts(totalTokens: 1, totalPrice: Decimal(string: "0.001"), currency: "USD"))
                }
                return writes
            }
            group.addTask {
                var reads = 0
                var lastSeen = 0
                while lastSeen < writes {
                    let report = try await StatusReport.build(from: reader, database: path)
                    let seen = report.jobs.first?.total ?? 0
                    #expect(seen >= lastSeen, "counts never go backwards")
                    lastSeen = seen
                    _ = try await reader.documents(matching: DocumentFilter(states: [.uploading], limit: 10))
                    reads += 1
                }
                return reads
            }
            var results: [Int] = []
            for try await value in group { results.append(value) }
            #expect(results.allSatisfy { $0 > 0 })
        }
        let final = try await StatusReport.build(from: reader, database: path)
        #expect(final.jobs.first?.counts["uploading"] == writes)
        #expect(final.jobs.first?.usage.totalPrice == "0.4")
    }
}
