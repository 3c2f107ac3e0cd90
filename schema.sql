-- dify-batch ledger schema. This file is the single source of truth: the store creates new databases from it
-- (an identical copy is compiled into the binary; a test fails if the two differ) and stamps
-- PRAGMA user_version with the version below. Changes to an existing database are made by numbered
-- migrations in SQLiteLedger.swift, never by editing the past.
--
-- schema-version: 14
--
-- Conventions: every *_at column is milliseconds since the Unix epoch (UTC) as INTEGER; sizes are bytes;
-- prices are kept twice: exactly as Dify sent them (TEXT) and as integer nano-units for exact SQL sums.

-- One row per job spec (jobs/*.yaml), keyed by the job name.
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    spec_path     TEXT    NOT NULL,
    spec_hash     TEXT    NOT NULL,             -- sha256 of the spec file's bytes
    app_mode      TEXT,                         -- workflow | completion | chat | ...; NULL until known
    base_url      TEXT    NOT NULL,
    dify_user     TEXT    NOT NULL,
    inbox         TEXT    NOT NULL,
    outbox        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- One row per input file version: a file whose content changes gets a new row.
CREATE TABLE documents (
    id                  INTEGER PRIMARY KEY,
    job_id              INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    path                TEXT    NOT NULL,       -- relative to the job's inbox, '/'-separated
    sha256              TEXT,                   -- lower-case hex; NULL only for files rejected before hashing
    size                INTEGER NOT NULL,
    mtime_ns            INTEGER NOT NULL,       -- nanoseconds since the epoch, as seen when the file settled
    state               TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN (
                            'pending', 'uploading', 'uploaded', 'running', 'recovering',
                            'succeeded', 'failed', 'dead', 'rejected', 'skipped', 'unresolved', 'paused')),
    attempts            INTEGER NOT NULL DEFAULT 0,   -- attempts used against max_attempts (backpressure excluded)
    next_attempt_at     INTEGER,                -- when a 'failed' document may be claimed again
    upload_file_id      TEXT,
    workflow_run_id     TEXT,
    message_id          TEXT,
    task_id             TEXT,
    run_sent_at         INTEGER,                -- when the last run request was sent (recovery window)
    duplicate_runs      INTEGER NOT NULL DEFAULT 0,   -- runs sent again after a lost outcome could not be recovered
    duplicate_of        INTEGER REFERENCES documents(id),
    output_path         TEXT,                   -- the outbox file written for this document
    last_error_class    TEXT,                   -- retryable | backpressure | ambiguous | permanent | configuration | quota | invalid_upload_file | rejected | local
    last_error_code     TEXT,                   -- dify-batch's or Dify's error code
    last_error_message  TEXT,
    last_http_status    INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    finished_at         INTEGER,
    run_posts           INTEGER NOT NULL DEFAULT 0,   -- issue 10: run POSTs that may have started a run (capped by max_attempts, never refunded)
    outcome_unknown     INTEGER NOT NULL DEFAULT 0,   -- issue 10: 1 when the last run's outcome could not be established (the next send is a duplicate_run)
    dify_clock_offset_ms INTEGER,                     -- issue 10: Dify's clock minus ours, from the upload's created_at (logs search window)
    paused_at           INTEGER,                      -- issue 10: when the run was first seen paused (awaiting human input)
    device              INTEGER,                -- issue 11: st_dev of the file version as pinned (NULL before schema 3)
    inode               INTEGER,                -- issue 11: st_ino of the file version as pinned (NULL before schema 3)
    text_sha256         TEXT,                   -- issue 12: sha256 of the text sent in dify.text_input (UTF-8), NULL for file inputs
    text_length         INTEGER,                -- issue 12: that text's length in characters
    result_stored       INTEGER NOT NULL DEFAULT 0,   -- issue 11: 1 = Dify's result is in `results`; only local work (outbox, disposal) is left, Dify is never asked again
    local_failures      INTEGER NOT NULL DEFAULT 0,   -- issue 11: local failures (outbox, ledger, disposal) since the result was stored; paces their retries, never counted in attempts
    row_of              INTEGER REFERENCES documents(id) ON DELETE CASCADE,  -- issue 13: for one row of a `rows: true` table, the table file's document; NULL for files
    row_index           INTEGER,                -- issue 13: the row's 1-based index among the table's data rows (addressed as path#row)
    row_inputs          TEXT                    -- issue 13: the row's inputs as a JSON object (sha256 holds the sha256 of their canonical JSON)
);
-- issue 13; schema 14 (issue 14): partial, so the state changes of files (row_of NULL) do not rewrite it
CREATE INDEX documents_by_row ON documents(row_of, state) WHERE row_of IS NOT NULL;
CREATE INDEX documents_by_job_path ON documents(job_id, path, id, size, mtime_ns, state, device, inode);  -- covers the scanner's rescan query
CREATE INDEX documents_by_job_state ON documents(job_id, state, next_attempt_at);
CREATE INDEX documents_by_state ON documents(state, updated_at);
CREATE INDEX documents_by_job_sha ON documents(job_id, sha256);
CREATE INDEX documents_by_copy ON documents(duplicate_of) WHERE duplicate_of IS NOT NULL;  -- issue 14: the copies waiting for an original (a few rows), read after every success
-- Issue 14: the claim walks the due documents in claim order and stops after LIMIT rows (as on PostgreSQL).
CREATE INDEX documents_claimable ON documents(job_id, coalesce(next_attempt_at, 0), id) WHERE state IN ('pending', 'failed');

-- The stored result of a succeeded document (Dify's outputs), used for duplicates and rewriting outputs.
CREATE TABLE results (
    document_id   INTEGER PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
    status        TEXT    NOT NULL,             -- succeeded | partial-succeeded
    outputs_json  TEXT    NOT NULL,
    recorded_at   INTEGER NOT NULL
);

-- One row per `run` or `watch` process.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    command     TEXT    NOT NULL,               -- run | watch | demo
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    pid         INTEGER NOT NULL,
    host        TEXT    NOT NULL,
    exit_code   INTEGER
);

-- What one process did for one job: the per-job counts of a run.
CREATE TABLE run_jobs (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    succeeded   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    dead        INTEGER NOT NULL DEFAULT 0,
    rejected    INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    not_matched INTEGER NOT NULL DEFAULT 0,     -- issue 12: inbox files present but not matched by match.include/exclude at the last scan
    unsettled   INTEGER NOT NULL DEFAULT 0,     -- issue 16: files seen and still changing (not settled) at the last look
    unsettled_oldest TEXT,                      -- issue 16: the one changing the longest (inbox-relative path)
    unsettled_since  INTEGER,                   -- issue 16: since when it has been seen changing (Unix ms)
    PRIMARY KEY (run_id, job_id)
);
CREATE INDEX run_jobs_by_job ON run_jobs(job_id, run_id);

-- One row per HTTP call or phase made for a document.
CREATE TABLE attempts (
    id            INTEGER PRIMARY KEY,
    document_id   INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    run_id        INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    phase         TEXT    NOT NULL CHECK (phase IN ('upload', 'run', 'recover')),
    started_at    INTEGER NOT NULL,
    ended_at      INTEGER,
    http_status   INTEGER,
    dify_code     TEXT,
    message       TEXT,
    outcome       TEXT    NOT NULL DEFAULT 'in_progress',  -- in_progress | ok | failed | retryable | backpressure | ambiguous | permanent | configuration | quota | invalid_upload_file | cancelled
    failed_node   TEXT                                     -- issue 16: a run that ended `failed`: the node that failed (title or id), when Dify named it
);
CREATE INDEX attempts_by_document ON attempts(document_id, id);

-- Tokens and money per Dify run (a document that ran more than once has more than one row).
CREATE TABLE usage (
    id                 INTEGER PRIMARY KEY,
    document_id        INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    job_id             INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    run_id             INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    dify_run_id        TEXT,                    -- workflow_run_id or message_id: a Dify run is counted once
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    total_tokens       INTEGER,
    total_price        TEXT,                    -- exact decimal text as Dify sent it (normalised), NULL if none
    total_price_nanos  INTEGER,                 -- total_price × 10^9, for exact sums
    currency           TEXT,
    latency_ms         INTEGER,
    recorded_at        INTEGER NOT NULL,
    usage_source       TEXT                     -- issue 12: message | stream | blocking | run_detail (blocking and run_detail: tokens only, split and price unknown)
);
CREATE UNIQUE INDEX usage_by_document ON usage(document_id, dify_run_id);
CREATE INDEX usage_by_job_time ON usage(job_id, recorded_at);
CREATE INDEX usage_by_time ON usage(recorded_at);

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
-- Schema 14 (issue 14): `+job_id` keeps the planner on usage_by_document for the NOT EXISTS lookups (with
-- job_id = ? it chose usage_by_job_time and walked every usage row of the job on each insert: O(n) per run).
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
            SELECT 1 FROM usage WHERE document_id = NEW.document_id AND +job_id = NEW.job_id AND id <> NEW.id)
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
            SELECT 1 FROM usage WHERE document_id = OLD.document_id AND +job_id = OLD.job_id);
END;

-- Schema 11 (session 5, `integrity`): who this ledger is. One row, written the first time a job starts. Its
-- ledger_id is recorded in the `.dify-batch-owner` file of each inbox (and outbox) the ledger serves, so a second
-- ledger (another --db, a deleted and recreated ledger) is refused on that inbox before it runs and pays for the
-- files again; a moved or copied ledger file keeps its id. Every host sharing one PostgreSQL ledger has the same id.
CREATE TABLE ledger_identity (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    ledger_id   TEXT    NOT NULL,               -- 32 random hex digits
    created_at  INTEGER NOT NULL
);
