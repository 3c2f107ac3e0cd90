import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Which ledger owns a job's inbox, so a second ledger never runs and pays for its files again.
///
/// The inbox lock (exit 5) keeps two processes apart only while both run. One after the other, a ledger that does
/// not know the inbox (another `--db`, the default ledger instead of the usual one, a deleted and recreated ledger)
/// would take every file still there (`after_success: keep`, failures, unresolved runs) for new and send it again.
/// So the first ledger to start a job on an inbox records its ``LedgerIdentity`` in `.dify-batch-owner` (one JSON
/// object: `ledger_id`, `ledger`, `job`, `host`, `claimed_at`) in the inbox and in the outbox — a dotfile, which
/// the scanner never takes. A job whose inbox or outbox names another ledger does not start (exit 2) and the
/// message names the owning ledger and the way out: that ledger's `--db`, or `--take-over-inbox`.
///
/// The inbox copy is written only where the inbox is writable (a read-only inbox with `after_success: keep` is
/// recorded in the outbox alone); the outbox copy is required. A moved or copied ledger file keeps its id, so it
/// stays the owner; every host sharing one PostgreSQL ledger has the same id, so they are one owner.
public enum InboxOwnership {
    /// The marker's file name, in the inbox and in the outbox.
    public static let fileName = ".dify-batch-owner"

    /// What a marker says.
    public struct Owner: Sendable, Equatable {
        public var ledgerID: String
        /// Where the owner ledger was opened (its `--db`).
        public var ledger: String
        public var job: String
        public var host: String
        public var claimedAt: String

        var json: Data {
            let object: [String: String] = ["ledger_id": ledgerID, "ledger": ledger, "job": job, "host": host, "claimed_at": claimedAt]
            var data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            data.append(0x0A)
            return data
        }

        init(ledgerID: String, ledger: String, job: String, host: String, claimedAt: String) {
            self.ledgerID = ledgerID
            self.ledger = ledger
            self.job = job
            self.host = host
            self.claimedAt = claimedAt
        }

        /// Nil for a file that is not a marker (unreadable, not JSON, no ledger id).
        public init?(contentsOf path: String) {
            guard let data = FileManager.default.contents(atPath: path),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let id = object["ledger_id"] as? String, !id.isEmpty else { return nil }
            self.init(ledgerID: id, ledger: object["ledger"] as? String ?? "?", job: object["job"] as? String ?? "?",
                      host: object["host"] as? String ?? "?", claimedAt: object["claimed_at"] as? String ?? "?")
        }
    }

    /// The marker files of a spec: inbox first, then outbox.
    static func markerPaths(_ spec: JobSpec) -> [String] {
        [spec.inbox, spec.outbox].map { ($0 as NSString).appendingPathComponent(fileName) }
    }

    /// The first marker of the spec's inbox or outbox that names another ledger, with its file.
    public static func otherOwner(spec: JobSpec, identity: LedgerIdentity) -> (owner: Owner, file: String)? {
        for path in markerPaths(spec) {
            if let owner = Owner(contentsOf: path), owner.ledgerID != identity.id { return (owner, path) }
        }
        return nil
    }

    /// Why this ledger may not start the job (another ledger owns its inbox, or a marker file is there but cannot
    /// be read as one), or nil.
    public static func refusal(spec: JobSpec, identity: LedgerIdentity) -> String? {
        if let other = otherOwner(spec: spec, identity: identity) {
            return message(spec: spec, identity: identity, owner: other.owner, file: other.file)
        }
        return markerPaths(spec).lazy.compactMap { unreadableMarkerMessage(spec: spec, path: $0) }.first
    }

    /// A marker file that exists but is not a readable marker (cut short, edited, unreadable) names an owner this
    /// ledger cannot check: the job is refused rather than the inbox silently taken over (attack
    /// `Scripts/attack/owner-variants.sh` (b): two cut markers let another ledger start without
    /// `--take-over-inbox`). Nil when the file is absent or a readable marker.
    static func unreadableMarkerMessage(spec: JobSpec, path: String) -> String? {
        var status = stat()
        guard lstat(path, &status) == 0, Owner(contentsOf: path) == nil else { return nil }
        return "the inbox \(spec.inbox) has an owner marker \(path) that cannot be read as one (not a readable JSON "
            + "object with a ledger_id): another ledger may own this inbox, and this one does not know what that one already "
            + "sent. If you know no other ledger serves it, remove the file or pass --take-over-inbox once"
    }

    static func message(spec: JobSpec, identity: LedgerIdentity, owner: Owner, file: String) -> String {
        let db = owner.ledger.contains(" ") ? "'\(owner.ledger)'" : owner.ledger
        return "the inbox \(spec.inbox) belongs to another ledger: \(owner.ledger) (ledger id \(owner.ledgerID), job \(owner.job), "
            + "host \(owner.host), since \(owner.claimedAt); recorded in \(file)), not to this one (\(identity.location), ledger id \(identity.id)). "
            + "This ledger does not know what that one already sent: starting here would send and pay for its files again. "
            + "Use that ledger (`--db \(db)`); or, if it is gone for good or this ledger is to serve the inbox from now on, "
            + "pass --take-over-inbox once (files whose result is already in the outbox with the same sha256 are not sent again; the tables of a `rows: true` job are)"
    }

    /// Records `identity` as the owner (after ``refusal(spec:identity:)`` said none other, or to take the inbox over):
    /// the outbox marker (required: throws ``FileOperationError``) and the inbox marker (where the inbox is writable).
    /// A marker already naming this ledger at this location is left as it is. Without `takeOver`, a marker another
    /// ledger wrote in the meantime (processes that do not share the inbox lock: PostgreSQL) is never replaced: the
    /// refusal is thrown as ``InboxOwnershipError``. Returns whether the inbox copy could be written.
    @discardableResult
    public static func claim(spec: JobSpec, identity: LedgerIdentity, takeOver: Bool, now: Date = Date()) throws -> Bool {
        let owner = Owner(ledgerID: identity.id, ledger: identity.location, job: spec.name, host: JobLock.hostName,
                          claimedAt: ReportFormatting.timestamp(now) ?? "")
        var inboxWritten = true
        for (index, path) in markerPaths(spec).enumerated() {
            do {
                try write(owner, to: path, takeOver: takeOver, spec: spec, identity: identity)
            } catch is FileOperationError where index == 0 {
                inboxWritten = false
            }
        }
        return inboxWritten
    }

    private static func write(_ owner: Owner, to path: String, takeOver: Bool, spec: JobSpec, identity: LedgerIdentity) throws {
        if !takeOver, let unreadable = unreadableMarkerMessage(spec: spec, path: path) {
            throw InboxOwnershipError(message: unreadable)
        }
        if let existing = Owner(contentsOf: path) {
            if existing.ledgerID == owner.ledgerID && existing.ledger == owner.ledger { return }
            if existing.ledgerID != owner.ledgerID && !takeOver {
                throw InboxOwnershipError(message: message(spec: spec, identity: identity, owner: existing, file: path))
            }
            // This ledger at a new place (moved), or taken over on purpose: replaced.
            try AtomicFile.write(owner.json, to: path, permissions: 0o644)
            return
        }
        // A first claim never replaces a marker written in the meantime by another process.
        let folder = PathText.folder(of: path)
        let temporary = (folder as NSString).appendingPathComponent(AtomicFile.temporaryName())
        try AtomicFile.write(owner.json, to: temporary, permissions: 0o644)
        let code = NoReplaceRename.rename(temporary, path)
        guard code == 0 else {
            _ = unlink(temporary)
            if code == EEXIST {
                // A file that is not a marker is here (only with takeOver: without it, it was refused above, or it
                // appeared just now and is judged like any): replaced. A marker written in the meantime: judged.
                if Owner(contentsOf: path) == nil {
                    if takeOver { return try AtomicFile.write(owner.json, to: path, permissions: 0o644) }
                    throw InboxOwnershipError(message: unreadableMarkerMessage(spec: spec, path: path)
                                              ?? "the owner marker \(path) appeared while this ledger claimed the inbox; try again")
                }
                return try write(owner, to: path, takeOver: takeOver, spec: spec, identity: identity)
            }
            throw FileOperationError(operation: "record the owner ledger in", path: path, errorNumber: code)
        }
        try? AtomicFile.syncDirectory(folder)
    }
}

/// Another ledger owns the job's inbox (see ``InboxOwnership``): the job does not start (exit 2).
public struct InboxOwnershipError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}
