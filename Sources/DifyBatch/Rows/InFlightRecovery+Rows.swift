import DifyKit
import Foundation

extension InFlightRecovery {
    /// How a sent run whose id never arrived is searched for in Dify's logs: a file by its `upload_file_id` in the
    /// run's inputs; a row of a `rows: true` table (issue 13) by its own inputs, which no other row of the job shares
    /// (same inputs run once): every value it sent but file objects, and its file cells by what identifies them in
    /// the run's inputs — a local file by the `upload_file_id` recorded when the row's first file was uploaded, a
    /// URL by its `remote_url`. Rows that differ only in their files are never taken for one another: a row with a
    /// local file but no recorded upload id is not searched for (nil: it ends `unresolved`, never with another
    /// row's result). Nil when nothing identifies the run.
    func searchLogs(_ document: DocumentRecord, locator: RunLocator,
                    sentAt: Date) -> (@Sendable () async throws -> RunLocator.Search)? {
        let offset = document.difyClockOffsetMilliseconds
        guard document.rowOf != nil else {
            guard let uploadFileID = document.uploadFileID else { return nil }
            return { try await locator.search(uploadFileID: uploadFileID, sentAt: sentAt, offsetMilliseconds: offset) }
        }
        guard let stored = document.rowInputs, let payload = RowRecord.decode(stored)?.payload else { return nil }
        let fileVariables = Set((processor.context.preflight.rowForm ?? []).filter(\.isFile).map(\.variable))
        let expected = payload.inputs.filter { !fileVariables.contains($0.key) }
        var urls: [String: [String]] = [:]
        var hasLocalFile = false
        for (variable, value) in payload.inputs where fileVariables.contains(variable) {
            for reference in value.arrayValue?.compactMap(\.stringValue) ?? value.stringValue.map({ [$0] }) ?? [] {
                if RowPayload.isRemoteURL(reference) { urls[variable, default: []].append(reference) } else { hasLocalFile = true }
            }
        }
        let uploadFileID = document.uploadFileID, remoteURLs = urls
        if hasLocalFile && uploadFileID == nil { return nil }
        guard !expected.isEmpty || uploadFileID != nil || !remoteURLs.isEmpty else { return nil }
        return { try await locator.search(sentAt: sentAt, offsetMilliseconds: offset) { inputs in
            guard expected.allSatisfy({ key, value in inputs[key] == value }) else { return false }
            if let uploadFileID, !inputs.values.contains(where: { RunLocator.references($0, uploadFileID: uploadFileID) }) { return false }
            return remoteURLs.allSatisfy { variable, urls in
                let sent = inputs[variable].map { $0.arrayValue ?? [$0] } ?? []
                return urls.allSatisfy { url in sent.contains { $0["remote_url"]?.stringValue == url || $0["url"]?.stringValue == url } }
            }
        } }
    }
}
