import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension DifyClient {
    /// `POST /files/upload`: multipart/form-data streamed from disk with a known Content-Length.
    ///
    /// - `filename`: the name Dify stores (its extension drives type detection and the size limit); defaults to the
    ///   file's own name. Path separators are stripped (Dify rejects `/` and `\`).
    /// - `user`: must equal the `user` of the run that uses the file (files are scoped to key and user).
    ///
    /// Uploads wait for the response head up to `timeouts.total` (the head follows the whole body).
    /// The result's `createdAt` (Dify's epoch seconds) and `serverDate` (the `Date` header) are Dify's clock.
    /// A file that cannot be opened throws ``DifyError`` `fileAccess` (permanent, nothing sent).
    public func upload(fileAt path: String, filename: String? = nil, user: String) async throws -> UploadedFile {
        try await upload(fileAt: path, filename: filename, user: user, boundary: MultipartUpload.randomBoundary())
    }

    func upload(fileAt path: String, filename: String?, user: String?, boundary: String,
                chunkLength: Int = 64 * 1024) async throws -> UploadedFile {
        let endpoint = "POST /files/upload"
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        var info = stat()
        guard descriptor >= 0, fstat(descriptor, &info) == 0 else {
            let code = errno
            if descriptor >= 0 { close(descriptor) }
            throw DifyError(code: .fileAccess, message: redact("cannot read the local file \(path): \(String(cString: strerror(code)))"),
                            endpoint: endpoint, requestSent: false, classification: .permanent)
        }
        defer { close(descriptor) }
        let (file, headers) = try await upload(descriptor: descriptor, length: Int64(info.st_size),
                                               filename: filename ?? path, user: user, boundary: boundary,
                                               chunkLength: chunkLength, onChunk: nil)
        var uploaded = file
        uploaded.serverDate = Self.serverDate(headers)
        return uploaded
    }
}

extension DifyClient {
    /// `POST /files/upload` from a file the caller already opened: the first `length` bytes of `descriptor`,
    /// read with `pread` from offset 0 and streamed with a known Content-Length. The descriptor is neither
    /// closed nor moved, so the caller keeps control of what is uploaded (no path is opened again, so a file
    /// swapped in at the same path is never sent).
    ///
    /// - `filename`: the name Dify stores (path separators stripped, as for ``upload(fileAt:filename:user:)``).
    /// - `onChunk`: sees every chunk of the file's bytes in order, as it is sent (to hash what was uploaded).
    /// - Throws ``DifyError`` with code `fileAccess` when the file ends before `length` bytes or cannot be read.
    public func upload(descriptor: Int32, length: Int64, filename: String, user: String,
                       onChunk: (@Sendable (UnsafeRawBufferPointer) -> Void)? = nil) async throws -> UploadedFile {
        try await upload(descriptor: descriptor, length: length, filename: filename, user: user,
                         boundary: MultipartUpload.randomBoundary(), onChunk: onChunk).file
    }

    /// A file of at most `chunkLength` bytes is read before sending and goes as one buffer; a larger one is written
    /// on the request's event loop (``DescriptorChunks``: `pread` of `chunkLength` bytes, each read after the
    /// previous write was accepted, so memory stays flat).
    func upload(descriptor: Int32, length: Int64, filename: String, user: String?, boundary: String,
                chunkLength: Int = 64 * 1024,
                onChunk: (@Sendable (UnsafeRawBufferPointer) -> Void)?) async throws -> (file: UploadedFile, headers: HTTPHeaders) {
        let endpoint = "POST /files/upload"
        let name = MultipartUpload.sanitizedFilename(filename)
        let multipart = MultipartUpload(boundary: boundary, user: user, filename: name,
                                        contentType: MIMEType.forFilename(name))
        let chunks = DescriptorChunks(descriptor: descriptor, length: length, chunkLength: chunkLength, endpoint: endpoint,
                                      onChunk: onChunk)
        let exchange = try await perform(endpoint: endpoint, isRun: false, headTimeout: nil, limit: 16 * 1024 * 1024) {
            let body: HTTPClient.Body = length <= Int64(chunkLength)
                ? .byteBuffer(try chunks.whole(head: multipart.head, tail: multipart.tail))
                : .stream(contentLength: multipart.contentLength(fileSize: length)) { writer in
                    chunks.write(head: multipart.head, tail: multipart.tail, to: writer)
                }
            return try httpRequest(.POST, path: "/files/upload", headers: ["Content-Type": multipart.contentType], body: body)
        }
        let json = try parseSuccess(exchange, endpoint: endpoint, isRun: false)
        return (try decode(json, endpoint: endpoint, isRun: false) { try UploadedFile(json: $0) }, exchange.headers)
    }
}
