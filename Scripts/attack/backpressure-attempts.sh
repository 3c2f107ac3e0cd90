#!/usr/bin/env bash
# attack4: 429 (Dify's concurrency cap: --max-active 1 against concurrency 6) must never use an attempt, also now
# that the claim counts the attempt (issue 14 claimCountingAttempts): with retry.max_attempts 1 every file still
# succeeds, runs once at the server, and ends with attempts 1; kill -9 of `run` KILLS times in between.
set -u
. "$(dirname "$0")/lib.sh"
FILES=${FILES:-30}; KILLS=${KILLS:-4}
W=$(mktemp -d /tmp/atk-bp.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 100ms --jitter 100ms --max-active 1 --seed $RANDOM
make_files "$W/in" "$FILES"; expected_list "$W/in" >"$W/expected"
write_spec "$W/spec.yaml" "$SIM_URL"
sed -i 's/^retry: .*/retry: {max_attempts: 1, base_delay: 20ms, max_delay: 300ms, max_backpressure: 60s}/' "$W/spec.yaml"
for k in $(seq 1 "$KILLS"); do
  "$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/k-$k.log" & p=$!; sleep 1.$((RANDOM % 9)); kill -9 $p; wait $p 2>/dev/null
done
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run.log"; echo "run exit $?: $(tail -1 "$W/run.log" | cut -c1-160)"
sqlite3 "$W/l.sqlite" "select state, attempts, count(*) from documents group by 1,2"
echo "429 answers: $(cat "$W"/*.log | grep -c 'concurrency limit\|429')"
STRICT=1 python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/l.sqlite" "$W" "$W/expected" | tail -4; rc=${PIPESTATUS[0]}
bad=$(sqlite3 "$W/l.sqlite" "select count(*) from documents where state not in ('succeeded','unresolved') or attempts > 1")
kill $SIM_PID; [ "$bad" != 0 ] && { echo "BROKEN: $bad documents not succeeded or with more than one attempt"; exit 1; }; exit $rc
