import Foundation
import Hummingbird
import NIOCore
import Synchronization
import Testing
@testable import DifyKit
#if canImport(Glibc)
import Glibc
#endif

@Suite("DifyClient uploads from an open descriptor")
struct DescriptorUploadTests {
    @Test("sends exactly `length` bytes from offset 0 of the descriptor, reports them to onChunk, leaves the fd open")
    func uploadFromDescriptor_sendsThePinnedBytes() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("difykit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("a.txt").path
        try Data("pinned content".utf8).write(to: URL(fileURLWithPath: path))
        let fd = open(path, O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        // The path now names another file: the upload must not care.
        try Data("SWAPPED".utf8).write(to: URL(fileURLWithPath: path + ".new"))
        #expect(rename(path + ".new", path) == 0)
        let recorder = Recorder()
        let seen = Mutex<[UInt8]>([])
        let uploadBody = try Captures.http("01_upload_txt").body
        _ = try await TestServer.run({ router in
            router.post("/v1/files/upload") { request, _ -> Response in
                recorder.add("content-length", request.headers[.contentLength] ?? "")
                for try await chunk in request.body { recorder.appendBytes(chunk) }
                return Response(status: .created, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(data: uploadBody)))
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                try await client.upload(descriptor: fd, length: 14, filename: "a.txt", user: "u", boundary: "B", chunkLength: 4,
                                        onChunk: { bytes in seen.withLock { $0 += Array(bytes) } })
            }
        }
        let body = String(decoding: recorder.body, as: UTF8.self)
        #expect(body.contains("\r\n\r\npinned content\r\n--B--"))
        #expect(!body.contains("SWAPPED"))
        #expect(seen.withLock { $0 } == Array("pinned content".utf8))
        #expect(recorder.get("content-length") == [String(recorder.body.count)])
        #expect(fcntl(fd, F_GETFD) >= 0, "the caller's descriptor is still open")
    }

    @Test("a file shorter than the declared length fails with fileAccess instead of sending a short body")
    func uploadFromDescriptor_whenTheFileShrank_throwsFileAccess() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("difykit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("a.txt").path
        try Data("short".utf8).write(to: URL(fileURLWithPath: path))
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let uploadBody = try Captures.http("01_upload_txt").body
        let error = try await TestServer.run({ router in
            router.post("/v1/files/upload") { request, _ -> Response in
                for try await _ in request.body {}
                return Response(status: .created, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(data: uploadBody)))
            }
        }) { baseURL in
            try await withDifyClient(baseURL: baseURL) { client in
                do {
                    _ = try await client.upload(descriptor: fd, length: 100, filename: "a.txt", user: "u")
                    return nil as DifyError?
                } catch let error as DifyError {
                    return error
                }
            }
        }
        #expect(error?.code == .fileAccess, "\(String(describing: error))")
    }
}
