import ArgumentParser
import DifyBatch
import Foundation

@main
struct DifyBatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dify-batch",
        abstract: "Turn a folder into a document pipeline for Dify.",
        discussion: """
            Exit codes:
              0  all succeeded or nothing to do
              1  documents ended dead, rejected, unresolved or failed (local error)
              2  usage or spec error
              3  a job stopped on auth/app configuration
              4  temporary: Dify unreachable, quota exhausted, ledger busy or down
              5  job held by another process
            See README.md, "Exit codes".
            """,
        version: BuildInfo.versionLine,
        subcommands: [RunCommand.self, WatchCommand.self, StatusCommand.self, ListCommand.self, ShowCommand.self, UsageCommand.self, SimulateCommand.self, DemoCommand.self, CheckCommand.self, RetryCommand.self]
    )

    /// Parses, runs, and maps argument errors to the documented exit code 2 (ArgumentParser's default is 64).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(ExitStatus.usage.rawValue)
            }
            exit(withError: error)
        }
    }
}
