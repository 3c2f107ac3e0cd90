import DifyKit
import Foundation
import Testing
@testable import DifyBatch

/// Issue 14: a scan looks at the outbox files of many new documents through one listing per folder, with the same
/// answers as a look-up of each path.
@Suite struct OutboxListingTests {
    static func targets(_ dir: TemporaryDirectory) throws -> OutboxTargets {
        try OutboxTargetsTests.targets(dir)
    }

    @Test func problem_throughAScansListing_givesEveryAnswerTheFileSystemGives_fromOneReadPerFolder() throws {
        let dir = try TemporaryDirectory()
        var paths: [String] = []
        for index in 0..<12 {
            paths.append("many/f\(index).txt")
            _ = try dir.write("in/many/f\(index).txt", "\(index)")
        }
        for index in 0..<5 {
            paths.append("sub/b\(index).txt")
            _ = try dir.write("in/sub/b\(index).txt", "b")
            paths.append("gone/c\(index).txt")
            _ = try dir.write("in/gone/c\(index).txt", "c")
        }
        try dir.makeFolder("out/many/f1.txt.json")                               // a folder where a file goes
        _ = try dir.write("out/many/f2.txt.json", "an earlier result")           // replaced: not in the way
        #expect(symlink(dir.file("out/many/f2.txt.json"), dir.file("out/many/f3.txt.json")) == 0)
        #expect(mkfifo(dir.file("out/many/f4.txt.error.json"), 0o600) == 0)     // something that is not a file
        #expect(symlink(dir.file("nowhere"), dir.file("out/many/f5.txt.error.json")) == 0)
        _ = try dir.write("out/sub", "a file where a folder goes")
        let targets = try Self.targets(dir)
        let writer = OutboxWriter(outbox: targets.outbox)

        var listing = OutboxListing(writer: writer, newPaths: paths)
        var problems: [String: String] = [:]
        for path in paths {
            let expected = targets.problem(relativePath: path)
            let listed = targets.problem(relativePath: path, listing: &listing)
            #expect(listed?.code == expected?.code && listed?.message == expected?.message, "\(path)")
            if let listed { problems[path] = listed.code }
        }
        #expect(problems == ["many/f1.txt": OutboxTargets.blockedCode, "many/f4.txt": OutboxTargets.blockedCode,
                             "sub/b0.txt": OutboxTargets.blockedCode, "sub/b1.txt": OutboxTargets.blockedCode,
                             "sub/b2.txt": OutboxTargets.blockedCode, "sub/b3.txt": OutboxTargets.blockedCode,
                             "sub/b4.txt": OutboxTargets.blockedCode])
        // The outbox, `many` and the file in the way of `sub` (nothing can be in it) and `gone` (not there): read once each.
        #expect(listing.listedCount == 2, "out and out/many are listed; out/sub and out/gone cannot be, and hold nothing")
        #expect(listing.lookup(dir.file("out/many/f0.txt.json")) == .absent)
        #expect(listing.lookup(dir.file("out/many/f1.txt.json")) == .present(S_IFDIR))
        #expect(listing.lookup(dir.file("out/many/f3.txt.json")) == .present(S_IFLNK))
        #expect(listing.lookup(dir.file("out/gone/c0.txt.json")) == .absent)
        #expect(listing.lookup(dir.file("out/sub/b0.txt.json")) == .absent)
    }

    @Test func lookup_readsAFolderOnlyWhenTheScansLookUpsPayForIt() throws {
        let dir = try TemporaryDirectory()
        for index in 0..<300 { _ = try dir.write("out/big/\(String(repeating: "r", count: 60))-\(index).txt.json", "{}") }
        _ = try dir.write("out/small/x.txt.json", "{}")
        let writer = OutboxWriter(outbox: dir.file("out"))
        // A few new files beside 300 results: each is looked up on its own.
        var few = OutboxListing(writer: writer, newPaths: (0..<5).map { "big/new-\($0).txt" })
        #expect(few.lookup(dir.file("out/big/new-0.txt.json")) == .unknown)
        // Fewer than the minimum: not read either.
        var three = OutboxListing(writer: writer, newPaths: ["small/a", "small/b", "small/c"])
        #expect(three.lookup(dir.file("out/small/x.txt.json")) == .unknown)
        // Many new files: one read answers them.
        var many = OutboxListing(writer: writer, newPaths: (0..<400).map { "big/new-\($0).txt" })
        #expect(many.lookup(dir.file("out/big/new-0.txt.json")) == .absent)
        #expect(many.lookup(dir.file("out/big/\(String(repeating: "r", count: 60))-7.txt.json")) == .present(S_IFREG))
        #expect(many.listedCount == 1)
    }

    @Test func existingResult_throughAListing_isFoundWhenThere_andNotOpenedWhenNot() throws {
        let dir = try TemporaryDirectory()
        let writer = OutboxWriter(outbox: dir.file("out"))
        let record = SuccessRecord(job: "j", source: SourceInfo(path: "d/a.txt", sha256: "aa", bytes: 1), appMode: "workflow",
                                   outputs: ["text": "x"], usage: nil, uploadFileID: nil, workflowRunID: "run-1", messageID: nil,
                                   taskID: nil, attempts: 1, elapsedMilliseconds: 1, finishedAt: Date(timeIntervalSince1970: 0))
        try writer.writeSuccess(record)
        try writer.writeFailure(FailureRecord(status: "unresolved", job: "j", source: SourceInfo(path: "d/b.txt", sha256: "bb", bytes: 1),
                                              errorCode: "outcome_unknown", errorMessage: "may have been billed", attempts: 1,
                                              finishedAt: Date(timeIntervalSince1970: 0)))
        var listing = OutboxListing(writer: writer, newPaths: ["d/a.txt", "d/b.txt", "d/c.txt", "d/e.txt"])
        #expect(OutboxExistingResult.find(writer, relativePath: "d/a.txt", sha256: "aa", listing: &listing)?.outputs == ["text": "x"])
        #expect(OutboxExistingResult.find(writer, relativePath: "d/a.txt", sha256: "other", listing: &listing) == nil)
        #expect(OutboxExistingResult.find(writer, relativePath: "d/c.txt", sha256: "aa", listing: &listing) == nil)
        #expect(OutboxExistingResult.unresolved(writer, relativePath: "d/b.txt", sha256: "bb", listing: &listing)?.message == "may have been billed")
        #expect(OutboxExistingResult.unresolved(writer, relativePath: "d/e.txt", sha256: "bb", listing: &listing) == nil)
        #expect(listing.listedCount == 1, "out/d, read once for the four look-ups")
    }
}
