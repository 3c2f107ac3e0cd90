import DifyKit
import Foundation

extension InFlightRecovery {
    /// How a sent run whose id never arrived is searched for in Dify's logs: a file by its `upload_file_id` in the
    /// run's inputs; a row of a `rows: true` table (issue 13) by its own inputs (every value it sent but file
    /// objects, whose ids are not kept), which no other row of the job shares (same inputs run once). Nil when
    /// neither applies.
    func searchLogs(_ document: DocumentRecord, locator: RunLocator,
                    sentAt: Date) -> (@Sendable () async throws -> RunLocator.Search)? {
        let offset = document.difyClockOffsetMilliseconds
        if let uploadFileID = document.uploadFileID {
            return { try await locator.search(uploadFileID: uploadFileID, sentAt: sentAt, offsetMilliseconds: offset) }
        }
        guard document.rowOf != nil, let stored = document.rowInputs, let payload = RowRecord.decode(stored)?.payload else { return nil }
        let fileVariables = Set((processor.context.preflight.rowForm ?? []).filter(\.isFile).map(\.variable))
        let expected = payload.inputs.filter { !fileVariables.contains($0.key) }
        guard !expected.isEmpty else { return nil }
        return { try await locator.search(sentAt: sentAt, offsetMilliseconds: offset) { inputs in
            expected.allSatisfy { key, value in inputs[key] == value }
        } }
    }
}
