import Foundation
import Testing
@testable import DifyBatch

@Suite struct DocumentStateTests {
    @Test func publicStateNames_areStable() {
        let names = Set(DocumentState.allCases.map(\.rawValue))
        #expect(names.isSuperset(of: ["pending", "running", "succeeded", "failed", "dead", "rejected", "skipped"]))
    }

    @Test func happyPath_isLegal() {
        let path: [DocumentState] = [.pending, .uploading, .uploaded, .running, .succeeded]
        for (from, to) in zip(path, path.dropFirst()) {
            #expect(from.canTransition(to: to), "\(from) → \(to)")
        }
    }

    @Test(arguments: [
        (DocumentState.pending, DocumentState.succeeded),
        (.pending, .running),
        (.running, .pending),
        (.succeeded, .running),
        (.rejected, .uploading),
        (.dead, .succeeded),
        (.skipped, .running),
        (.uploading, .succeeded),
    ])
    func illegalTransition_isRefusedByTheStateMachine(from: DocumentState, to: DocumentState) {
        #expect(!from.canTransition(to: to))
    }

    @Test func terminalStates_canOnlyBeRequeued() {
        for state in DocumentState.allCases where state.isTerminal {
            #expect(DocumentState.transitions[state] == [.pending], "\(state)")
        }
    }

    @Test func sentRun_neverGoesBackToPendingWithoutRecovery() {
        #expect(!DocumentState.running.canTransition(to: .pending))
        #expect(DocumentState.running.canTransition(to: .recovering))
        #expect(DocumentState.recovering.canTransition(to: .pending))
    }

    @Test func ledger_throwsOnIllegalTransition_andLeavesTheDocumentAlone() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await makeJob(ledger)
        let doc = try await ledger.insert(NewDocument(jobID: job.id, path: "a.txt", sha256: "00", size: 1, mtimeNanoseconds: 1))
        await #expect {
            try await ledger.transition(doc.id, from: .pending, to: .succeeded, [])
        } throws: { error in
            (error as? LedgerError)?.code == .illegalTransition
        }
        #expect(try await ledger.document(id: doc.id)?.state == .pending)
    }

    @Test func ledger_refusesATransitionFromAStateTheDocumentIsNoLongerIn() async throws {
        let dir = try TemporaryDirectory()
        let ledger = try SQLiteLedger(path: dir.file("l.sqlite"))
        let job = try await makeJob(ledger)
        let doc = try await ledger.insert(NewDocument(jobID: job.id, path: "a.txt", sha256: "00", size: 1, mtimeNanoseconds: 1))
        try await ledger.transition(doc.id, from: .pending, to: .uploading, [])
        await #expect {
            try await ledger.transition(doc.id, from: .pending, to: .uploading, [])
        } throws: { error in
            (error as? LedgerError)?.code == .stateChanged
        }
    }
}
