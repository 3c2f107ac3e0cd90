import Testing
@testable import DifyBatch

/// attack4: the busy message names the busy timeout as set (the hidden `--busy-timeout 300ms` said "for 0 s").
@Suite struct BusyErrorMessageTests {
    @Test(arguments: [(0.3, "for 300ms (busy timeout)"), (10.0, "for 10s (busy timeout)"), (1.5, "for 1.5s (busy timeout)")])
    func busyError_namesTheBusyTimeoutAsSet(timeout: Double, expected: String) {
        let message = SQLiteLedger.busyError(path: "/var/l.sqlite", timeout: timeout).message
        #expect(message.contains("the ledger /var/l.sqlite stayed locked by another program " + expected), "\(message)")
    }
}
