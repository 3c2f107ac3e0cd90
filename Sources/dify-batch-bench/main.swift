import ArgumentParser
import Foundation
import Synchronization

// The command runs in a detached task while the main thread turns its run loop (which drains the main dispatch
// queue: Foundation's Process reports a child's exit through it), instead of an `async` main: Swift's async main
// ends in dispatch_main(), which valgrind 3.19 (Debian bookworm's) cannot run (it stops with "Valgrind received a
// signal 11" as the main thread parks; a five-line async main does the same), so `valgrind --tool=callgrind` could
// not count the pipeline's instructions per file (issue 14, BENCHMARKS.md §15).
// A child started from a cooperative thread inherits its signal mask, in which libdispatch blocks SIGTERM: the
// simulator child (this binary) then ignored the SIGTERM that stops it. Its main thread takes them again.
var signals = sigset_t()
sigemptyset(&signals)
for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
pthread_sigmask(SIG_UNBLOCK, &signals, nil)

let finished = Atomic<Bool>(false)
Task.detached {
    do {
        var command = try BenchCommand.parseAsRoot()
        if var asynchronous = command as? any AsyncParsableCommand {
            try await asynchronous.run()
        } else {
            try command.run()
        }
    } catch {
        BenchCommand.exit(withError: error)
    }
    finished.store(true, ordering: .releasing)
}
while !finished.load(ordering: .acquiring) {
    _ = RunLoop.main.run(mode: .default, before: Date(timeIntervalSinceNow: 0.05))
}
