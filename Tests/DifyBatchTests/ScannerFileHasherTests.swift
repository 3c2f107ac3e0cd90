import Foundation
import Testing
@testable import DifyBatch

@Suite struct ScannerFileHasherTests {
    @Test func hashesKnownVectors() throws {
        let dir = try TemporaryDirectory()
        let empty = try scannerWrite(dir.path, "empty", "")
        let abc = try scannerWrite(dir.path, "abc", "abc")
        #expect(try FileHasher.sha256(path: empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(try FileHasher.sha256(path: abc) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(FileHasher.sha256(bytes: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func hashesAMultiMebibyteFileAcrossChunkBoundariesLikeSha256sum() throws {
        let dir = try TemporaryDirectory()
        // 3.5 MiB + 7 bytes of a non-repeating pattern: several full chunks and a ragged tail.
        var bytes = [UInt8](repeating: 0, count: 3 * FileHasher.chunkSize + FileHasher.chunkSize / 2 + 7)
        var state: UInt32 = 2_463_534_242
        for index in bytes.indices {
            state ^= state << 13; state ^= state >> 17; state ^= state << 5
            bytes[index] = UInt8(truncatingIfNeeded: state)
        }
        let path = dir.path + "/big.bin"
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let hash = try FileHasher.sha256(path: path)

        #expect(hash == FileHasher.sha256(bytes: bytes))
        // An independent implementation, when there is one.
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/sha256sum") {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
            process.arguments = [path]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            #expect(String(decoding: output, as: UTF8.self).prefix(64) == Substring(hash))
        }
    }

    @Test func missingFileThrowsAnErrorNamingIt() throws {
        let dir = try TemporaryDirectory()
        let error = #expect(throws: FileHashError.self) {
            try FileHasher.sha256(path: dir.path + "/gone.pdf")
        }
        #expect(error?.description.contains("gone.pdf") == true)
        #expect(error?.errno == ENOENT)
    }
}
