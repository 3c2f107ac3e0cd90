import DifyBatch
import DifySimulator
import Foundation
import Testing

/// Issue 14: what a document costs in ledger write transactions, counted by the SQLite ledger itself: a scan's new
/// files are inserted together, the claim counts the attempt, and nothing is written between the claim and the
/// upload's end. A streaming document then costs its claim, its send, its run ids, its result and its final state.
@Suite struct WriteTransactionsEndToEndTests {
    @Test func run_ofNewFiles_costsAboutFiveWriteTransactionsPerStreamingDocument_andACopyStillWaitsForItsTwin() async throws {
        try await withDifySimulator(SimulatorConfiguration()) { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL, concurrency: 4)
            for index in 0..<20 { try workspace.drop("f\(index).txt", documentText(index)) }
            try workspace.drop("copy of f3.txt", documentText(3))
            // No timer ticks: each one would try a claim (a write transaction even when nothing is due), as many as
            // the machine is slow; document events still wake the loop.
            let (result, ledger) = try await workspace.run { $0.tick = .seconds(600) }
            #expect(result.exitStatus == .success)
            let documents = try await ledger.documents(matching: DocumentFilter())
            #expect(documents.count == 21)
            #expect(documents.filter { $0.state == .succeeded }.count == 20)
            // The two of the same content: the first found runs, the other waits for it and is skipped.
            let original = try #require(documents.first { $0.path == "copy of f3.txt" })
            let copy = try #require(documents.first { $0.path == "f3.txt" })
            #expect(original.state == .succeeded && copy.state == .skipped && copy.duplicateOf == original.id)
            #expect(simulator.stats.runsBySHA256.count == 20 && simulator.stats.runsBySHA256.values.allSatisfy { $0 == 1 })
            // Before issue 14's last pass: 7 per document (153 here). Now 5 per document (113 here: a claim of several
            // documents at once makes it less, a claim that finds nothing due more), plus the run's and the copy's own.
            let writes = ledger.writeTransactions
            #expect(writes <= 5 * 20 + 20, "\(writes) write transactions for 20 documents and a copy")
        }
    }
}
