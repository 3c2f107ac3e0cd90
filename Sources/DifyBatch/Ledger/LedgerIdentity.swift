import Foundation

/// Who a ledger is: a random id stored in the ledger itself (table `ledger_identity`, schema 11), created the first
/// time it is asked for, and where it was opened, for messages. A moved or copied SQLite file keeps its id; every
/// process and host sharing one PostgreSQL database sees the same id. ``InboxOwnership`` records it in the inboxes
/// the ledger serves.
public struct LedgerIdentity: Sendable, Equatable {
    /// 32 lowercase hex digits.
    public var id: String
    /// The SQLite file (absolute) or the PostgreSQL location without secrets (`postgres://USER@HOST:PORT/DB`).
    public var location: String

    public init(id: String, location: String) {
        self.id = id
        self.location = location
    }

    /// A new random id (128 bits, hex).
    public static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined()
    }
}
