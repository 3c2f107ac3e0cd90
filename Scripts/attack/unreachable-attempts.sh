#!/usr/bin/env bash
# attack4: Dify unreachable (connection refused: the simulator stopped mid-run, kill -9) uses no attempts, also with
# the claim counting the attempt (issue 14): retry.max_attempts 1; `run` must exit 4 with the work kept (attempts
# back to 0 for documents never sent); the simulator back on the same port, `run` finishes every file once.
set -u
. "$(dirname "$0")/lib.sh"
FILES=${FILES:-40}
W=$(mktemp -d /tmp/atk-unreach.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 200ms --jitter 200ms --seed $RANDOM
PORT=$(echo "$SIM_URL" | sed -E 's#.*:([0-9]+)/v1#\1#')
make_files "$W/in" "$FILES"; expected_list "$W/in" >"$W/expected"
write_spec "$W/spec.yaml" "$SIM_URL"
sed -i 's/^retry: .*/retry: {max_attempts: 1, base_delay: 20ms, max_delay: 300ms, max_backpressure: 30s}/' "$W/spec.yaml"
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run1.log" & p=$!
sleep 1.5; kill -9 $SIM_PID; wait $SIM_PID 2>/dev/null
wait $p; echo "run 1 (Dify gone mid-run) exit $?: $(tail -1 "$W/run1.log" | cut -c1-200)"
sqlite3 "$W/l.sqlite" "select state, attempts, count(*) from documents group by 1,2"
mv "$W/sim.url" "$W/sim1.url"; mkdir -p "$W/store"
"$BIN" simulate --key app-attack --storage "$W/store" --port "$PORT" --latency 50ms >"$W/sim.url" 2>"$W/sim2.log" & SIM_PID=$!
for _ in $(seq 1 100); do [ -s "$W/sim.url" ] && break; sleep 0.1; done
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run2.log"; echo "run 2 exit $?: $(tail -1 "$W/run2.log" | cut -c1-200)"
sqlite3 "$W/l.sqlite" "select state, last_error_code, count(*) from documents group by 1,2"
# the first simulator's runs are gone with it: count what the ledger says was sent against the second one's runs
dead=$(sqlite3 "$W/l.sqlite" "select count(*) from documents where state = 'dead'")
kill $SIM_PID; [ "$dead" != 0 ] && { echo "BROKEN: $dead documents dead although Dify was only unreachable"; exit 1; }; echo OK
