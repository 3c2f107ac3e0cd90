import GRDB

/// Running totals for `status` (issue 14, schema 10): document counts per job and state, usage sums per job and
/// currency, and documents with usage per job, kept by triggers in the transaction of each change.
enum RunningTotals {
    /// The tables and triggers as `schema.sql` creates them for schema 10. Never edit: a later change is a new
    /// migration.
    static let schema10 = #"""
-- Issue 14: running totals, so `status` and the metrics gauge read a few rows instead of aggregating every
-- document and usage row (1,000,000 documents: 1.8 s → milliseconds). Kept by the triggers below in the same
-- transaction as each change; a count may reach 0 and stay (readers skip zeros).
CREATE TABLE job_state_counts (
    job_id  INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    state   TEXT    NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (job_id, state)
) WITHOUT ROWID;
CREATE TRIGGER documents_count_insert AFTER INSERT ON documents BEGIN
    INSERT INTO job_state_counts (job_id, state, n) VALUES (NEW.job_id, NEW.state, 1)
        ON CONFLICT (job_id, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER documents_count_update AFTER UPDATE OF state, job_id ON documents
    WHEN OLD.state IS NOT NEW.state OR OLD.job_id IS NOT NEW.job_id BEGIN
    UPDATE job_state_counts SET n = n - 1 WHERE job_id = OLD.job_id AND state = OLD.state;
    INSERT INTO job_state_counts (job_id, state, n) VALUES (NEW.job_id, NEW.state, 1)
        ON CONFLICT (job_id, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER documents_count_delete AFTER DELETE ON documents BEGIN
    UPDATE job_state_counts SET n = n - 1 WHERE job_id = OLD.job_id AND state = OLD.state;
END;

-- Issue 14: usage sums per job and currency (`currency_key`: 'c:' || currency, or 'null' when Dify gave none).
-- The *_count columns count non-NULL values, so a sum over no values reads as NULL, as SQL's sum() does.
CREATE TABLE job_usage_totals (
    job_id             INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    currency_key       TEXT    NOT NULL,
    currency           TEXT,
    runs               INTEGER NOT NULL DEFAULT 0,
    prompt_tokens      INTEGER NOT NULL DEFAULT 0,
    prompt_count       INTEGER NOT NULL DEFAULT 0,
    completion_tokens  INTEGER NOT NULL DEFAULT 0,
    completion_count   INTEGER NOT NULL DEFAULT 0,
    total_tokens       INTEGER NOT NULL DEFAULT 0,
    total_count        INTEGER NOT NULL DEFAULT 0,
    total_price_nanos  INTEGER NOT NULL DEFAULT 0,
    priced             INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, currency_key)
) WITHOUT ROWID;
-- Issue 14: documents with at least one usage row, per job.
CREATE TABLE job_usage_documents (
    job_id     INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    documents  INTEGER NOT NULL
);
CREATE TRIGGER usage_totals_insert AFTER INSERT ON usage BEGIN
    INSERT INTO job_usage_totals (job_id, currency_key, currency, runs, prompt_tokens, prompt_count, completion_tokens,
                                  completion_count, total_tokens, total_count, total_price_nanos, priced)
        VALUES (NEW.job_id, coalesce('c:' || NEW.currency, 'null'), NEW.currency, 1, coalesce(NEW.prompt_tokens, 0),
                NEW.prompt_tokens IS NOT NULL, coalesce(NEW.completion_tokens, 0), NEW.completion_tokens IS NOT NULL,
                coalesce(NEW.total_tokens, 0), NEW.total_tokens IS NOT NULL, coalesce(NEW.total_price_nanos, 0),
                NEW.total_price_nanos IS NOT NULL)
        ON CONFLICT (job_id, currency_key) DO UPDATE SET runs = runs + 1,
            prompt_tokens = prompt_tokens + excluded.prompt_tokens, prompt_count = prompt_count + excluded.prompt_count,
            completion_tokens = completion_tokens + excluded.completion_tokens,
            completion_count = completion_count + excluded.completion_count,
            total_tokens = total_tokens + excluded.total_tokens, total_count = total_count + excluded.total_count,
            total_price_nanos = total_price_nanos + excluded.total_price_nanos, priced = priced + excluded.priced;
    INSERT INTO job_usage_documents (job_id, documents)
        SELECT NEW.job_id, 1 WHERE NOT EXISTS (
            SELECT 1 FROM usage WHERE document_id = NEW.document_id AND job_id = NEW.job_id AND id <> NEW.id)
        ON CONFLICT (job_id) DO UPDATE SET documents = documents + 1;
END;
CREATE TRIGGER usage_totals_delete AFTER DELETE ON usage BEGIN
    UPDATE job_usage_totals SET runs = runs - 1,
        prompt_tokens = prompt_tokens - coalesce(OLD.prompt_tokens, 0), prompt_count = prompt_count - (OLD.prompt_tokens IS NOT NULL),
        completion_tokens = completion_tokens - coalesce(OLD.completion_tokens, 0),
        completion_count = completion_count - (OLD.completion_tokens IS NOT NULL),
        total_tokens = total_tokens - coalesce(OLD.total_tokens, 0), total_count = total_count - (OLD.total_tokens IS NOT NULL),
        total_price_nanos = total_price_nanos - coalesce(OLD.total_price_nanos, 0),
        priced = priced - (OLD.total_price_nanos IS NOT NULL)
        WHERE job_id = OLD.job_id AND currency_key = coalesce('c:' || OLD.currency, 'null');
    UPDATE job_usage_documents SET documents = documents - 1
        WHERE job_id = OLD.job_id AND NOT EXISTS (
            SELECT 1 FROM usage WHERE document_id = OLD.document_id AND job_id = OLD.job_id);
END;
"""#

    /// The usage triggers as `schema.sql` creates them from schema 14 on: schema 10's with the two lookups changed.
    /// Never edit: a later change is a new migration.
    /// Their `NOT EXISTS` lookups name `+job_id`, so SQLite finds a document's usage rows through
    /// `usage_by_document`; schema 10's `job_id = ?` made it choose `usage_by_job_time` and walk every usage row of
    /// the job on each insert (0.15 ms per run at 2000 documents, growing with the job).
    static let usageTriggers14: String = {
        let triggers = schema10[schema10.range(of: "CREATE TRIGGER usage_totals_insert")!.lowerBound...]
        return triggers
            .replacingOccurrences(of: "AND job_id = NEW.job_id AND id <> NEW.id", with: "AND +job_id = NEW.job_id AND id <> NEW.id")
            .replacingOccurrences(of: "AND job_id = OLD.job_id);", with: "AND +job_id = OLD.job_id);")
    }()

    /// Migration 14: the usage triggers replaced by ``usageTriggers14`` (same totals, found through the right index).
    @Sendable static func migrateUsageTriggers(_ db: Database) throws {
        try db.execute(sql: "DROP TRIGGER usage_totals_insert; DROP TRIGGER usage_totals_delete")
        try db.execute(sql: usageTriggers14)
    }

    /// Migration 10: creates the tables and triggers, then fills the totals from the rows already there.
    @Sendable static func migrate(_ db: Database) throws {
        try db.execute(sql: schema10)
        try db.execute(sql: """
            INSERT INTO job_state_counts (job_id, state, n)
                SELECT job_id, state, count(*) FROM documents GROUP BY job_id, state;
            INSERT INTO job_usage_totals (job_id, currency_key, currency, runs, prompt_tokens, prompt_count,
                                          completion_tokens, completion_count, total_tokens, total_count, total_price_nanos, priced)
                SELECT job_id, coalesce('c:' || currency, 'null'), currency, count(*), coalesce(sum(prompt_tokens), 0),
                       count(prompt_tokens), coalesce(sum(completion_tokens), 0), count(completion_tokens),
                       coalesce(sum(total_tokens), 0), count(total_tokens), coalesce(sum(total_price_nanos), 0),
                       count(total_price_nanos)
                FROM usage GROUP BY job_id, coalesce('c:' || currency, 'null');
            INSERT INTO job_usage_documents (job_id, documents)
                SELECT job_id, count(DISTINCT document_id) FROM usage GROUP BY job_id;
            """)
    }

    /// Usage per job from the totals, in the shape of ``SQLiteLedger/usageTotals(matching:by:)`` for `.job`
    /// (optionally one job by name).
    static func usageByJob(_ db: Database, jobName: String?) throws -> [UsageTotal] {
        let rows = try Row.fetchAll(db.cachedStatement(sql: """
            SELECT j.name AS grp, u.currency, u.runs, u.prompt_tokens, u.prompt_count, u.completion_tokens,
                   u.completion_count, u.total_tokens, u.total_count, u.total_price_nanos, u.priced,
                   coalesce(d.documents, 0) AS documents
            FROM job_usage_totals u JOIN jobs j ON j.id = u.job_id
            LEFT JOIN job_usage_documents d ON d.job_id = u.job_id
            WHERE u.runs > 0 AND (?1 IS NULL OR j.name = ?1)
            ORDER BY j.name
            """), arguments: [jobName])
        var totals: [UsageTotal] = []
        var group: [Row] = []
        func flush() {
            guard let first = group.first else { return }
            let currencies = Set(group.compactMap { $0["currency"] as String? }).sorted()
            let priced = group.reduce(0) { $0 + ($1["priced"] as Int) }
            let promptCount = group.reduce(0) { $0 + ($1["prompt_count"] as Int) }
            let completionCount = group.reduce(0) { $0 + ($1["completion_count"] as Int) }
            let totalCount = group.reduce(0) { $0 + ($1["total_count"] as Int) }
            totals.append(UsageTotal(
                group: first["grp"], documents: first["documents"], runs: group.reduce(0) { $0 + ($1["runs"] as Int) },
                promptTokens: promptCount > 0 ? group.reduce(0) { $0 + ($1["prompt_tokens"] as Int) } : nil,
                completionTokens: completionCount > 0 ? group.reduce(0) { $0 + ($1["completion_tokens"] as Int) } : nil,
                totalTokens: totalCount > 0 ? group.reduce(0) { $0 + ($1["total_tokens"] as Int) } : nil,
                totalPrice: priced > 0 && currencies.count <= 1
                    ? PriceNanos.decimal(group.reduce(Int64(0)) { $0 + ($1["total_price_nanos"] as Int64) }) : nil,
                currency: UsageTotal.currency(currencies.isEmpty ? nil : currencies.joined(separator: ","), count: currencies.count),
                splitRuns: promptCount, pricedRuns: priced))
            group = []
        }
        for row in rows {
            if let first = group.first, (first["grp"] as String) != (row["grp"] as String) { flush() }
            group.append(row)
        }
        flush()
        return totals
    }
}
