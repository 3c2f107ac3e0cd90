import ArgumentParser
import DifySimulator
import Foundation
import Logging

/// `dify-batch-bench`: runs the real pipeline against the Dify simulator on loopback and prints Markdown tables.
/// Build it in release mode: `swift build -c release --product dify-batch-bench`. Started from `main.swift`.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dify-batch-bench",
        abstract: "Benchmarks of dify-batch against the in-process Dify simulator (loopback only).",
        discussion: "Each subcommand prints a Markdown table on stdout; progress goes to stderr. See BENCHMARKS.md.",
        subcommands: [EfficiencyCommand.self, OverheadCommand.self, MemoryCommand.self, ScanCommand.self,
                      QueriesCommand.self, PickupCommand.self, LedgerOpsCommand.self, SimulatorChildCommand.self]
    )
}

/// Hidden: runs a simulator until killed and prints its base URL as the first stdout line.
struct SimulatorChildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "simulator", shouldDisplay: false)

    @Option var latency = "0ms"
    @Option var jitter = "0ms"
    @Option(name: .customLong("file-mb")) var fileMB = 15

    func run() async throws {
        var faults = FaultPlan()
        faults.latency = try parseDuration(latency)
        faults.latencyJitter = try parseDuration(jitter)
        var limits = UploadLimits()
        limits.fileMB = fileMB
        let configuration = SimulatorConfiguration(limits: limits, faults: faults)
        try await withDifySimulator(configuration) { _, url in
            say(url)
            while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
        }
    }
}
