import AsyncHTTPClient
import Foundation
import NIOCore
import _NIOFileSystem

extension DifyClient {
    /// `POST /files/upload`: multipart/form-data streamed from disk with a known Content-Length.
    ///
    /// - `filename`: the name Dify stores (its extension drives type detection and the size limit); defaults to the
    ///   file's own name. Path separators are stripped (Dify rejects `/` and `\`).
    /// - `user`: must equal the `user` of the run that uses the file (files are scoped to key and user).
    ///
    /// Uploads wait for the response head up to `timeouts.total` (the head follows the whole body).
    /// The result's `createdAt` (Dify's epoch seconds) and `serverDate` (the `Date` header) are Dify's clock.
    public func upload(fileAt path: String, filename: String? = nil, user: String) async throws -> UploadedFile {
        try await upload(fileAt: path, filename: filename, user: user, boundary: MultipartUpload.randomBoundary())
    }

    func upload(fileAt path: String, filename: String?, user: String?, boundary: String,
                chunkLength: Int = 64 * 1024) async throws -> UploadedFile {
        let endpoint = "POST /files/upload"
        let name = MultipartUpload.sanitizedFilename(filename ?? path)
        let multipart = MultipartUpload(boundary: boundary, user: user, filename: name,
                                        contentType: MIMEType.forFilename(name))
        var headRequest = baseRequest(method: .POST, path: "/files/upload")
        headRequest.headers.add(name: "Content-Type", value: multipart.contentType)
        let prepared = headRequest
        let context = RequestContext()
        let exchange: Exchange = try await guarded(endpoint: endpoint, isRun: false, context: context, idle: nil) {
            try await FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { handle in
                let size = try await handle.info().size
                let body = MultipartBodySequence(
                    head: multipart.head, base: handle.readChunks(chunkLength: .bytes(Int64(chunkLength))),
                    tail: multipart.tail)
                var request = prepared
                request.body = .stream(body, length: .known(multipart.contentLength(fileSize: size)))
                let response = try await self.httpClient.execute(
                    request, deadline: .now() + Self.timeAmount(self.configuration.timeouts.total))
                context.markHeadReceived(response.headers, status: Int(response.status.code))
                let buffer = try await Self.collect(response.body, limit: 16 * 1024 * 1024)
                return Exchange(status: Int(response.status.code), headers: response.headers, body: buffer)
            }
        }
        let json = try parseSuccess(exchange, endpoint: endpoint, isRun: false)
        var file = try decode(json, endpoint: endpoint, isRun: false) { try UploadedFile(json: $0) }
        file.serverDate = Self.serverDate(exchange.headers)
        return file
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
                         boundary: MultipartUpload.randomBoundary(), onChunk: onChunk)
    }

    func upload(descriptor: Int32, length: Int64, filename: String, user: String?, boundary: String,
                chunkLength: Int = 64 * 1024, onChunk: (@Sendable (UnsafeRawBufferPointer) -> Void)?) async throws -> UploadedFile {
        let endpoint = "POST /files/upload"
        let name = MultipartUpload.sanitizedFilename(filename)
        let multipart = MultipartUpload(boundary: boundary, user: user, filename: name,
                                        contentType: MIMEType.forFilename(name))
        var request = baseRequest(method: .POST, path: "/files/upload")
        request.headers.add(name: "Content-Type", value: multipart.contentType)
        let body = MultipartBodySequence(
            head: multipart.head,
            base: DescriptorChunks(descriptor: descriptor, length: length, chunkLength: chunkLength, endpoint: endpoint,
                                   onChunk: onChunk),
            tail: multipart.tail)
        request.body = .stream(body, length: .known(multipart.contentLength(fileSize: length)))
        let prepared = request
        let context = RequestContext()
        let exchange: Exchange = try await guarded(endpoint: endpoint, isRun: false, context: context, idle: nil) {
            let response = try await self.httpClient.execute(
                prepared, deadline: .now() + Self.timeAmount(self.configuration.timeouts.total))
            // The status is kept for the request's trace line (issue 16), as on the path upload.
            context.markHeadReceived(response.headers, status: Int(response.status.code))
            let buffer = try await Self.collect(response.body, limit: 16 * 1024 * 1024)
            return Exchange(status: Int(response.status.code), headers: response.headers, body: buffer)
        }
        let json = try parseSuccess(exchange, endpoint: endpoint, isRun: false)
        return try decode(json, endpoint: endpoint, isRun: false) { try UploadedFile(json: $0) }
    }
}
