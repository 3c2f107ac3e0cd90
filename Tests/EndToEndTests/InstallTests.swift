import Foundation
import Testing

/// `make install`, the shipped systemd unit and `--version` (issue 16).
@Suite struct InstallTests {
    static let repository: String = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
        }
        return FileManager.default.currentDirectoryPath
    }()

    static func read(_ relative: String) throws -> String {
        try String(contentsOfFile: (repository as NSString).appendingPathComponent(relative), encoding: .utf8)
    }

    @Test func readmeSystemdUnit_isExactlyTheShippedOne() throws {
        let readme = try Self.read("README.md")
        let section = try #require(readme.range(of: "### systemd"), "README has a systemd section")
        let open = try #require(readme.range(of: "```ini\n", range: section.upperBound..<readme.endIndex))
        let close = try #require(readme.range(of: "```", range: open.upperBound..<readme.endIndex))
        let shown = String(readme[open.upperBound..<close.lowerBound])
        #expect(shown == (try Self.read("contrib/dify-batch.service")))
    }

    @Test func version_printsTheVersionAndTheGitRevision() async throws {
        let result = try await CLI.run(["--version"])
        #expect(result.status == 0)
        let line = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(line.range(of: #"^\d+\.\d+\.\d+ \(git ([0-9a-f]{7,40}|unknown)\)$"#, options: .regularExpression) != nil, "\(line)")
    }

    /// A release build takes minutes (8+ on two cores), so this runs only with `DIFY_BATCH_TEST_INSTALL=1`.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DIFY_BATCH_TEST_INSTALL"] == "1"), .timeLimit(.minutes(60)))
    func makeInstall_putsASelfContainedBinaryAndTheUnitUnderPrefix() async throws {
        let stage = try Scratch()
        let make = try await CLI.runProgram("/usr/bin/make", ["install", "PREFIX=/opt/db", "DESTDIR=\(stage.path)"],
                                            in: Self.repository, environment: ProcessInfo.processInfo.environment,
                                            timeout: .seconds(3600))
        #expect(make.status == 0, "\(make.stderr)")
        let binary = stage.file("opt/db/bin/dify-batch")
        #expect(FileManager.default.isExecutableFile(atPath: binary))
        for file in ["dify-batch.service", "dify-batch.env.example"] {
            #expect(FileManager.default.fileExists(atPath: stage.file("opt/db/share/dify-batch/\(file)")), "\(file)")
        }
        // No library of the Swift toolchain is needed: only C libraries of the system.
        let readelf = try await CLI.runProgram("/usr/bin/readelf", ["-d", binary])
        let needed = readelf.stdout.split(separator: "\n").filter { $0.contains("(NEEDED)") }.compactMap { line -> String? in
            guard let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]") else { return nil }
            return String(line[line.index(after: open)..<close])
        }
        #expect(!needed.isEmpty)
        let allowed = ["libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "libutil.so", "libstdc++.so", "libgcc_s.so",
                       "libsqlite3.so", "libz.so", "ld-linux"]
        for library in needed {
            #expect(allowed.contains { library.hasPrefix($0) }, "needs \(library)")
        }
        let ldd = try await CLI.runProgram("/usr/bin/ldd", [binary])
        #expect(!ldd.stdout.contains("swift") && !ldd.stdout.contains("not found"), "\(ldd.stdout)")
        // --version carries the revision, and the source file is back to "unknown".
        let version = try await CLI.runProgram(binary, ["--version"])
        #expect(version.status == 0 && !version.stdout.contains("unknown") || !FileManager.default.fileExists(atPath: Self.repository + "/.git"),
                "\(version.stdout)")
        #expect(try Self.read("Sources/dify-batch/BuildInfo.swift").contains("static let revision = \"unknown\""))
    }
}
