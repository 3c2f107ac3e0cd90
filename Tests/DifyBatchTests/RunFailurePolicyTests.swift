import DifyKit
import Testing
@testable import DifyBatch

/// Issue 16's table for runs that ended `failed` (FailurePolicy.decideEndedRun), one test per row.
@Suite struct RunFailurePolicyTests {
    static let corrupt = RunFailure(node: "Doc Extractor", error: "Failed to extract text from DOCX: file is not a zip file")

    @Test func firstFailureOfTheContent_isRetried() {
        #expect(FailurePolicy.decideEndedRun(Self.corrupt, previous: nil) == .retry)
    }

    @Test func sameNodeAndSameErrorText_asThePreviousFailure_isDead() {
        #expect(FailurePolicy.decideEndedRun(Self.corrupt, previous: Self.corrupt) == .dead)
        // Whitespace around the text does not make it another failure; two unnamed nodes are the same node.
        let padded = RunFailure(node: "Doc Extractor", error: "  Failed to extract text from DOCX: file is not a zip file\n")
        #expect(FailurePolicy.decideEndedRun(padded, previous: Self.corrupt) == .dead)
        let unnamed = RunFailure(node: nil, error: "Variable #sys.files# not found")
        #expect(FailurePolicy.decideEndedRun(unnamed, previous: unnamed) == .dead)
    }

    @Test func anotherNodeOrAnotherErrorText_isRetried() {
        #expect(FailurePolicy.decideEndedRun(RunFailure(node: "LLM", error: Self.corrupt.error), previous: Self.corrupt) == .retry)
        #expect(FailurePolicy.decideEndedRun(RunFailure(node: "Doc Extractor", error: "file is encrypted"), previous: Self.corrupt) == .retry)
        #expect(FailurePolicy.decideEndedRun(RunFailure(node: nil, error: Self.corrupt.error), previous: Self.corrupt) == .retry)
    }

    @Test func aTransientCauseInTheText_isRetriedEvenWhenRepeated() {
        let transient = [
            "[openai] Error: 429 rate limit exceeded for gpt-4o",
            "Rate limit reached for requests", "Too Many Requests", "Request timed out.", "ReadTimeout: read timeout=60",
            "[anthropic] Error code: 529 - overloaded_error", "Error code: 503 - The service is temporarily unavailable",
            "HTTP 502: Bad Gateway", "InternalServerError: 500 Internal Server Error", "Connection reset by peer",
            "The model is overloaded, please try again later",
        ]
        for text in transient {
            let failure = RunFailure(node: "LLM", error: text)
            #expect(FailurePolicy.namesTransientCause(text), "\(text)")
            #expect(FailurePolicy.decideEndedRun(failure, previous: failure) == .retry, "\(text)")
        }
    }

    @Test func numbersThatAreNotHTTPStatuses_doNotCountAsTransient() {
        for text in ["maximum context length is 4290 tokens", "page 5030 is missing", "Failed to extract text from DOCX",
                     "invalid value 1429 for max_tokens"] {
            #expect(!FailurePolicy.namesTransientCause(text), "\(text)")
        }
    }
}
