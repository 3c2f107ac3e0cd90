import Foundation
import Testing
@testable import DifyBatch

/// `.dify-batch-owner` in the inbox and the outbox: who owns an inbox, and when another ledger is refused.
@Suite("Inbox ownership")
struct InboxOwnershipTests {
    static let ledgerA = LedgerIdentity(id: String(repeating: "a", count: 32), location: "/var/lib/a.sqlite")
    static let ledgerB = LedgerIdentity(id: String(repeating: "b", count: 32), location: "/var/lib/b.sqlite")

    static func spec(_ dir: TemporaryDirectory) throws -> JobSpec {
        try dir.makeFolder("in")
        return try JobSpecLoader.parse("""
            name: scans
            inbox: in
            outbox: out
            dify: {base_url: http://127.0.0.1:1/v1, api_key_env: K}
            """, path: dir.file("job.yaml"))
    }

    static func marker(_ folder: String) -> InboxOwnership.Owner? {
        InboxOwnership.Owner(contentsOf: (folder as NSString).appendingPathComponent(InboxOwnership.fileName))
    }

    @Test func claim_recordsTheLedgerInInboxAndOutbox_thenAnotherLedgerIsRefusedNamingTheOwnerAndTheWayOut() throws {
        let dir = try TemporaryDirectory()
        let spec = try Self.spec(dir)
        try dir.makeFolder("out")
        #expect(InboxOwnership.refusal(spec: spec, identity: Self.ledgerA) == nil, "an inbox nobody owns")
        #expect(try InboxOwnership.claim(spec: spec, identity: Self.ledgerA, takeOver: false))
        #expect(Self.marker(spec.inbox)?.ledgerID == Self.ledgerA.id && Self.marker(spec.outbox)?.ledger == Self.ledgerA.location)
        #expect(Self.marker(spec.inbox)?.job == "scans")
        #expect(InboxOwnership.refusal(spec: spec, identity: Self.ledgerA) == nil, "the owner itself")

        let refusal = try #require(InboxOwnership.refusal(spec: spec, identity: Self.ledgerB))
        #expect(refusal.contains("--db /var/lib/a.sqlite") && refusal.contains("--take-over-inbox") && refusal.contains(Self.ledgerA.id), "\(refusal)")
        // A claim that does not take over never replaces another ledger's marker.
        #expect(throws: InboxOwnershipError.self) { try InboxOwnership.claim(spec: spec, identity: Self.ledgerB, takeOver: false) }
        #expect(Self.marker(spec.inbox)?.ledgerID == Self.ledgerA.id)
        try InboxOwnership.claim(spec: spec, identity: Self.ledgerB, takeOver: true)
        #expect(Self.marker(spec.inbox)?.ledgerID == Self.ledgerB.id && Self.marker(spec.outbox)?.ledgerID == Self.ledgerB.id)
        #expect(InboxOwnership.refusal(spec: spec, identity: Self.ledgerA) != nil, "now A is the other one")
    }

    @Test func refusal_readsTheOutboxMarker_whenTheInboxHasNone_asForAReadOnlyInbox() throws {
        let dir = try TemporaryDirectory()
        let spec = try Self.spec(dir)
        try dir.makeFolder("out")
        try InboxOwnership.claim(spec: spec, identity: Self.ledgerA, takeOver: false)
        try FileManager.default.removeItem(atPath: (spec.inbox as NSString).appendingPathComponent(InboxOwnership.fileName))
        let refusal = try #require(InboxOwnership.refusal(spec: spec, identity: Self.ledgerB))
        #expect(refusal.contains((spec.outbox as NSString).appendingPathComponent(InboxOwnership.fileName)), "\(refusal)")
    }

    @Test func claim_whenTheInboxCannotBeWritten_recordsTheOutboxOnly_andSaysSo() throws {
        let dir = try TemporaryDirectory()
        // An inbox path that is a file stands in for a read-only inbox (root ignores permissions).
        try dir.makeFolder("in")
        try dir.makeFolder("out")
        var spec = try Self.spec(dir)
        spec.inbox = dir.file("in/not-a-folder")
        _ = try dir.write("in/not-a-folder", "x")
        #expect(try InboxOwnership.claim(spec: spec, identity: Self.ledgerA, takeOver: false) == false)
        #expect(Self.marker(spec.outbox)?.ledgerID == Self.ledgerA.id)
    }

    @Test func claim_movedLedger_rewritesTheLocation_andAnUnreadableMarkerIsRefused_unlessTakenOver() throws {
        let dir = try TemporaryDirectory()
        let spec = try Self.spec(dir)
        try dir.makeFolder("out")
        _ = try dir.write("in/" + InboxOwnership.fileName, #"{"ledger_id": "5821"#)  // cut short
        let refusal = try #require(InboxOwnership.refusal(spec: spec, identity: Self.ledgerA))
        #expect(refusal.contains("cannot be read") && refusal.contains("--take-over-inbox"), "\(refusal)")
        #expect(throws: InboxOwnershipError.self) { try InboxOwnership.claim(spec: spec, identity: Self.ledgerA, takeOver: false) }
        #expect(Self.marker(spec.inbox) == nil, "the unreadable marker is left as it was")
        try InboxOwnership.claim(spec: spec, identity: Self.ledgerA, takeOver: true)
        #expect(InboxOwnership.refusal(spec: spec, identity: Self.ledgerA) == nil)
        #expect(Self.marker(spec.inbox)?.ledgerID == Self.ledgerA.id)
        let moved = LedgerIdentity(id: Self.ledgerA.id, location: "/srv/moved.sqlite")
        try InboxOwnership.claim(spec: spec, identity: moved, takeOver: false)
        #expect(Self.marker(spec.inbox)?.ledger == "/srv/moved.sqlite" && Self.marker(spec.outbox)?.ledger == "/srv/moved.sqlite")
    }
}
