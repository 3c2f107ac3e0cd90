import DifyKit
import Foundation

extension DocumentProcessor {
    /// Prepares one row's run (issue 13): its stored inputs over `dify.inputs`; each file cell becomes a Dify
    /// file object: an `http(s)` URL as `remote_url`, a path relative to the inbox uploaded first (opened once,
    /// no symlink followed, streamed from that descriptor). A file that is not there rejects the row; a failed
    /// upload is handled like a document's.
    func uploadRow(_ document: DocumentRecord) async throws -> UploadStep {
        guard let stored = document.rowInputs, let record = RowRecord.decode(stored), let payload = record.payload else {
            return .failure(try await reject(document, from: .uploading, code: "invalid_row",
                                             message: "the row's inputs recorded in the ledger cannot be read; fix the table and drop it in again"))
        }
        var inputs = payload.inputs
        // The first file uploaded for the row: recorded with `uploaded`, before the run is sent, so a run whose id
        // never arrived is told apart from other rows' runs in Dify's logs (rows differing only in their files).
        var firstUploadFileID: String?
        for variable in context.preflight.rowForm ?? [] where variable.isFile {
            guard let value = inputs[variable.variable] else { continue }
            let references = value.arrayValue?.compactMap(\.stringValue) ?? value.stringValue.map { [$0] } ?? []
            var objects: [JSONValue] = []
            for reference in references {
                let name = ((URL(string: reference)?.path ?? reference) as NSString).lastPathComponent
                let kind = FileKind.detect(filename: name, mimeType: MIMEType.forFilename(name))
                if RowPayload.isRemoteURL(reference) {
                    objects.append(FileReference.remoteURL(reference, kind: kind))
                    continue
                }
                switch try await uploadRowFile(document, variable: variable.variable, relativePath: reference, kind: kind) {
                case .success(let object):
                    if firstUploadFileID == nil { firstUploadFileID = object["upload_file_id"]?.stringValue }
                    objects.append(object)
                case .failure(let outcome): return .failure(outcome)
                }
            }
            inputs[variable.variable] = variable.kind == .fileList ? .array(objects) : objects.first ?? .null
        }
        let moved = try await ledger.transition(document.id, from: .uploading, to: .uploaded, [.uploadFileID(firstUploadFileID)])
        // The job goes concurrent once a row is ready to send (a row without file cells uploads nothing).
        context.onUploaded()
        return .success(moved, .row(inputs: inputs, query: payload.query))
    }

    private enum FileStep { case success(JSONValue), failure(DocumentOutcome) }

    private func uploadRowFile(_ document: DocumentRecord, variable: String, relativePath: String,
                               kind: FileKind) async throws -> FileStep {
        let pinned: PinnedFile
        do {
            pinned = try PinnedFile(path: SafeRelativePath.join(spec.inbox, relativePath))
        } catch {
            return .failure(try await reject(document, from: .uploading, code: "row_file_unusable",
                                              message: "\(variable): \(relativePath): \(error.message)"))
        }
        try await waitToSend()
        let attempt = try await beginAttempt(document.id, .upload)
        do {
            let uploaded = try await context.client.upload(descriptor: pinned.descriptor, length: pinned.identity.size,
                                                           filename: (relativePath as NSString).lastPathComponent, user: spec.dify.user)
            context.backpressure.recordAnswer()
            try await finishAttempt(attempt, .ok)
            context.onUploaded()
            return .success(FileReference.localFile(uploadFileID: uploaded.id, kind: kind))
        } catch let error as DifyError {
            try await finish(attempt, error)
            return .failure(try await handle(error, document: document, from: .uploading))
        }
    }
}
