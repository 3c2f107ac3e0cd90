#!/usr/bin/env bash
# Two `watch` processes share a PostgreSQL ledger (--lease 3s) on one inbox. Files arrive; process A is
# killed -9 and restarted several times; process B is SIGSTOPped past its lease, then continued (fencing).
# Then both stop, one `run` finishes, and the audit compares with the server.
# usage: PGURL=postgres://postgres@127.0.0.1:PORT Scripts/attack/pg-two-procs.sh   (private cluster: .ci/postgres-cluster start)
set -u
. "$(dirname "$0")/lib.sh"
pg_workspace pg
start_sim "$W" app-attack --latency 200ms --jitter 600ms --drop-after-start-rate 0.2 --seed ${SEED:-9}
mkdir -p "$W/in"; write_spec "$W/spec.yaml" "$SIM_URL"
: >"$W/expected"
add() { make_files "$W/stage$1" "$2"; (cd "$W/stage$1" && for f in *; do mv "$f" "$W/in/s$1-$f"; done); }
startw() { "$BIN" watch --db "$DB" --lease 3s --grace 2s "$W/spec.yaml" >/dev/null 2>>"$W/$1.log" & eval "P$1=\$!"; }
startw A; startw B
for r in $(seq 1 ${ROUNDS:-6}); do
  add $r 6
  sleep "0.$(( RANDOM % 90 + 10 ))"
  kill -9 $PA; wait $PA 2>/dev/null; echo "round $r: killed A"
  if [ $((r % 2)) -eq 1 ]; then kill -STOP $PB; sleep 5; kill -CONT $PB; echo "round $r: B stopped 5s"; fi
  startw A
done
sleep 3; kill -TERM $PA $PB; wait $PA; echo "A exit $?"; wait $PB; echo "B exit $?"
(cd "$W"; for f in in/* done/*; do [ -f "$f" ] && printf '%s\t%s\n' "${f#*/}" "$(sha256sum "$f" | cut -c1-64)"; done) >"$W/expected"
"$BIN" run --db "$DB" "$W/spec.yaml" >/dev/null 2>"$W/final.log"; echo "final run exit $?"; tail -1 "$W/final.log"
grep -h 'lost its lease' "$W"/A.log "$W"/B.log | wc -l | sed 's/^/lost-lease log lines: /'
python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$DB" "$W" "$W/expected"; rc=$?
kill $SIM_PID; exit $rc
