import Foundation
import Testing
@testable import DifyBatch

/// Checks text exposition format 0.0.4 as Prometheus parses it; returns the problems found.
func expositionProblems(_ text: String) -> [String] {
    var problems: [String] = []
    guard text.hasSuffix("\n") else { return ["does not end with a newline"] }
    let name = "[a-zA-Z_:][a-zA-Z0-9_:]*"
    let labelValue = "\"(?:[^\"\\\\\\n]|\\\\[\\\\\"n])*\""
    let label = "[a-zA-Z_][a-zA-Z0-9_]*=\(labelValue)"
    let number = "(?:[+-]?(?:[0-9]+(?:\\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\\.[0-9]+)|[+-]Inf|NaN)"
    let sampleRegex = try! NSRegularExpression(pattern: "^(\(name))(?:\\{(\(label)(?:,\(label))*)?\\})? \(number)$")
    let helpRegex = try! NSRegularExpression(pattern: "^# HELP \(name) .*$")
    let typeRegex = try! NSRegularExpression(pattern: "^# TYPE (\(name)) (counter|gauge|histogram|summary|untyped)$")
    var types: [String: String] = [:]
    var histograms: [String: (buckets: [(le: Double, value: Double)], sum: Bool, count: Double?)] = [:]
    for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) {
        let range = NSRange(line.startIndex..., in: line)
        if line.hasPrefix("# HELP ") {
            if helpRegex.firstMatch(in: line, range: range) == nil { problems.append("bad HELP: \(line)") }
        } else if line.hasPrefix("# TYPE ") {
            guard let match = typeRegex.firstMatch(in: line, range: range) else { problems.append("bad TYPE: \(line)"); continue }
            let family = String(line[Range(match.range(at: 1), in: line)!])
            if types[family] != nil { problems.append("TYPE twice: \(family)") }
            types[family] = String(line[Range(match.range(at: 2), in: line)!])
        } else if let match = sampleRegex.firstMatch(in: line, range: range) {
            let sampleName = String(line[Range(match.range(at: 1), in: line)!])
            let value = Double(line.split(separator: " ").last!.replacingOccurrences(of: "+Inf", with: "inf")) ?? .nan
            let labels = match.range(at: 2).location == NSNotFound ? "" : String(line[Range(match.range(at: 2), in: line)!])
            var family = sampleName
            for suffix in ["_bucket", "_sum", "_count"] where sampleName.hasSuffix(suffix) {
                let base = String(sampleName.dropLast(suffix.count))
                if types[base] == "histogram" { family = base }
            }
            guard let type = types[family] else { problems.append("sample without TYPE: \(line)"); continue }
            if type == "counter" && !(value >= 0) { problems.append("negative counter: \(line)") }
            if type == "histogram" {
                let series = family + "{" + labels.replacingOccurrences(of: #",?le="[^"]*""#, with: "", options: .regularExpression) + "}"
                var entry = histograms[series] ?? ([], false, nil)
                if sampleName.hasSuffix("_bucket") {
                    guard let le = labels.range(of: #"le="([^"]*)""#, options: .regularExpression) else { problems.append("bucket without le: \(line)"); continue }
                    let bound = String(labels[le].dropFirst(4).dropLast())
                    entry.buckets.append((bound == "+Inf" ? .infinity : Double(bound) ?? .nan, value))
                } else if sampleName.hasSuffix("_sum") {
                    entry.sum = true
                } else {
                    entry.count = value
                }
                histograms[series] = entry
            }
        } else {
            problems.append("not a comment or sample: \(line)")
        }
    }
    for (series, histogram) in histograms {
        if histogram.buckets.last?.le != .infinity { problems.append("\(series): no +Inf bucket") }
        for (previous, next) in zip(histogram.buckets, histogram.buckets.dropFirst()) {
            if !(next.le > previous.le) { problems.append("\(series): bounds not increasing") }
            if next.value < previous.value { problems.append("\(series): buckets not cumulative") }
        }
        if !histogram.sum { problems.append("\(series): no _sum") }
        if histogram.count == nil || histogram.count != histogram.buckets.last?.value { problems.append("\(series): _count differs from +Inf bucket") }
    }
    return problems
}

@Suite("Metrics")
struct MetricsTests {
    func populated() -> MetricsRegistry {
        let registry = MetricsRegistry()
        registry.record(.jobStarted(job: "invoices", mode: "workflow"))
        registry.record(.jobStarted(job: "we\"ird\\job\n", mode: "completion"))
        registry.record(.attemptFinished(job: "invoices", phase: .upload, outcome: "ok", seconds: 0.03))
        registry.record(.attemptFinished(job: "invoices", phase: .run, outcome: "ok", seconds: 1.7))
        registry.record(.attemptFinished(job: "invoices", phase: .run, outcome: "retryable", seconds: 42))
        registry.record(.attemptFinished(job: "invoices", phase: .run, outcome: "ok", seconds: 4000))
        registry.record(.documentSettled(job: "invoices", document: document(1, .failed)))
        registry.record(.documentSettled(job: "invoices", document: document(1, .succeeded)))
        registry.record(.documentSettled(job: "invoices", document: document(2, .rejected)))
        registry.record(.usageRecorded(job: "invoices", usage: UsageAmounts(promptTokens: 100, completionTokens: 20, totalTokens: 120,
                                                                              totalPrice: Decimal(string: "0.0012"), currency: "USD")))
        registry.record(.usageRecorded(job: "invoices", usage: UsageAmounts(promptTokens: 1, completionTokens: 2, totalTokens: 3,
                                                                              totalPrice: Decimal(string: "0.0008"), currency: "USD")))
        registry.record(.queue(job: "invoices", inFlight: 2, waiting: 7))
        registry.record(.jobFinished(job: "we\"ird\\job\n", stop: nil))
        return registry
    }

    @Test func theExpositionTextIsValid() {
        let text = populated().render()
        #expect(expositionProblems(text) == [], "\(text)")
        #expect(expositionProblems(MetricsRegistry().render()) == [])
        let withLedger = populated().render(ledgerCounts: ["invoices": [.succeeded: 40, .dead: 2], "other": [:]])
        #expect(expositionProblems(withLedger) == [], "\(withLedger)")
        #expect(withLedger.contains(#"dify_batch_ledger_documents{job="invoices",state="succeeded"} 40"#))
        #expect(withLedger.contains(#"dify_batch_ledger_documents{job="other",state="pending"} 0"#))
    }

    @Test func theValidatorCatchesBrokenText() {
        #expect(!expositionProblems("foo 1\n").isEmpty)
        #expect(!expositionProblems("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n").isEmpty)
        #expect(!expositionProblems("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n").isEmpty)
        #expect(!expositionProblems("# TYPE g gauge\ng{a=\"x\"\"} 1\n").isEmpty)
    }

    @Test func samplesCarryTheJobAndTheValues() {
        let lines = Set(populated().render().split(separator: "\n").map(String.init))
        for expected in [
            #"dify_batch_documents{job="invoices",state="succeeded"} 1"#,
            #"dify_batch_documents{job="invoices",state="failed"} 0"#,
            #"dify_batch_documents{job="invoices",state="rejected"} 1"#,
            #"dify_batch_documents_settled_total{job="invoices",state="failed"} 1"#,
            #"dify_batch_attempts_total{job="invoices",phase="run",outcome="ok"} 2"#,
            #"dify_batch_attempts_total{job="invoices",phase="run",outcome="retryable"} 1"#,
            #"dify_batch_errors_total{job="invoices",phase="run",class="retryable"} 1"#,
            #"dify_batch_dify_request_duration_seconds_bucket{job="invoices",phase="run",le="1"} 0"#,
            #"dify_batch_dify_request_duration_seconds_bucket{job="invoices",phase="run",le="2.5"} 1"#,
            #"dify_batch_dify_request_duration_seconds_bucket{job="invoices",phase="run",le="60"} 2"#,
            #"dify_batch_dify_request_duration_seconds_bucket{job="invoices",phase="run",le="600"} 2"#,
            #"dify_batch_dify_request_duration_seconds_bucket{job="invoices",phase="run",le="+Inf"} 3"#,
            #"dify_batch_dify_request_duration_seconds_sum{job="invoices",phase="run"} 4043.7"#,
            #"dify_batch_dify_request_duration_seconds_count{job="invoices",phase="run"} 3"#,
            #"dify_batch_dify_request_duration_seconds_bucket{job="invoices",phase="upload",le="0.05"} 1"#,
            #"dify_batch_tokens_total{job="invoices",kind="total"} 123"#,
            #"dify_batch_tokens_total{job="invoices",kind="prompt"} 101"#,
            #"dify_batch_price_total{job="invoices",currency="USD"} 0.002"#,
            #"dify_batch_queue_waiting{job="invoices"} 7"#,
            #"dify_batch_inflight{job="invoices"} 2"#,
            #"dify_batch_job_running{job="invoices"} 1"#,
            #"dify_batch_job_running{job="we\"ird\\job\n"} 0"#,
        ] {
            #expect(lines.contains(expected), "missing \(expected)")
        }
        #expect(lines.contains("# TYPE dify_batch_dify_request_duration_seconds histogram"))
        #expect(lines.contains("# TYPE dify_batch_attempts_total counter"))
    }

    @Test func valuesAreFormattedAsPrometheusExpects() {
        #expect(PrometheusText.value(3) == "3")
        #expect(PrometheusText.value(0.25) == "0.25")
        #expect(PrometheusText.value(.infinity) == "+Inf")
        #expect(PrometheusText.value(.nan) == "NaN")
        #expect(PrometheusText.labels([("a", "x\"y"), ("b", "\\\n")]) == #"{a="x\"y",b="\\\n"}"#)
    }
}
