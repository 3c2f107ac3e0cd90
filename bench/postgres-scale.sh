#!/usr/bin/env bash
# Throughput of N `dify-batch run` processes sharing one PostgreSQL ledger and one inbox (BENCHMARKS.md §6).
#   bench/postgres-scale.sh BINARY SERVER_URL [FILES] [PROCESS_COUNTS]
# BINARY: a release dify-batch; SERVER_URL: postgres://USER@127.0.0.1:PORT/postgres?sslmode=disable (a database
# per measurement is created on it). The simulator runs as a separate process with 200 ms per run; each process
# has concurrency 16. Prints one Markdown row per process count.
set -euo pipefail
bin=$1; server=$2; files=${3:-2000}; counts=${4:-"1 2 4"}
work=$(mktemp -d /tmp/dify-batch-pgbench.XXXXXX)
trap 'kill $sim 2>/dev/null || true; rm -rf "$work"' EXIT
admin=${server/\?sslmode=disable/}
psql_url=${admin/postgres:/postgresql:}
"$bin" simulate --latency 200ms > "$work/sim.url" 2>"$work/sim.log" &
sim=$!
for _ in $(seq 100); do [ -s "$work/sim.url" ] && break; sleep 0.1; done
base=$(head -1 "$work/sim.url")
echo "| processes | files | wall s | documents/s | runs sent | ledger succeeded |"
echo "|---|---|---|---|---|---|"
for n in $counts; do
  db="pgbench_${n}_$$"
  psql -q "$psql_url" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  dir="$work/p$n"; mkdir -p "$dir/in" "$dir/out" "$dir/jobs"
  for i in $(seq 1 "$files"); do printf 'bench %s %s\n' "$n" "$i" > "$dir/in/f$i.txt"; done
  cat > "$dir/jobs/bench.yaml" <<SPEC
name: bench
inbox: ../in
outbox: ../out
dify: {base_url: $base, api_key_env: DIFY_BENCH_KEY}
match: {settle: 0s}
concurrency: 16
after_success: keep
SPEC
  url="${server%/postgres*}/$db?sslmode=disable"
  start=$(date +%s.%N)
  pids=()
  for p in $(seq 1 "$n"); do
    DIFY_BENCH_KEY=app-simulator-key "$bin" run --db "$url" --progress never --log-level error "$dir/jobs/bench.yaml" 2>"$dir/p$p.log" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  end=$(date +%s.%N)
  ok=$(psql -tA "${psql_url%/postgres}/$db" -c "SELECT count(*) FROM documents WHERE state = 'succeeded'")
  runs=$(psql -tA "${psql_url%/postgres}/$db" -c "SELECT count(*) FROM attempts WHERE phase = 'run'")
  wall=$(echo "$end - $start" | bc -l)
  printf '| %s | %s | %.1f | %.1f | %s | %s |\n' "$n" "$files" "$wall" "$(echo "$files / $wall" | bc -l)" "$runs" "$ok"
  psql -q "$psql_url" -c "DROP DATABASE $db WITH (FORCE)"
done
