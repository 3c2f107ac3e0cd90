#!/usr/bin/env bash
# attack4: another program keeps a read transaction open on the ledger (an sqlite3 shell, a backup tool) while
# `watch` works and an operator runs `dify-batch status` a few times. status must answer at once (it ends with a
# WAL checkpoint: one that waits for the reader held the write lock for the 10 s busy timeout, stopping the
# daemon: 41 -> 41 documents succeeded during each status, and a paid success could not be recorded, SQLITE_BUSY).
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/atk-rdst.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 200ms --jitter 200ms
make_files "$W/in" ${FILES:-150}; expected_list "$W/in" >"$W/expected"; write_spec "$W/spec.yaml" "$SIM_URL"
"$BIN" status --db "$W/l.sqlite" >/dev/null 2>&1
"$BIN" watch --db "$W/l.sqlite" --grace 3s "$W/spec.yaml" >/dev/null 2>"$W/w.log" & pw=$!; sleep 3
( printf 'BEGIN;\nSELECT count(*) FROM documents;\n'; sleep 40; printf 'COMMIT;\n' ) | sqlite3 "$W/l.sqlite" >/dev/null & r=$!; sleep 0.5
bad=0
for i in 1 2 3; do
  a=$(sqlite3 "$W/l.sqlite" "select count(*) from documents where state='succeeded'"); s=$(date +%s.%N)
  "$BIN" status --db "$W/l.sqlite" >/dev/null 2>&1; rc=$?; t=$(echo "$(date +%s.%N) - $s" | bc)
  b=$(sqlite3 "$W/l.sqlite" "select count(*) from documents where state='succeeded'")
  echo "status $i: exit $rc in ${t:0:5} s; succeeded before $a, after $b"
  [ "$(echo "$t > 3" | bc)" = 1 ] && bad=1
  sleep 1
done
kill $r 2>/dev/null
for _ in $(seq 1 120); do [ "$(sqlite3 "$W/l.sqlite" "select count(*) from documents where state not in ('succeeded','dead','rejected','skipped','unresolved')")" = 0 ] && break; sleep 0.5; done
kill -TERM $pw; wait $pw; echo "watch exit $?"
n=$(grep -c "SQLITE_BUSY\|database is locked" "$W/w.log"); echo "busy errors in the watch's log: $n"; [ "$n" != 0 ] && bad=1
STRICT=1 python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/l.sqlite" "$W" "$W/expected" | tail -2; arc=${PIPESTATUS[0]}
kill $SIM_PID; [ $bad = 1 ] && { echo "BROKEN: status waited for the reader / the daemon met a busy ledger"; exit 1; }; exit $arc
