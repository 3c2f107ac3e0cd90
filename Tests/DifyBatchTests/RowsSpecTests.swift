import DifyKit
import Foundation
import Testing
@testable import DifyBatch

/// Issue 13: the `rows` spec key and the table check a rows job applies to inbox files.
@Suite struct RowsSpecTests {
    func load(_ extra: String) throws -> JobSpec {
        let dir = try TemporaryDirectory()
        try dir.makeFolder("var/in")
        let path = try dir.write("jobs/job.yaml", """
            inbox: ../var/in
            outbox: ../var/out
            dify:
              base_url: http://127.0.0.1:8080/v1
            \(extra)
            """)
        return try JobSpecLoader.load(paths: [path])[0]
    }

    @Test func rowsKey_defaultsToFalse_acceptsTrue_andRefusesNonBooleans() throws {
        #expect(try load("").rows == false)
        #expect(try load("rows: true").rows == true)
        #expect(throws: SpecError.self) { try load("rows: sometimes") }
    }

    @Test func aRowsJob_takesCSVTSVAndJSONL_andRejectsOtherFilesAsNotATable() {
        var preflight = JobPreflight(mode: .workflow, fileVariable: nil, limits: SystemParameters(), maxSize: 100)
        preflight.rowForm = []
        #expect(preflight.rejection(filename: "a.csv", size: 10) == nil)
        #expect(preflight.rejection(filename: "a.NDJSON", size: 10) == nil)
        #expect(preflight.rejection(filename: "a.xlsx", size: 10)?.code == "not_a_table")
        #expect(preflight.rejection(filename: "a.csv", size: 0)?.code == "empty_file")
        #expect(preflight.rejection(filename: "a.csv", size: 101)?.code == "file_too_large")
    }
}
