import Foundation
import Testing

/// Every long flag that `dify-batch <command> --help` lists is documented in README.md (the flags are a public
/// contract; a flag only `--help` knows is undocumented).
@Suite struct ReadmeFlagsTests {
    static let commands = ["run", "watch", "status", "list", "show", "usage", "simulate", "demo", "check", "retry"]

    /// The long flags in the OPTIONS section of a `--help` text (`--help` and `--version` themselves left out).
    static func longFlags(inHelp help: String) -> Set<String> {
        var flags: Set<String> = []
        var inOptions = false
        for line in help.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasSuffix(":") && !line.hasPrefix(" ") { inOptions = line.hasPrefix("OPTIONS") || line.hasSuffix("OPTIONS:") }
            guard inOptions, line.trimmingCharacters(in: .whitespaces).hasPrefix("-") else { continue }
            // The flag names come first on an option's line: `-v, --verbose`, `--db <db>`, `--[no-]wait`.
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            let head = trimmed.range(of: "  ").map { String(trimmed[..<$0.lowerBound]) } ?? trimmed
            for word in head.split(separator: " ") where word.hasPrefix("--") {
                let name = word.trimmingCharacters(in: CharacterSet(charactersIn: ","))
                flags.insert(name.replacingOccurrences(of: "[no-]", with: ""))
            }
        }
        return flags.subtracting(["--help", "--version"])
    }

    /// True when `flag` appears in `text` as a whole flag (`--db` does not match inside `--db-timeout`).
    static func mentions(_ text: String, _ flag: String) -> Bool {
        var searchRange = text.startIndex..<text.endIndex
        while let found = text.range(of: flag, range: searchRange) {
            let next = found.upperBound < text.endIndex ? text[found.upperBound] : " "
            if !(next.isLetter || next.isNumber || next == "-") { return true }
            searchRange = found.upperBound..<text.endIndex
        }
        return false
    }

    @Test func helpParser_findsFlagsOfAnOptionsSection() {
        let help = """
            USAGE: x [--db <db>]

            OPTIONS:
              --db <db>               The ledger.
              -v, --verbose           Talk. Not a --flag in prose.
              --[no-]wait             Wait.
              -h, --help              Show help information.

            """
        #expect(Self.longFlags(inHelp: help) == ["--db", "--verbose", "--wait"])
        #expect(Self.mentions("use --db-x here", "--db") == false && Self.mentions("use `--db PATH`", "--db"))
    }

    /// Where README documents `command`'s flags: its row of the Commands table, plus the section's opening
    /// paragraph (flags every command, or `run` and `watch`, share); for `simulate` also its faults table.
    static func documentation(of command: String, in readme: String) throws -> String {
        let section = try #require(readme.range(of: "\n## Commands\n"), "README has a Commands section")
        let rest = readme[section.upperBound...]
        let intro = rest.prefix { $0 != "|" }
        let rows = rest.split(separator: "\n").filter { $0.hasPrefix("| `dify-batch \(command) ") || $0.hasPrefix("| `dify-batch \(command)`") }
        var text = String(intro) + "\n" + rows.joined(separator: "\n")
        // `simulate`'s row links to the table of its fault options.
        if command == "simulate", let faults = readme.range(of: "### The simulator's faults") {
            text += "\n" + String(readme[faults.lowerBound...]).components(separatedBy: "\n## ")[0]
        }
        return text
    }

    @Test(arguments: [""] + commands)
    func everyLongFlagOfACommandsHelp_isDocumentedInItsREADMERow(command: String) async throws {
        let readme = try InstallTests.read("README.md")
        let result = try await CLI.run((command.isEmpty ? [] : [command]) + ["--help"])
        #expect(result.status == 0, "\(result.stderr)")
        let flags = Self.longFlags(inHelp: result.stdout)
        #expect(command.isEmpty || !flags.isEmpty, "no flags parsed from:\n\(result.stdout)")
        let documentation = command.isEmpty ? readme : try Self.documentation(of: command, in: readme)
        let missing = flags.filter { !Self.mentions(documentation, $0) }.sorted()
        #expect(missing.isEmpty, "dify-batch \(command) --help lists flags its README.md row does not mention: \(missing)")
    }
}
