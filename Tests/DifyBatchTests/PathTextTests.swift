import Foundation
import Testing
@testable import DifyBatch

@Suite struct PathTextTests {
    static let paths = ["/a/b", "/a", "/", "ab", "a/b", "", "/a/b/", "//a", "a//b", "/a/b.txt.json", "./a", "../a",
                        "/a/./b", "/é/ü.txt", "ab/", "//", "/a/b c/d", "report.jsonl", "é.txt"]

    @Test func folderNameAndJoin_giveWhatNSStringGives_forEveryForm() {
        for path in Self.paths {
            #expect(PathText.folder(of: path) == (path as NSString).deletingLastPathComponent, "folder of \(path)")
            #expect(PathText.name(of: path) == (path as NSString).lastPathComponent, "name of \(path)")
            for name in ["b", "b.json", "", "/b", "b/", "c/d", "é.txt"] {
                #expect(PathText.join(path, name) == (path as NSString).appendingPathComponent(name), "\(path) + \(name)")
            }
        }
    }

    @Test func folderOfAOneCharacterRelativePath_isEmpty_whereNSStringCrashes() {
        // swift-corelibs-foundation here traps (SIGILL in String._startOfLastPathComponent) on "x" and "x/"; the
        // folder of any other relative name without a slash is "" (NSString: "ab" → ""), and so is this one's.
        #expect(PathText.folder(of: "x") == "")
        #expect(PathText.name(of: "x") == "x")
        #expect(PathText.join(PathText.folder(of: "x"), "x.tmp") == "x.tmp")
    }
}
