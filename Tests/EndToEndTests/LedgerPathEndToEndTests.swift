import DifyBatch
import DifySimulator
import Foundation
import Testing

/// The ledger given as a relative path, the shortest a user can type.
@Suite struct LedgerPathEndToEndTests {
    @Test func run_withAOneCharacterRelativeLedgerPath_recordsEveryFileThere_insteadOfCrashing() async throws {
        // `run --db x` died with SIGILL before anything was recorded: swift-corelibs-foundation traps on the folder
        // of a one-character relative path (NSString.deletingLastPathComponent), which opening the ledger asked for.
        try await withDifySimulator { simulator, baseURL in
            let workspace = try Workspace(baseURL: baseURL)
            for index in 1...2 { try workspace.drop("f\(index).txt", documentText(index)) }
            let folder = workspace.scratch.file("jobs")
            let run = try await CLI.run(["run", "--db", "x", "--progress", "never", workspace.specPath], in: folder,
                                        environment: workspace.environment)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("x")))
            #expect(simulator.stats.runsBySHA256.values.reduce(0, +) == 2, "each file ran once")
            let list = try await CLI.run(["list", "--db", "x", "--json"], in: folder, environment: workspace.environment)
            #expect(list.status == 0, "\(list.stderr)")
            #expect(list.stdout.components(separatedBy: "\"succeeded\"").count - 1 == 2, "\(list.stdout)")
        }
    }
}
