import DifyBatch
import Foundation
import Testing

/// Issue 13 on both stores: a table's rows are documents of their own, found by their table, deduplicated by inputs.
@Suite struct RowsLedgerContractTests {
    @Test(arguments: StoreKind.allCases)
    func insertRows_keepsIndexInputsAndTable_findsThemByTable_andHoldsASameInputsCopy(kind: StoreKind) async throws {
        try await withStore(kind) { ledger in
            let job = try await makeJob(ledger)
            let table = try await ledger.insert(NewDocument(jobID: job.id, path: "t.csv", sha256: "file", size: 10, mtimeNanoseconds: 1))
            func row(_ index: Int, sha: String?, rejected: Bool = false) -> NewDocument {
                var new = NewDocument(jobID: job.id, path: "t.csv#\(index)", sha256: sha, size: 2, mtimeNanoseconds: 1,
                                      state: rejected ? .rejected : .pending,
                                      error: rejected ? RecordedError(errorClass: "rejected", code: "invalid_row", message: "row \(index): bad") : nil)
                if !rejected { new.sameContent = .waitForProcessingOrSucceeded }
                new.rowOf = table.id
                new.rowIndex = index
                new.rowInputs = "{\"inputs\":{\"text\":\"\(index)\"}}"
                return new
            }
            let inserted = try await ledger.insertRows([row(1, sha: "a"), row(2, sha: "b"), row(3, sha: nil, rejected: true), row(4, sha: "a")])
            #expect(inserted.map(\.rowIndex) == [1, 2, 3, 4])
            #expect(inserted.map(\.state) == [.pending, .pending, .rejected, .pending])
            #expect(inserted[3].duplicateOf == inserted[0].id, "same inputs wait for the first row")
            #expect(inserted.allSatisfy { $0.rowOf == table.id })
            let found = try await ledger.documents(matching: DocumentFilter(rowOf: table.id))
            #expect(Set(found.map(\.id)) == Set(inserted.map(\.id)))
            #expect(found.first { $0.rowIndex == 2 }?.rowInputs == "{\"inputs\":{\"text\":\"2\"}}")
            #expect(try await ledger.documents(matching: DocumentFilter(states: [.rejected], rowOf: table.id)).map(\.path) == ["t.csv#3"])
            #expect(try await ledger.documents(path: "t.csv#2").first?.id == inserted[1].id, "a row is addressed as path#row")
            #expect(try await ledger.documents(matching: DocumentFilter(rowOf: inserted[0].id)).isEmpty)
        }
    }
}
