import Foundation
import Testing

@testable import DifyKit

/// The usage split as real Dify 1.14.1 gives it (captures in `Fixtures/dify-captures/llm/`).
@Suite struct UsageSplitTests {
    static func fold(_ capture: String, mode: AppMode) throws -> (RunResult, [String]) {
        var parser = SSEParser()
        let bytes = [UInt8](try Captures.data(capture))
        let events = (parser.feed(bytes) + parser.finish()).compactMap(DifyStreamEvent.decode)
        var accumulator = RunAccumulator(mode: mode)
        for event in events { _ = accumulator.apply(event) }
        return (accumulator.result(), events.map(\.name))
    }

    @Test func streamedWorkflow_sumsLLMNodeUsage_withTotalTokensFromWorkflowFinished() throws {
        let (result, _) = try Self.fold("llm/22_llmflow_streaming.sse", mode: .workflow)
        #expect(result.usage.promptTokens == 28)
        #expect(result.usage.completionTokens == 50)
        #expect(result.usage.totalTokens == 78)
        #expect(result.usage.totalPrice == Decimal(string: "0.0001280"))
        #expect(result.usage.currency == "USD")
        #expect(result.usage.source == .stream)
    }

    @Test func streamedCompletion_hasNoPing_emptyMessageBeforeEnd_andUsageFromMessageEnd() throws {
        let (result, names) = try Self.fold("llm/11_completion_streaming.sse", mode: .completion)
        #expect(names.first == "message")
        #expect(names.last == "message_end")
        #expect(!names.contains("ping"))
        #expect(result.answer?.hasPrefix("{\"model\": \"fake-llm-1\"") == true)
        #expect(result.usage == Usage(promptTokens: 23, completionTokens: 50, totalTokens: 73, totalPrice: Decimal(string: "0.0001230"),
                                      currency: "USD", latency: result.usage.latency, source: .message))
    }

    @Test func blockingWorkflow_givesTokensOnly_markedBlocking() throws {
        let json = try Captures.http("llm/21_llmflow_blocking").json
        let result = try BlockingResponse.result(mode: .workflow, json: json)
        #expect(result.usage == Usage(totalTokens: 78, source: .blocking))
    }

    @Test func blockingCompletion_givesTheWholeSplit() throws {
        let json = try Captures.http("llm/10_completion_blocking").json
        let result = try BlockingResponse.result(mode: .completion, json: json)
        #expect(result.usage.promptTokens == 23)
        #expect(result.usage.completionTokens == 50)
        #expect(result.usage.totalPrice == Decimal(string: "0.000123"))
        #expect(result.usage.source == .message)
    }

    static func node(_ id: String, type: String = "llm", iteration: String? = nil, usage: String?, placement: String = "outputs") -> String {
        let iterationJSON = iteration.map { "\"\($0)\"" } ?? "null"
        let usageJSON = usage.map { ",\"\(placement)\":{\"usage\":\($0)}" } ?? ""
        return #"{"event":"node_finished","workflow_run_id":"r1","task_id":"t1","data":{"id":"\#(id)","node_id":"n-\#(id)","node_type":"\#(type)","iteration_id":\#(iterationJSON),"loop_id":null\#(usageJSON),"execution_metadata":{"total_price":"9","currency":"USD"}}}"#
    }

    static func usage(_ prompt: Int, _ completion: Int, _ price: String, currency: String = "USD") -> String {
        #"{"prompt_tokens":\#(prompt),"completion_tokens":\#(completion),"total_tokens":\#(prompt + completion),"total_price":"\#(price)","currency":"\#(currency)"}"#
    }

    static func run(_ lines: [String]) throws -> Usage {
        var accumulator = RunAccumulator(mode: .workflow)
        for line in lines + [#"{"event":"workflow_finished","workflow_run_id":"r1","data":{"id":"r1","status":"succeeded","outputs":{},"total_tokens":100}}"#] {
            _ = accumulator.apply(try #require(DifyStreamEvent.decode(SSEEvent(data: line))))
        }
        return accumulator.result().usage
    }

    @Test func workflowSplit_countsNodesInsideIterationsOnce_andSkipsContainers_exactDecimals() throws {
        let usage = try Self.run([
            Self.node("a", usage: Self.usage(10, 5, "0.1")),
            Self.node("b", iteration: "it", usage: Self.usage(1, 2, "0.2"), placement: "process_data"),
            Self.node("b", iteration: "it", usage: Self.usage(1, 2, "0.2")),  // the same execution twice
            Self.node("c", type: "question-classifier", usage: Self.usage(3, 1, "0.0000001")),
            Self.node("it", type: "iteration", usage: Self.usage(99, 99, "99")),
            Self.node("d", type: "code", usage: nil),
        ])
        #expect(usage.promptTokens == 14)
        #expect(usage.completionTokens == 8)
        #expect(usage.totalTokens == 100)
        #expect(usage.totalPrice == Decimal(string: "0.3000001"))
        #expect(usage.currency == "USD")
    }

    @Test func workflowSplit_mixedCurrencies_haveNoTotalPrice() throws {
        let usage = try Self.run([
            Self.node("a", usage: Self.usage(1, 1, "0.1", currency: "USD")),
            Self.node("b", usage: Self.usage(1, 1, "0.1", currency: "EUR")),
        ])
        #expect(usage.promptTokens == 2)
        #expect(usage.totalPrice == nil)
        #expect(usage.currency == "mixed(EUR,USD)")
    }
}
