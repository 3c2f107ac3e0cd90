import DifyBatch
import DifyKit
import Foundation
import Testing

/// Issue 13: the decision table for headers and rows against `GET /parameters`.
@Suite struct RowValidatorTests {
    static let form: [InputVariable] = [
        InputVariable(variable: "text", kind: .paragraph, required: true, maxLength: 10),
        InputVariable(variable: "tone", kind: .select, required: false, options: ["calm", "loud"]),
        InputVariable(variable: "count", kind: .number, required: false),
        InputVariable(variable: "flag", kind: .checkbox, required: false),
        InputVariable(variable: "doc", kind: .file, required: false),
    ]

    func row(_ values: [String: String], _ index: Int = 1) -> RowTable.Row {
        RowTable.Row(index: index, values: values.mapValues(JSONValue.string))
    }

    @Test func header_unknownColumnsWarn_missingRequiredRejects_defaultsCount() {
        let validator = RowValidator(form: Self.form)
        let ok = validator.checkHeader(["text", "extra", "tone"])
        #expect(ok.matched == ["text", "tone"] && ok.unknown == ["extra"] && ok.rejection == nil)
        let missing = validator.checkHeader(["tone"])
        #expect(missing.missingRequired == ["text"])
        #expect(missing.rejection?.contains("text") == true)
        #expect(RowValidator(form: Self.form, defaults: ["text": .string("x")]).checkHeader(["tone"]).rejection == nil)
    }

    @Test func header_chatApp_needsAQueryColumnOrDifyQuery() {
        let form = [InputVariable(variable: "text", kind: .paragraph, required: false)]
        #expect(RowValidator(form: form, isChat: true).checkHeader(["text"]).missingQuery)
        #expect(RowValidator(form: form, isChat: true).checkHeader(["text", "query"]).matched == ["text", "query"])
        #expect(RowValidator(form: form, isChat: true, specQuery: "Summarise").checkHeader(["text"]).rejection == nil)
    }

    @Test func row_decisionTable() {
        let validator = RowValidator(form: Self.form, fileExists: { $0 == "docs/a.pdf" })
        let cases: [([String: String], String?)] = [
            (["text": "hello"], nil),
            (["text": ""], "text is required but empty"),
            (["text": "far too long text"], "text is 17 characters, over its max_length of 10"),
            (["text": "hi", "tone": "angry"], "tone is \"angry\", which is not one of its options (calm, loud)"),
            (["text": "hi", "count": "3x"], "count must be a number, got \"3x\""),
            (["text": "hi", "flag": "maybe"], "flag must be true or false, got \"maybe\""),
            (["text": "hi", "doc": "/etc/passwd"], "doc: \"/etc/passwd\" is neither a path relative to the inbox nor an http(s) URL"),
            (["text": "hi", "doc": "../x.pdf"], "doc: \"../x.pdf\" is neither a path relative to the inbox nor an http(s) URL"),
            (["text": "hi", "doc": "docs/b.pdf"], "doc: the file \"docs/b.pdf\" is not in the inbox"),
            (["text": "hi", "doc": "docs/a.pdf"], nil),
            (["text": "hi", "doc": "https://example.com/a.pdf"], nil),
        ]
        for (values, expected) in cases {
            switch validator.validate(row(values)) {
            case .success: #expect(expected == nil, "\(values)")
            case .failure(let rejection):
                #expect(rejection.message == expected, "\(values)")
                #expect(rejection.code == "invalid_row")
            }
        }
    }

    @Test func row_severalProblems_areAllNamed_andAMalformedRowIsRejectedAsSuch() {
        let validator = RowValidator(form: Self.form)
        let both = validator.validate(row(["text": "", "tone": "x"]))
        #expect((try? both.get()) == nil)
        if case .failure(let rejection) = both { #expect(rejection.message.contains("text is required") && rejection.message.contains("tone is")) }
        let malformed = validator.validate(RowTable.Row(index: 2, values: [:], problem: "the row has 3 field(s)"))
        if case .failure(let rejection) = malformed { #expect(rejection.code == "malformed_row") } else { Issue.record("accepted") }
    }

    @Test func row_valuesAreTyped_emptyOptionalCellsLeftOut_unknownColumnsNotSent() throws {
        let validator = RowValidator(form: Self.form)
        let payload = try validator.validate(row(["text": "hi", "count": "42", "flag": "TRUE", "tone": "", "extra": "x"])).get()
        #expect(payload.inputs == ["text": .string("hi"), "count": .int(42), "flag": .bool(true)])
        #expect(try validator.validate(row(["text": "hi", "count": "2.5"])).get().inputs["count"] == .number(2.5))
    }

    @Test func sameInputs_haveTheSameSHA_whateverTheUnknownColumns() throws {
        let validator = RowValidator(form: Self.form)
        let a = try validator.validate(row(["text": "hi", "tone": "calm", "note": "1"], 1)).get()
        let b = try validator.validate(row(["tone": "calm", "text": "hi", "note": "2"], 7)).get()
        let c = try validator.validate(row(["text": "hi", "tone": "loud"])).get()
        #expect(a.sha256 == b.sha256)
        #expect(a.sha256 != c.sha256)
        #expect(a.canonicalJSON == "{\"inputs\":{\"text\":\"hi\",\"tone\":\"calm\"}}")
    }

    @Test func chatRow_takesItsQueryCell_orDifyQuery() throws {
        let form = [InputVariable(variable: "text", kind: .paragraph, required: false)]
        let validator = RowValidator(form: form, isChat: true, specQuery: "default question")
        #expect(try validator.validate(row(["query": "why?"])).get().query == "why?")
        #expect(try validator.validate(row(["query": ""])).get().query == "default question")
        let strict = RowValidator(form: form, isChat: true)
        #expect((try? strict.validate(row(["text": "x"])).get()) == nil)
    }
}
