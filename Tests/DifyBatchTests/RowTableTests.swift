import DifyBatch
import DifyKit
import Foundation
import Testing

/// Issue 13: reading CSV/TSV/JSONL tables (RFC 4180 edge cases, UTF-8 only).
@Suite struct RowTableTests {
    func csv(_ text: String) throws -> RowTable { try RowTable.parse(Data(text.utf8), format: .csv) }

    @Test func csv_quotedMultilineFieldsQuotesCommasBOMAndCRLF_areReadPerRFC4180() throws {
        let text = "\u{FEFF}text,tone\r\n\"line one\r\nline two\",calm\r\n\"say \"\"hi\"\", then, go\",\"\"\r\nplain,loud\r\n"
        let table = try csv(text)
        #expect(table.columns == ["text", "tone"], "the BOM is not part of the first column's name")
        #expect(table.rows.map(\.index) == [1, 2, 3])
        #expect(table.rows[0].values == ["text": .string("line one\r\nline two"), "tone": .string("calm")])
        #expect(table.rows[1].values == ["text": .string("say \"hi\", then, go"), "tone": .string("")])
        #expect(table.rows[2].values["text"] == .string("plain"))
        #expect(table.rows.allSatisfy { $0.problem == nil })
    }

    @Test func csv_blankLinesAreNotRows_andTheLastLineNeedsNoNewline() throws {
        let table = try csv("a,b\n\n1,2\n\n3,4")
        #expect(table.rows.map { $0.values["a"] } == [.string("1"), .string("3")])
        #expect(table.rows.map(\.index) == [1, 2])
    }

    @Test func csv_aRowWithTheWrongNumberOfFields_carriesItsProblem_andTheOthersAreRead() throws {
        let table = try csv("a,b\n1,2\n1,2,3\n4\n")
        #expect(table.rows[0].problem == nil)
        #expect(table.rows[1].problem?.contains("3 field(s) but the header has 2") == true)
        #expect(table.rows[2].problem?.contains("1 field(s)") == true)
    }

    @Test func csv_notUTF8_isRejectedWithTheOffendingByteAndTheFix() throws {
        let latin1 = Data([0x74, 0x65, 0x78, 0x74, 0x0A, 0x63, 0x61, 0x66, 0xE9, 0x0A])
        let error = #expect(throws: RowTableError.self) { try RowTable.parse(latin1, format: .csv) }
        #expect(error?.code == "encoding_not_utf8")
        #expect(error?.message.contains("offset 8") == true && error?.message.contains("CSV UTF-8") == true)
        let utf16 = Data([0xFF, 0xFE, 0x61, 0x00])
        #expect(throws: RowTableError("encoding_not_utf8", "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8 (in Excel: \"CSV UTF-8\")")) {
            try RowTable.parse(utf16, format: .csv)
        }
    }

    @Test func csv_anUnclosedQuote_rejectsTheFile_insteadOfSwallowingTheRest() throws {
        let error = #expect(throws: RowTableError.self) { try csv("a,b\n\"open,1\n2,3\n") }
        #expect(error?.code == "unterminated_quote")
    }

    @Test func csv_headerProblems_rejectTheFile() throws {
        #expect((#expect(throws: RowTableError.self) { try csv("a,a\n1,2\n") })?.code == "bad_header")
        #expect((#expect(throws: RowTableError.self) { try csv("a,,b\n1,2,3\n") })?.code == "bad_header")
        #expect((#expect(throws: RowTableError.self) { try csv("\n\n") })?.code == "no_header")
    }

    @Test func tsv_splitsOnTabs_andKeepsCommas() throws {
        let table = try RowTable.parse(Data("text\ttone\nhello, world\tcalm\n".utf8), format: .tsv)
        #expect(table.rows.first?.values == ["text": .string("hello, world"), "tone": .string("calm")])
    }

    @Test func jsonl_oneObjectPerLine_keepsJSONTypes_skipsBlankLines_andMarksBadLines() throws {
        let text = "{\"text\": \"a\", \"n\": 3}\r\n\n[1,2]\n{\"text\": \"b\", \"extra\": {\"k\": true}}\n"
        let table = try RowTable.parse(Data(text.utf8), format: .jsonl)
        #expect(table.columns == ["n", "text", "extra"])
        #expect(table.rows.count == 3)
        #expect(table.rows[0].values == ["text": .string("a"), "n": .int(3)])
        #expect(table.rows[1].problem?.contains("line 3 is not a JSON object") == true)
        #expect(table.rows[2].values["extra"] == .object(["k": .bool(true)]))
    }

    @Test func format_isChosenByExtension_andXLSXIsNotATable() {
        #expect(RowTable.format(forPath: "a/b.CSV") == .csv)
        #expect(RowTable.format(forPath: "b.tsv") == .tsv)
        #expect(RowTable.format(forPath: "b.ndjson") == .jsonl)
        #expect(RowTable.format(forPath: "b.jsonl") == .jsonl)
        #expect(RowTable.format(forPath: "b.xlsx") == nil)
    }
}
