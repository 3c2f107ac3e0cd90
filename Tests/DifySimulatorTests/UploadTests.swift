import Crypto
import DifySimulator
import Foundation
import Testing

@Suite("POST /v1/files/upload")
struct UploadTests {
    @Test func upload_answers201WithCapturedKeysAndDifySpelling() async throws {
        try await withSimulator { simulator, client in
            let r = try await client.upload(filename: "hello.txt", contentType: "text/plain", bytes: helloText)
            let captured = try Captures.http("01_upload_txt")
            #expect(r.status == 201)
            #expect(r.header("Content-Type") == "application/json")
            let json = try #require(r.json)
            #expect(json.keys == captured.json?.keys)
            #expect(json["name"] == "hello.txt")
            #expect(json["size"] == .int(helloText.count))
            #expect(json["extension"] == "txt")
            #expect(json["mime_type"] == "text/plain")
            #expect(json["preview_url"] == .null)
            #expect(r.text.contains(#""mime_type":"text\/plain""#), "Flask escapes slashes")
            #expect(simulator.stats.uploads == 1)
        }
    }

    @Test func upload_keepsPartContentTypeAndEmptyExtension() async throws {
        try await withSimulator { _, client in
            let md = try await client.upload(filename: "notes.md", contentType: "application/octet-stream", bytes: Array("# hi\n".utf8), user: nil)
            #expect(md.status == 201)
            #expect(md.json?["mime_type"] == "application/octet-stream")
            let readme = try await client.upload(filename: "README", contentType: "text/plain", bytes: Array("hello".utf8))
            #expect(readme.status == 201)
            #expect(readme.json?["extension"] == "")
            let empty = try await client.upload(filename: "empty.txt", bytes: [])
            #expect(empty.status == 201)
            #expect(empty.json?["size"] == 0)
        }
    }

    @Test func upload_withoutFilePart_answersNoFileUploaded() async throws {
        try await withSimulator { _, client in
            let r = try await client.sendMultipart([.init(name: "user", body: Array("u".utf8))])
            #expect(r.status == 400)
            #expect(r.text == (try Captures.http("34_err_missing_file_field").body))
        }
    }

    @Test func upload_withTwoFileFields_answersTooManyFiles() async throws {
        try await withSimulator { _, client in
            let r = try await client.sendMultipart([
                .init(name: "file", filename: "hello.txt", contentType: "text/plain", body: helloText),
                .init(name: "file2", filename: "b.txt", contentType: "text/plain", body: helloText),
                .init(name: "user", body: Array("u".utf8)),
            ])
            #expect(r.status == 400)
            #expect(r.text == (try Captures.http("45_err_two_files_in_upload").body))
        }
    }

    @Test func upload_filePartWithoutContentType_answers415() async throws {
        try await withSimulator { _, client in
            let r = try await client.upload(filename: "hello.txt", contentType: nil, bytes: Array("hello".utf8))
            #expect(r.status == 415)
            #expect(r.text == (try Captures.http("95_err_file_part_without_content_type").body))
        }
    }

    @Test func upload_emptyFilename_answersFilenameNotExists() async throws {
        try await withSimulator { _, client in
            let r = try await client.upload(filename: "", bytes: Array("hello".utf8))
            #expect(r.status == 400)
            #expect(r.text == (try Captures.http("96_err_file_part_empty_filename").body))
        }
    }

    @Test func upload_filenameWithBackslash_answersInvalidCharacters() async throws {
        try await withSimulator { _, client in
            let r = try await client.upload(filename: #"a\\b.txt"#, bytes: Array("hello".utf8))
            #expect(r.status == 400)
            #expect(r.json?["message"] == "Filename contains invalid characters")
        }
    }

    @Test func upload_blacklistedExtension_answersInvalidParam() async throws {
        var config = SimulatorConfiguration()
        config.limits.extensionBlacklist = ["exe"]
        try await withSimulator(config) { _, client in
            let r = try await client.upload(filename: "tool.exe", contentType: "application/x-msdownload", bytes: try Captures.testFile("tool.exe"))
            #expect(r.status == 400)
            #expect(r.text == (try Captures.http("35c_err_upload_exe_blacklisted").body))
        }
    }

    @Test func upload_overClassLimit_answers413WithDifyLiteralMessage() async throws {
        var config = SimulatorConfiguration()
        config.limits.fileMB = 1
        try await withSimulator(config) { simulator, client in
            let big = [UInt8](repeating: UInt8(ascii: "a"), count: 1024 * 1024 + 1)
            let r = try await client.upload(filename: "big.txt", bytes: big)
            #expect(r.status == 413)
            #expect(r.text == (try Captures.http("37_err_too_large").body))
            // An image uses the image class (10 MB): the same size passes.
            let png = try await client.upload(filename: "big.png", contentType: "image/png", bytes: big)
            #expect(png.status == 201)
            #expect(simulator.stats.uploads == 1)
        }
    }

    @Test func upload_streamsLargeFileToDiskWithCorrectHashAndSummary() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("simtest-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = SimulatorConfiguration(storageDirectory: dir)
        config.limits.fileMB = 15
        try await withSimulator(config) { _, client in
            var bytes: [UInt8] = []
            bytes.reserveCapacity(5_000_000)
            var generator = SystemRandomNumberGenerator()
            while bytes.count < 5_000_000 {
                // Words and lines, with the boundary's prefix inside the data.
                bytes += Array("word\(generator.next() % 1000) \r\n--------------------------sim ".utf8)
            }
            let id = try await client.uploadID(filename: "big.txt", bytes: bytes)
            let stored = try Data(contentsOf: URL(fileURLWithPath: dir).appendingPathComponent(id))
            #expect(stored.count == bytes.count)
            #expect(Array(stored) == bytes)
            let run = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id))
            let expected = SimulatedOutput.workflowOutputs(fileBytes: bytes, filename: "big.txt")
            let outputs = try #require(run.json?["data"]?["outputs"]?.objectValue)
            #expect(Dictionary(uniqueKeysWithValues: outputs) == expected)
            #expect(expected["sha256"]?.stringValue == SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined())
        }
    }

    @Test func upload_withoutUser_belongsToDefaultUser() async throws {
        try await withSimulator { _, client in
            let r = try await client.upload(bytes: helloText, user: nil)
            let id = try #require(r.json?["id"]?.stringValue)
            let other = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id, user: "someone"))
            #expect(other.status == 400)
            #expect(other.text == (try Captures.http("13_err_run_file_uploaded_without_user_as_other_user").body))
            let asDefault = try await client.postJSON("/workflows/run", TestClient.runBody(fileID: id, user: "DEFAULT-USER"))
            #expect(asDefault.status == 200)
        }
    }
}
