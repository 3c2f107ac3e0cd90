#!/usr/bin/env bash
# Another process holds the ledger's write lock (sqlite3: BEGIN IMMEDIATE) for HOLD seconds (default 5, then 15)
# while `run` (CMD=watch: `watch`) is busy with FILES files and faults (latency, 429, cut streams). The ledger
# calls block their thread for up to the busy timeout (10 s). Then `run` again to finish. Checks: nothing sent
# twice, one outcome per file, exit 0 or 4 with the busy message, no hang beyond busy timeout + grace. A hold
# longer than the busy timeout does not always mean exit 4: a document whose write meets it is tried again (a
# success record 3 times, a stranded document after 1 s, 2 s, ...), so `run` rides out holds of up to ~3 busy
# timeouts; a write of the job loop itself that meets it ends the command with exit 4. SIG=TERM|INT sends that
# signal while the lock is held (watch).
set -u
. "$(dirname "$0")/lib.sh"
HOLD=${HOLD:-5}; FILES=${FILES:-40}; CMD=${CMD:-run}; SIG=${SIG:-}
W=$(mktemp -d /tmp/atk-lock.XXXX); echo "work: $W hold=${HOLD}s cmd=$CMD sig=${SIG:-none}"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 400ms --jitter 300ms --too-many-requests-rate 0.15 --drop-after-start-rate 0.1 --seed 7
make_files "$W/in" "$FILES"; expected_list "$W/in" >"$W/expected"
write_spec "$W/spec.yaml" "$SIM_URL"
# create the ledger first so sqlite3 can lock it
"$BIN" status --db "$W/l.sqlite" >/dev/null 2>&1
start=$(date +%s.%N)
G=; [ "$CMD" = watch ] && G="--grace 5s"
"$BIN" $CMD --db "$W/l.sqlite" $G "$W/spec.yaml" >"$W/out.txt" 2>"$W/run.log" & pr=$!
sleep 1.5
( printf '.timeout 20000\nBEGIN IMMEDIATE;\nSELECT 1;\n'; sleep "$HOLD"; printf 'COMMIT;\n' ) | sqlite3 "$W/l.sqlite" >/dev/null 2>"$W/sqlite3.err" & ph=$!
t_lock=$(date +%s.%N)
if [ -n "$SIG" ]; then sleep 1; kill -$SIG $pr; t_sig=$(date +%s.%N); echo "sent SIG$SIG at +$(echo "$t_sig - $t_lock" | bc)s into the hold"; fi
if [ "$CMD" = watch ] && [ -z "$SIG" ]; then
  # watch: let it finish everything, then TERM
  for _ in $(seq 1 600); do n=$(ls "$W/out" 2>/dev/null | grep -c '\.json$'); [ "$n" -ge "$FILES" ] && break; kill -0 $pr 2>/dev/null || break; sleep 0.2; done
  kill -TERM $pr
fi
wait $pr; rc=$?; end=$(date +%s.%N)
wait $ph
echo "first $CMD exit $rc after $(echo "$end - $start" | bc)s (lock taken at +$(echo "$t_lock - $start" | bc)s)"
grep -iE "busy|locked|error|critical" "$W/run.log" | cut -c1-250 | sort | uniq -c | head -8
tail -3 "$W/run.log" | cut -c1-250
# finish with a second run (nothing may be paid twice)
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run2.log"; echo "second run exit $?"; tail -2 "$W/run2.log" | cut -c1-250
python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/l.sqlite" "$W" "$W/expected" | tail -4; arc=${PIPESTATUS[0]}
kill $SIM_PID; exit $arc
