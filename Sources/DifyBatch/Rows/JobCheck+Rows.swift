import DifyKit
import Foundation

extension JobCheck {
    /// How a `rows: true` job would read one table (issue 13): read and validated exactly as the pipeline does,
    /// nothing sent.
    static func tableReport(path: String, relativePath: String, spec: JobSpec, preflight: JobPreflight) -> JobCheckReport.Table {
        var report = JobCheckReport.Table(path: relativePath, rows: 0, matched: [], unknown: [], rejection: nil, rejectedRows: [])
        let table: RowTable
        do {
            guard let data = FileManager.default.contents(atPath: path) else {
                report.rejection = "cannot read the file; check its permissions"
                return report
            }
            table = try RowTable.parse(data, format: RowTable.format(forPath: relativePath) ?? .csv)
        } catch {
            report.rejection = "\(error.code): \(error.message)"
            return report
        }
        let inbox = spec.inbox
        let validator = RowValidator(form: preflight.rowForm ?? [], defaults: spec.dify.inputs.mapValues(\.json),
                                     isChat: preflight.isChat, specQuery: spec.dify.query,
                                     fileExists: { FileManager.default.fileExists(atPath: SafeRelativePath.join(inbox, $0)) })
        let header = validator.checkHeader(table.columns)
        report.rows = table.rows.count
        report.matched = header.matched
        report.unknown = header.unknown
        report.rejection = header.rejection
        guard header.rejection == nil else { return report }
        for row in table.rows {
            if case .failure(let rejection) = validator.validate(row) {
                report.rejectedRows.append(.init(row: row.index, message: rejection.message))
            }
        }
        return report
    }
}
