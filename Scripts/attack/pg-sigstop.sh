#!/usr/bin/env bash
# PostgreSQL ledger, --lease 3s: process B claims and sends (slow runs, 2 s each), is SIGSTOPped mid-run for 12 s
# while process A takes its documents over (through recovery), then B is continued: B must notice it lost its
# leases and write nothing; no run twice; usage == server tokens; every file one outcome.
# usage: PGURL=postgres://postgres@127.0.0.1:PORT Scripts/attack/pg-sigstop.sh
set -u
. "$(dirname "$0")/lib.sh"
pg_workspace pgstop
start_sim "$W" app-attack --latency 2s --ping-interval 500ms --seed 5
make_files "$W/in" 12; expected_list "$W/in" >"$W/expected"
write_spec "$W/spec.yaml" "$SIM_URL"
"$BIN" run --db "$DB" --lease 3s "$W/spec.yaml" >/dev/null 2>"$W/B.log" & PB=$!
sleep 1.2; kill -STOP $PB; echo "B stopped with: $(psql "$DB" -Atc "select state, count(*) from documents group by 1" | tr '\n' ' ')"
"$BIN" run --db "$DB" --lease 3s "$W/spec.yaml" >/dev/null 2>"$W/A.log" & PA=$!
sleep 12; echo "before CONT: $(psql "$DB" -Atc "select state, count(*) from documents group by 1" | tr '\n' ' ')"
kill -CONT $PB
wait $PA; echo "A exit $?"; wait $PB; echo "B exit $?"
tail -1 "$W/A.log"; tail -1 "$W/B.log"
grep -c 'lost its lease' "$W/B.log" | sed 's/^/B lost-lease lines: /'
python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$DB" "$W" "$W/expected"; rc=$?
kill $SIM_PID; exit $rc
