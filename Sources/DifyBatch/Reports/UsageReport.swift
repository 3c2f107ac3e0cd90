import Foundation

/// `dify-batch usage`: tokens and price summed exactly, per group, with a grand total.
public struct UsageReport: Encodable, Sendable {
    public struct Group: Encodable, Sendable, Equatable {
        public var group: String
        public var documents: Int
        public var runs: Int
        /// `prompt_tokens`/`completion_tokens` are sums over the runs whose split is known, null when none is.
        public var usage: UsageJSON
        /// Runs with tokens only (blocking workflow answers, runs recovered by id): no split, no price.
        public var runsWithoutSplit: Int = 0
        /// Runs without a price.
        public var runsWithoutPrice: Int = 0

        enum CodingKeys: String, CodingKey {
            case group, documents, runs, promptTokens = "prompt_tokens", completionTokens = "completion_tokens"
            case totalTokens = "total_tokens", totalPrice = "total_price", currency
            case runsWithoutSplit = "runs_without_split", runsWithoutPrice = "runs_without_price"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(group, forKey: .group)
            try container.encode(documents, forKey: .documents)
            try container.encode(runs, forKey: .runs)
            try container.encode(usage.promptTokens, forKey: .promptTokens)
            try container.encode(usage.completionTokens, forKey: .completionTokens)
            try container.encode(usage.totalTokens, forKey: .totalTokens)
            try container.encode(usage.totalPrice, forKey: .totalPrice)
            try container.encode(usage.currency, forKey: .currency)
            try container.encode(runsWithoutSplit, forKey: .runsWithoutSplit)
            try container.encode(runsWithoutPrice, forKey: .runsWithoutPrice)
        }
    }

    public var by: UsageGrouping
    public var since: String?
    public var until: String?
    public var groups: [Group]
    /// The grand total over every group (nil when nothing was recorded).
    public var total: Group?

    enum CodingKeys: String, CodingKey { case by, since, until, groups, total }

    public init(by: UsageGrouping, since: String?, until: String?, groups: [Group], total: Group?) {
        self.by = by
        self.since = since
        self.until = until
        self.groups = groups
        self.total = total
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(by.rawValue, forKey: .by)
        try container.encode(since, forKey: .since)
        try container.encode(until, forKey: .until)
        try container.encode(groups, forKey: .groups)
        try container.encode(total, forKey: .total)
    }

    public static func build(from ledger: any LedgerReader, filter: UsageFilter, by grouping: UsageGrouping) async throws -> UsageReport {
        let groups = try await ledger.usageTotals(matching: filter, by: grouping)
        let totals = try await ledger.usageTotals(matching: filter, by: .none)
        return UsageReport(by: grouping, since: ReportFormatting.timestamp(filter.since), until: ReportFormatting.timestamp(filter.until),
                           groups: groups.map(group), total: totals.first.map(group))
    }

    static func group(_ total: UsageTotal) -> Group {
        Group(group: total.group, documents: total.documents, runs: total.runs,
              usage: UsageJSON(promptTokens: total.promptTokens, completionTokens: total.completionTokens,
                               totalTokens: total.totalTokens, totalPrice: ReportFormatting.price(total.totalPrice),
                               currency: total.currency),
              runsWithoutSplit: total.runs - total.splitRuns, runsWithoutPrice: total.runs - total.pricedRuns)
    }

    /// Sums usage rows of one group (all currencies folded when there is only one).
    static func combine(_ totals: [UsageTotal]) -> UsageJSON {
        let currencies = Set(totals.compactMap(\.currency))
        let prices = totals.compactMap(\.totalPrice)
        let prompts = totals.compactMap(\.promptTokens), completions = totals.compactMap(\.completionTokens)
        return UsageJSON(promptTokens: prompts.isEmpty ? nil : prompts.reduce(0, +),
                         completionTokens: completions.isEmpty ? nil : completions.reduce(0, +),
                         totalTokens: totals.contains { $0.totalTokens != nil } ? totals.reduce(0) { $0 + ($1.totalTokens ?? 0) } : nil,
                         totalPrice: prices.isEmpty ? nil : (currencies.count <= 1 ? ReportFormatting.price(prices.reduce(0, +)) : nil),
                         currency: currencies.count == 1 ? currencies.first : (currencies.isEmpty ? nil : "mixed"))
    }

    /// CSV with a header row; the grand total rows are marked `TOTAL`.
    public func renderCSV() -> String {
        var lines = ["group,documents,runs,prompt_tokens,completion_tokens,total_tokens,total_price,currency,runs_without_split,runs_without_price"]
        func row(_ group: Group, name: String) -> String {
            let prompt: String = group.usage.promptTokens.map { String($0) } ?? ""
            let completion: String = group.usage.completionTokens.map { String($0) } ?? ""
            let fields: [String] = [name, String(group.documents), String(group.runs), prompt, completion,
                                    group.usage.totalTokens.map { String($0) } ?? "", group.usage.totalPrice ?? "", group.usage.currency ?? "",
                                    String(group.runsWithoutSplit), String(group.runsWithoutPrice)]
            return fields.map(Self.csvField).joined(separator: ",")
        }
        lines += groups.map { row($0, name: $0.group) }
        if let total { lines.append(row(total, name: "TOTAL")) }
        return lines.joined(separator: "\n") + "\n"
    }

    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    public func renderText() -> String {
        guard !groups.isEmpty else { return "No usage recorded\(since.map { " since \($0)" } ?? "").\n" }
        let header = by == .none ? "" : by.rawValue.uppercased()
        func cells(_ g: Group, name: String) -> [String] {
            let prompt: String = g.usage.promptTokens.map { String($0) } ?? "-"
            let completion: String = g.usage.completionTokens.map { String($0) } ?? "-"
            return [name, String(g.documents), String(g.runs), prompt, completion, g.usage.totalTokens.map { String($0) } ?? "-",
                    g.usage.totalPrice ?? "-", g.usage.currency ?? "", String(g.runsWithoutSplit)]
        }
        var rows: [[String]] = groups.map { cells($0, name: $0.group) }
        if let total { rows.append(cells(total, name: "TOTAL")) }
        var text = ReportFormatting.table(headers: [header.isEmpty ? "GROUP" : header, "DOCS", "RUNS", "PROMPT", "COMPLETION", "TOTAL TOKENS", "PRICE", "CURRENCY", "NO SPLIT"], rows: rows)
        if let total, total.runsWithoutSplit > 0 {
            text += "\(total.runsWithoutSplit) run(s) have total tokens only (blocking workflow answers or runs recovered by id): their prompt/completion split and price are unknown, not zero. Use response_mode: streaming for costs.\n"
        }
        return text
    }
}
