import DifyKit
import Testing

@testable import DifyBatch

@Suite struct AnswerJSONTests {
    @Test func answerJSON_ignoresAFenceInsideThinkBlock_andTakesTheAnswersFence() {
        let answer = "<think>Draft:\n```json\n{\"vendor\":\"DRAFT\",\"total\":0}\n```\nhmm</think>\nHere it is:\n```json\n{\"vendor\":\"Acme\",\"total\":42}\n```"
        #expect(AnswerJSON.extract(from: answer) == ["vendor": "Acme", "total": 42])
    }

    @Test func answerJSON_ignoresReasoningBlocks_caseInsensitive_andAnOnlyClosingTag() {
        #expect(AnswerJSON.extract(from: "<REASONING>{\"a\":1}</Reasoning>{\"b\":2}") == ["b": 2])
        #expect(AnswerJSON.extract(from: "thinking {\"a\":1} </think> {\"b\":2}") == ["b": 2])
        // An unclosed block hides everything after it.
        #expect(AnswerJSON.extract(from: "<think>```json\n{\"a\":1}\n```") == nil)
    }

    @Test func answerJSON_prefersJSONFence_thenLastParsingFence_thenWholeAnswer() {
        #expect(AnswerJSON.extract(from: "```\n{\"plain\":1}\n```\n```json\n{\"tagged\":1}\n```") == ["tagged": 1])
        #expect(AnswerJSON.extract(from: "```\n{\"first\":1}\n```\n```\n{\"last\":1}\n```\n```\nnot json\n```") == ["last": 1])
        #expect(AnswerJSON.extract(from: "```json\n{broken\n```\n```\n[1]\n```") == [1])
        #expect(AnswerJSON.extract(from: "  {\"whole\": true} ") == ["whole": true])
    }
}
