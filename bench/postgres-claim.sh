#!/usr/bin/env bash
# Claim latency on a PostgreSQL ledger of 1,000,000 documents (BENCHMARKS.md §6).
#   bench/postgres-claim.sh SERVER_URL [ROWS] [PENDING]
# Creates a database from schema.postgres.sql, fills it (ROWS documents, PENDING of them pending, the rest
# succeeded), then times dify-batch's claim statement (the SQL of PostgresLedger.claim, limit 16, lease 30 s)
# with pgbench: 1 client, then 4 clients claiming at once (SKIP LOCKED).
set -euo pipefail
server=$1; rows=${2:-1000000}; pending=${3:-50000}
cd "$(dirname "$0")/.."
psql_url=${server/postgres:/postgresql:}; psql_url=${psql_url/\?sslmode=disable/}
db="pgclaim_$$"
psql -q "$psql_url" -c "CREATE DATABASE $db"
url="${psql_url%/postgres}/$db"
trap 'psql -q "$psql_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; rm -f "$script"' EXIT
psql -q "$url" -f schema.postgres.sql
psql -q "$url" <<SQL
INSERT INTO jobs (name, spec_path, spec_hash, base_url, dify_user, inbox, outbox, created_at, updated_at)
VALUES ('bench', '/j.yaml', 'h', 'http://127.0.0.1:1/v1', 'u', '/in', '/out', 0, 0);
INSERT INTO documents (job_id, path, sha256, size, mtime_ns, state, attempts, created_at, updated_at, finished_at)
SELECT 1, 'dir' || (i % 1000) || '/f' || i || '.pdf', md5(i::text), 1000, 1,
       CASE WHEN i > $rows - $pending THEN 'pending' ELSE 'succeeded' END, 1, i, i, CASE WHEN i > $rows - $pending THEN NULL ELSE i END
FROM generate_series(1, $rows) AS i;
VACUUM ANALYZE documents;
SQL
script=$(mktemp /tmp/claim.XXXXXX.sql)
cat > "$script" <<'SQL'
UPDATE documents
SET state = CASE WHEN result_stored = 1 THEN 'recovering' WHEN upload_file_id IS NULL THEN 'uploading' ELSE 'uploaded' END,
    next_attempt_at = NULL, updated_at = 1, lease_owner = 'bench:' || pg_backend_pid(),
    lease_until = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 30000
WHERE id IN (
    SELECT id FROM documents
    WHERE job_id = 1 AND (state = 'pending' OR (state = 'failed' AND next_attempt_at <= 1))
    ORDER BY coalesce(next_attempt_at, 0), id
    LIMIT greatest(0, least(16, 16 - (SELECT count(*) FROM documents
        WHERE job_id = 1 AND state IN ('uploading', 'uploaded', 'running', 'recovering') AND false)))
    FOR UPDATE SKIP LOCKED)
RETURNING id;
SQL
echo "rows: $(psql -tA "$url" -c 'SELECT count(*) FROM documents'), pending: $(psql -tA "$url" -c "SELECT count(*) FROM documents WHERE state = 'pending'")"
echo "--- 1 client, 500 claims of 16"
pgbench -n -f "$script" -c 1 -t 500 "$url" 2>&1 | grep -E "latency average|tps"
echo "--- 4 clients at once, 250 claims of 16 each"
pgbench -n -f "$script" -c 4 -j 2 -t 250 "$url" 2>&1 | grep -E "latency average|tps"
echo "claimed: $(psql -tA "$url" -c "SELECT count(*) FROM documents WHERE state = 'uploading'") (expected 24000: 500×16 + 4×250×16)"
echo "--- plan of one claim"
psql -q "$url" -c "EXPLAIN (ANALYZE, COSTS OFF) $(grep -v '^RETURNING' "$script")" | grep -E "Index|Seq Scan|Execution Time"
