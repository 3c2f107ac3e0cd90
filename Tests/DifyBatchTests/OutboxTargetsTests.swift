import Foundation
import Testing
@testable import DifyBatch

/// An outbox path that cannot be written is found before the run is paid (attack `outbox-name-clash.sh`).
@Suite("Outbox targets")
struct OutboxTargetsTests {
    static func targets(_ dir: TemporaryDirectory, extra: String = "") throws -> OutboxTargets {
        let spec = try JobSpecLoader.parse("""
            inbox: in
            outbox: out
            dify: {base_url: http://127.0.0.1:1/v1, api_key_env: K}
            \(extra)
            """, path: dir.file("job.yaml"))
        return OutboxTargets(spec: spec)
    }

    @Test func problem_whenAnInboxFolderIsNamedLikeAFilesOutboxFile_reportsTheClashOnBothNamingTheOtherPath() throws {
        let dir = try TemporaryDirectory()
        _ = try dir.write("in/d.txt", "the file d")
        _ = try dir.write("in/d.txt.json/e.txt", "the file e")
        let targets = try Self.targets(dir)

        let file = try #require(targets.problem(relativePath: "d.txt"))
        #expect(file.code == OutboxTargets.clashCode)
        #expect(file.errorClass == "rejected")
        #expect(file.message.contains("inbox folder d.txt.json/") && file.message.contains("rename one of them"), "\(file.message)")
        let inFolder = try #require(targets.problem(relativePath: "d.txt.json/e.txt"))
        #expect(inFolder.code == OutboxTargets.clashCode)
        #expect(inFolder.message.contains("inbox file d.txt ") && inFolder.message.contains("retry --state rejected d.txt.json/e.txt"), "\(inFolder.message)")
    }

    @Test func problem_whenAFailureFolderOrATableSuffixClashes_reportsIt_andNotForUnrelatedOrIgnoredPaths() throws {
        let dir = try TemporaryDirectory()
        _ = try dir.write("in/a.pdf", "a")
        _ = try dir.write("in/a.pdf.error.json/x.txt", "x")      // a.pdf would fail into a folder
        _ = try dir.write("in/t.csv", "h\n1\n")
        _ = try dir.write("in/t.csv.jsonl/y.txt", "y")           // only a rows job writes t.csv.jsonl
        _ = try dir.write("in/b.txt", "b")
        _ = try dir.write("in/.b.txt.json/hidden.txt", "h")      // a dot-folder is never taken
        _ = try dir.write("in/c.txt.json/z.txt", "z")            // c.txt is excluded: it writes nothing
        _ = try dir.write("in/c.txt", "c")
        let targets = try Self.targets(dir, extra: "match: {exclude: [c.txt]}")
        #expect(targets.problem(relativePath: "a.pdf")?.code == OutboxTargets.clashCode)
        #expect(targets.problem(relativePath: "a.pdf.error.json/x.txt")?.code == OutboxTargets.clashCode)
        #expect(targets.problem(relativePath: "t.csv") == nil, "documents do not write .jsonl")
        #expect(try Self.targets(dir, extra: "rows: true").problem(relativePath: "t.csv")?.code == OutboxTargets.clashCode)
        #expect(targets.problem(relativePath: "b.txt") == nil)
        #expect(targets.problem(relativePath: "c.txt.json/z.txt") == nil, "an excluded file writes no outbox file")
        // Without recursion the folder's files are never taken.
        #expect(try Self.targets(dir, extra: "match: {recursive: false}").problem(relativePath: "a.pdf") == nil)
    }

    @Test func problem_whenTwoFilesWouldWriteTheSameOutcomeFile_xAndXDotError_reportsItOnBoth() throws {
        let dir = try TemporaryDirectory()
        _ = try dir.write("in/report", "r")
        _ = try dir.write("in/report.error", "e")
        let targets = try Self.targets(dir)
        #expect(targets.problem(relativePath: "report")?.message.contains("inbox file report.error") == true)
        #expect(targets.problem(relativePath: "report.error")?.message.contains("inbox file report ") == true)
    }

    @Test func problem_whenSomethingInTheOutboxIsInTheWay_isBlockedNamingIt() throws {
        let dir = try TemporaryDirectory()
        _ = try dir.write("in/a.txt", "a")
        _ = try dir.write("in/sub/b.txt", "b")
        _ = try dir.write("in/ok/c.txt", "c")
        try dir.makeFolder("out/a.txt.json")                     // a folder where a file goes
        _ = try dir.write("out/sub", "a file where a folder goes")
        _ = try dir.write("out/ok/c.txt.json", "an earlier result: replaced, not in the way")
        let targets = try Self.targets(dir)
        let folder = try #require(targets.problem(relativePath: "a.txt"))
        #expect(folder.code == OutboxTargets.blockedCode)
        #expect(folder.message.contains("a folder is in the way") && folder.message.contains(dir.file("out/a.txt.json")), "\(folder.message)")
        let file = try #require(targets.problem(relativePath: "sub/b.txt"))
        #expect(file.code == OutboxTargets.blockedCode)
        #expect(file.message.contains("ENOTDIR") && file.message.contains(dir.file("out/sub")), "\(file.message)")
        #expect(targets.problem(relativePath: "ok/c.txt") == nil)
        // A symlink that leads nowhere cannot be a folder either.
        _ = try dir.write("in/loop/d.txt", "d")
        #expect(symlink(dir.file("out/loop"), dir.file("out/loop")) == 0)
        #expect(targets.problem(relativePath: "loop/d.txt")?.code == OutboxTargets.blockedCode)
    }

    @Test func problem_whenTheOutboxPathIsLongerThanLinuxTakes_isBlocked_whileALongNameAloneIsCutAndFits() throws {
        let dir = try TemporaryDirectory()
        let folder = Array(repeating: String(repeating: "f", count: 200), count: 21).joined(separator: "/")
        try dir.makeFolder("in")
        let targets = try Self.targets(dir)
        let deep = try #require(targets.problem(relativePath: folder + "/x.txt"))
        #expect(deep.code == OutboxTargets.blockedCode && deep.message.contains("ENAMETOOLONG"), "\(deep.message)")
        #expect(targets.problem(relativePath: String(repeating: "n", count: 250) + ".txt") == nil, "a long name is cut by OutboxWriter")
    }
}
