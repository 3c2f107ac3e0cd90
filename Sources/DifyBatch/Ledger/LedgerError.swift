/// An error from the ledger: a code to match on, a message that says what to do, and the context.
public struct LedgerError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String { case illegalTransition, stateChanged, notFound, schemaTooNew, cannotOpen, invalidValue, busy, leaseLost, unreachable }
        private let value: Value
        private init(_ value: Value) { self.value = value }
        /// A state change that the state machine forbids.
        public static let illegalTransition = Code(.illegalTransition)
        /// The document was no longer in the expected state (another worker or process moved it).
        public static let stateChanged = Code(.stateChanged)
        /// No such document, job or run.
        public static let notFound = Code(.notFound)
        /// The database was written by a newer dify-batch.
        public static let schemaTooNew = Code(.schemaTooNew)
        /// The database file could not be opened or created.
        public static let cannotOpen = Code(.cannotOpen)
        /// A value could not be stored or read back.
        public static let invalidValue = Code(.invalidValue)
        /// Another program held the database's write lock longer than the busy timeout (temporary: exit 4).
        public static let busy = Code(.busy)
        /// Another process took over the document after this process's lease expired (PostgreSQL ledger).
        public static let leaseLost = Code(.leaseLost)
        /// The ledger's server did not answer in time (PostgreSQL ledger; temporary: exit 4).
        public static let unreachable = Code(.unreachable)
        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The exit code for a ledger that cannot be opened or prepared: `busy` and `unreachable` are temporary (4:
    /// the other program lets go, the server comes back; the work is kept), anything else needs a fix (2).
    public var exitStatus: ExitStatus {
        code == .busy || code == .unreachable ? .unavailable : .usage
    }
}
