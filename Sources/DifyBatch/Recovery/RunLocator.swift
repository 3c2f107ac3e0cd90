import DifyKit
import Foundation

/// Looks a sent workflow run up in Dify: by id (`GET /workflows/run/{id}`), or, when the id never arrived, in
/// `GET /workflows/logs` (issue 10 rule 2).
///
/// The logs search does not depend on two clocks agreeing: it runs in Dify's time (our send time plus the offset
/// learned from the upload's `created_at`), ±15 minutes around the send, filtered by the job's `user`, through
/// every page of the window, and matches a run by this document's `upload_file_id` in its inputs (the run detail
/// of each candidate). Entries already seen not to match are remembered across lookups. Any error is
/// ``LookupEvidence/couldNotCheck``, never "not there".
public final class RunLocator: @unchecked Sendable {
    let client: DifyClient
    let user: String
    let fileVariable: String
    /// Half-width of the logs search window around the send (Dify's time).
    public static let window: Duration = .seconds(900)
    /// Runs seen in the logs that are not this document's (their inputs never change). Touched by one task.
    private var notOurs: Set<String> = []

    public init(client: DifyClient, user: String, fileVariable: String) {
        self.client = client
        self.user = user
        self.fileVariable = fileVariable
    }

    /// What a lookup by id found: the detail, or the evidence it could not be had.
    public enum ByID: Sendable { case detail(WorkflowRunDetail), failed(DifyError) }

    /// Run detail by id.
    public func detail(id: String) async throws -> ByID {
        do {
            return .detail(try await client.workflowRunDetail(id: id))
        } catch let error as DifyError where error.code != .cancelled {
            return .failed(error)
        }
    }

    /// What a logs search found.
    public enum Search: Sendable, Equatable { case found(String), notListed, couldNotCheck(String) }

    /// Searches the logs for the run of `uploadFileID` sent at `sentAt` (our clock) with Dify's clock `offset`
    /// ahead of ours (nil: unknown, taken as zero; the window is wide enough for ordinary drift).
    public func search(uploadFileID: String, sentAt: Date, offsetMilliseconds: Int64?) async throws -> Search {
        try await search(sentAt: sentAt, offsetMilliseconds: offsetMilliseconds) { [fileVariable] inputs in
            Self.references(inputs[fileVariable], uploadFileID: uploadFileID)
        }
    }

    /// Searches the logs as above for the run whose inputs `matches` accepts (issue 13: a row of a table,
    /// matched by its inputs and its files' upload id or URL: see `InFlightRecovery.searchLogs`).
    public func search(sentAt: Date, offsetMilliseconds: Int64?,
                       matches: ([String: JSONValue]) -> Bool) async throws -> Search {
        let difySentAt = sentAt.addingTimeInterval(Double(offsetMilliseconds ?? 0) / 1000)
        let after = difySentAt.addingTimeInterval(-Self.window.seconds)
        let before = difySentAt.addingTimeInterval(Self.window.seconds)
        var page = 1
        // A run listed whose detail cannot be read (404 while Dify catches up, 502) may be ours: the search goes on
        // through the other entries (one of them may be ours: found), and without a match it "could not check".
        var unreadable: String?
        while page <= 10_000 {
            let logs: WorkflowLogsPage
            do {
                logs = try await client.workflowLogs(WorkflowLogsQuery(createdAfter: after, createdBefore: before,
                                                                       endUserSessionID: user, page: page, limit: 100))
            } catch let error as DifyError where error.code != .cancelled {
                return .couldNotCheck("cannot search the workflow logs: \(error.message)")
            }
            for entry in logs.data {
                guard let run = entry.workflowRun, !notOurs.contains(run.id) else { continue }
                if let session = entry.endUserSessionID, session != user { continue }
                switch try await detail(id: run.id) {
                case .detail(let detail):
                    if matches(detail.inputs) { return .found(run.id) }
                    notOurs.insert(run.id)
                case .failed(let error):
                    unreadable = unreadable ?? "cannot read run \(run.id) listed in the logs: \(error.message)"
                }
            }
            guard logs.hasMore, !logs.data.isEmpty else { return unreadable.map(Search.couldNotCheck) ?? .notListed }
            page += 1
        }
        return .couldNotCheck("the logs window holds more than 10000 pages")
    }

    /// Whether a run input value references the uploaded file.
    static func references(_ value: JSONValue?, uploadFileID: String) -> Bool {
        guard let value else { return false }
        if let items = value.arrayValue { return items.contains { references($0, uploadFileID: uploadFileID) } }
        return value["related_id"]?.stringValue == uploadFileID || value["upload_file_id"]?.stringValue == uploadFileID
            || value["id"]?.stringValue == uploadFileID
    }
}
