import Foundation

extension OutboxWriter {
    /// `<outbox>/<path>.jsonl` of a `rows: true` table (issue 13).
    public func rowsJSONLPath(for relativePath: String) -> String { path(for: relativePath, suffix: ".jsonl") }

    /// `<outbox>/<path>.csv` of a `rows: true` table.
    public func rowsCSVPath(for relativePath: String) -> String { path(for: relativePath, suffix: ".csv") }

    /// Writes a table's two outbox files, each atomically (the CSV first, so a `.jsonl` present means both are
    /// complete), and removes a stale `.error.json` of the same path. Returns the `.jsonl` path.
    @discardableResult
    public func writeRows(relativePath: String, jsonl: Data, csv: Data) throws -> String {
        try SafeRelativePath.validate(relativePath)
        try AtomicFile.write(csv, to: rowsCSVPath(for: relativePath))
        let path = rowsJSONLPath(for: relativePath)
        try AtomicFile.write(jsonl, to: path)
        let stale = errorPath(for: relativePath)
        if FileManager.default.fileExists(atPath: stale) { try FileManager.default.removeItem(atPath: stale) }
        return path
    }
}
