#!/usr/bin/env bash
# Issue 10's SIGKILL loop, long form (the suite runs a short form: SpendOnceSIGKILLTests).
#
# 100 files per job, `dify-batch run` killed with SIGKILL at random moments (>= 20 times per job) against
# `dify-batch simulate` with latency and dropped streams, for a streaming and a blocking workflow job and a
# streaming completion job; then one last uninterrupted run. Checks, from the ledger: every file in exactly one
# of succeeded / unresolved / paused / dead / skipped, run requests per document <= retry.max_attempts, and
# (workflows) one usage row per started run that was found.
#
# Usage: Scripts/sigkill-loop.sh [path/to/dify-batch]   (default .build/debug/dify-batch; needs sqlite3)
set -euo pipefail
BIN=${1:-.build/debug/dify-batch}
FILES=${FILES:-100}
KILLS=${KILLS:-25}
MAX_ATTEMPTS=3
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

start_simulator() {  # mode key -> prints base URL
  local mode=$1 key=$2 log="$WORK/sim-$1.log"
  "$BIN" simulate --mode "$mode" --key "$key" --latency 80ms --jitter 150ms --drop-after-start-rate 0.2 --seed 7 >"$log.url" 2>"$log" &
  for _ in $(seq 1 100); do
    if [ -s "$log.url" ]; then head -1 "$log.url"; return; fi
    sleep 0.1
  done
  echo "simulator did not start" >&2; exit 1
}

make_job() {  # name base_url response_mode
  local name=$1 url=$2 mode=$3
  mkdir -p "$WORK/$name/in" "$WORK/jobs"
  for i in $(seq 1 "$FILES"); do printf 'document %s of %s\nline %s\n' "$i" "$name" "$((i * 7))" >"$WORK/$name/in/file-$i.txt"; done
  cat >"$WORK/jobs/$name.yaml" <<YAML
name: $name
inbox: ../$name/in
outbox: ../$name/out
dify: {base_url: $url, api_key_env: SIGKILL_LOOP_KEY_$name, response_mode: $mode}
match: {settle: 0s}
concurrency: 6
retry: {max_attempts: $MAX_ATTEMPTS, base_delay: 20ms, max_delay: 200ms}
recover_deadline: 5s
YAML
}

WF_URL=$(start_simulator workflow app-sigkill-workflow)
CO_URL=$(start_simulator completion app-sigkill-completion)
make_job wfstream "$WF_URL" streaming
make_job wfblock "$WF_URL" blocking
make_job costream "$CO_URL" streaming
export SIGKILL_LOOP_KEY_wfstream=app-sigkill-workflow SIGKILL_LOOP_KEY_wfblock=app-sigkill-workflow SIGKILL_LOOP_KEY_costream=app-sigkill-completion
DB="$WORK/ledger.sqlite"

for job in wfstream wfblock costream; do
  killed=0
  for round in $(seq 1 "$KILLS"); do
    "$BIN" run --db "$DB" "$WORK/jobs/$job.yaml" >/dev/null 2>"$WORK/$job-$round.log" &
    pid=$!
    sleep "0.$(( (RANDOM % 40) + 5 ))"
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; killed=$((killed + 1)); fi
    wait "$pid" 2>/dev/null || true
  done
  set +e
  "$BIN" run --db "$DB" "$WORK/jobs/$job.yaml" >/dev/null 2>"$WORK/$job-last.log"
  status=$?
  set -e
  echo "$job: $killed kills, last run exit $status"
done

fail=0
for job in wfstream wfblock costream; do
  q() { sqlite3 "$DB" "$1"; }
  total=$(q "SELECT count(*) FROM documents d JOIN jobs j ON j.id = d.job_id WHERE j.name = '$job'")
  settled=$(q "SELECT count(*) FROM documents d JOIN jobs j ON j.id = d.job_id WHERE j.name = '$job' AND d.state IN ('succeeded','unresolved','paused','dead','skipped')")
  over=$(q "SELECT count(*) FROM documents d JOIN jobs j ON j.id = d.job_id WHERE j.name = '$job' AND d.run_posts > $MAX_ATTEMPTS")
  states=$(q "SELECT group_concat(state || '=' || n, ' ') FROM (SELECT d.state, count(*) AS n FROM documents d JOIN jobs j ON j.id = d.job_id WHERE j.name = '$job' GROUP BY d.state)")
  dups=$(q "SELECT coalesce(sum(duplicate_runs), 0) FROM documents d JOIN jobs j ON j.id = d.job_id WHERE j.name = '$job'")
  echo "$job: $total documents ($states), over the send cap: $over, duplicate_runs: $dups"
  [ "$total" -eq "$FILES" ] && [ "$settled" -eq "$FILES" ] && [ "$over" -eq 0 ] || fail=1
done
[ "$fail" -eq 0 ] && echo "OK" || { echo "FAILED (logs in $WORK)"; trap - EXIT; exit 1; }
