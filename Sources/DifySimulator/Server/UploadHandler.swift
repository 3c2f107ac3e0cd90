import Foundation
import Hummingbird

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `POST /v1/files/upload`: streams the `file` part to disk while hashing, then applies Dify's checks in
/// Dify's order (dify-api.md §1).
struct UploadHandler {
    let simulator: DifySimulator
    let app: SimulatedApp

    func handle(_ request: Request) async throws -> Response {
        let faults = simulator.configuration.faults
        if faults.slowHeaders > .zero { try await Task.sleep(for: faults.slowHeaders) }
        guard let contentType = request.headers[.contentType], var scanner = MultipartScanner(contentType: contentType) else {
            // Flask sees no files at all.
            return Responses.error(400, "no_file_uploaded", "Please upload your file.")
        }
        var collector = UploadCollector(directory: simulator.storageDirectory, limits: simulator.configuration.limits)
        defer { collector.closeFile() }
        do {
            for try await buffer in request.body {
                try buffer.withUnsafeReadableBytes { raw in
                    try scanner.feed(raw) { try collector.handle($0) }
                }
            }
        } catch is MultipartScanner.MalformedBody {
            collector.discard()
            return Responses.error(400, "bad_request", "The browser (or proxy) sent a request that this server could not understand.")
        } catch {
            collector.discard()  // e.g. the client went away mid-upload: leave no partial file behind
            throw error
        }
        collector.closeFile()
        guard scanner.isComplete else {
            collector.discard()
            return Responses.error(400, "bad_request", "The browser (or proxy) sent a request that this server could not understand.")
        }
        if simulator.state.roll(faults.badGatewayRate) {
            collector.discard()
            return Responses.badGateway
        }
        if simulator.state.roll(faults.serverErrorRate) {
            collector.discard()
            return Responses.internalServerError
        }
        if let failure = collector.validationFailure() {
            collector.discard()
            return failure
        }
        guard let file = collector.file, let filename = file.headers.filename else {
            return Responses.error(400, "no_file_uploaded", "Please upload your file.")
        }
        let userField = collector.userValue.flatMap { String(bytes: $0, encoding: .utf8) } ?? ""
        let user = userField.isEmpty ? "DEFAULT-USER" : userField
        let endUserID = simulator.state.endUserID(apiKey: app.apiKey, user: user)
        let id = StableID.random()
        let finalPath = (simulator.storageDirectory as NSString).appendingPathComponent(id)
        try FileManager.default.moveItem(atPath: file.path, toPath: finalPath)
        let now = simulator.nowSeconds
        let upload = StoredUpload(
            id: id, apiKey: app.apiKey, user: user, endUserID: endUserID, name: Self.truncatedName(filename, ext: file.ext),
            size: file.written, extension_: file.ext, mimeType: file.headers.contentType ?? "application/octet-stream",
            path: finalPath, summary: file.digest.finalize().extracted(path: finalPath, fileExtension: file.ext), createdAt: now)
        simulator.state.addUpload(upload)
        simulator.recorder.upload()
        let sourceURL =
            "\(simulator.state.serverURL)/files/\(id)/file-preview?timestamp=\(now)&nonce=\(StableID.nonce())&sign=\(StableID.nonce())%3D"
        return Responses.json(
            201,
            .object([
                ("id", .string(id)), ("name", .string(upload.name)), ("size", .int(upload.size)),
                ("extension", .string(upload.extension_)), ("mime_type", .string(upload.mimeType)),
                ("created_by", .string(endUserID)), ("created_at", .int(now)), ("preview_url", .null),
                ("source_url", .string(sourceURL)), ("original_url", .null), ("user_id", .null),
                ("tenant_id", .string(StableID.uuid("tenant"))), ("conversation_id", .null), ("file_key", .null),
            ]))
    }

    /// Dify keeps names up to 200 characters, cutting longer ones before the extension.
    static func truncatedName(_ name: String, ext: String) -> String {
        guard name.count > 200 else { return name }
        let keep = max(0, 200 - ext.count - 1)
        return String(name.prefix(keep)) + (ext.isEmpty ? "" : "." + ext)
    }
}

/// Collects the interesting parts of a multipart body: the first `file` file part (to disk) and the `user` field.
struct UploadCollector {
    struct FileCapture {
        var headers: MultipartPartHeaders
        var ext: String
        var limit: Int
        var path: String
        var fd: Int32
        var written = 0
        var digest = DocumentDigest()
    }

    enum Current { case file, user, ignore }

    let directory: String
    let limits: UploadLimits
    var file: FileCapture?
    var fileFieldNames: Set<String> = []
    var userValue: [UInt8]?
    var current = Current.ignore

    init(directory: String, limits: UploadLimits) {
        self.directory = directory
        self.limits = limits
    }

    static func extensionOf(_ filename: String) -> String {
        guard let dot = filename.lastIndex(of: ".") else { return "" }
        return String(filename[filename.index(after: dot)...]).lowercased()
    }

    mutating func handle(_ event: MultipartScanner.Event) throws {
        switch event {
        case let .partStart(headers):
            if headers.filename != nil { fileFieldNames.insert(headers.name ?? "") }
            if headers.name == "file", headers.filename != nil, file == nil {
                let ext = Self.extensionOf(headers.filename ?? "")
                let path = (directory as NSString).appendingPathComponent("partial-\(StableID.random())")
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                guard fd >= 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
                file = FileCapture(headers: headers, ext: ext, limit: limits.byteLimit(forExtension: ext), path: path, fd: fd)
                current = .file
            } else if headers.name == "user", headers.filename == nil, userValue == nil {
                userValue = []
                current = .user
            } else {
                current = .ignore
            }
        case let .data(bytes):
            switch current {
            case .file:
                guard var f = file else { return }
                f.digest.update(bytes)
                // Past the limit the upload is rejected anyway: keep counting, stop writing.
                if f.written + bytes.count <= f.limit, f.fd >= 0 {
                    var offset = 0
                    while offset < bytes.count {
                        let n = write(f.fd, bytes.baseAddress! + offset, bytes.count - offset)
                        if n < 0 {
                            if errno == EINTR { continue }
                            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: f.path])
                        }
                        offset += n
                    }
                }
                f.written += bytes.count
                file = f
            case .user:
                if (userValue?.count ?? 0) < 4096 { userValue?.append(contentsOf: bytes.prefix(4096)) }
            case .ignore:
                break
            }
        case .partEnd:
            if current == .file { closeFile() }
            current = .ignore
        }
    }

    mutating func closeFile() {
        if let fd = file?.fd, fd >= 0 {
            close(fd)
            file?.fd = -1
        }
    }

    mutating func discard() {
        closeFile()
        if let path = file?.path { try? FileManager.default.removeItem(atPath: path) }
    }

    /// Dify's checks, in Dify's order.
    func validationFailure() -> Response? {
        guard let file else { return Responses.error(400, "no_file_uploaded", "Please upload your file.") }
        if fileFieldNames.count > 1 { return Responses.error(400, "too_many_files", "Only one file is allowed.") }
        if file.headers.contentType == nil { return Responses.error(415, "unsupported_file_type", "File type not allowed.") }
        let name = file.headers.filename ?? ""
        if name.isEmpty { return Responses.error(400, "filename_not_exists_error", "The specified filename does not exist.") }
        if name.contains("/") || name.contains("\\") { return Responses.invalidParam("Filename contains invalid characters") }
        if limits.extensionBlacklist.contains(file.ext) {
            return Responses.invalidParam("File extension '.\(file.ext)' is not allowed for security reasons")
        }
        if file.written > file.limit { return Responses.error(413, "file_too_large", "File size exceeded. {message}") }
        return nil
    }
}
