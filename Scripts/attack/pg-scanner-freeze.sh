#!/usr/bin/env bash
# The scanner lease under SIGSTOP: PROCS `watch` processes share a PostgreSQL ledger (--lease LEASE) and one inbox.
# ROUNDS times a burst of BURST new files lands in the inbox at once; a few milliseconds later the process holding the
# job's scanner lease (scanner_leases.owner = host:pid:start) is SIGSTOPped for HOLD s (longer than the lease: another
# process takes the scanner lease over and scans the same files), then continued in the middle of its scan.
# Audit: one document per file version (no second row for a path with the same content), one outcome per file
# (audit.py STRICT=1), the watches finish the job by themselves within BOUND s, documented exit codes.
# usage: PGURL=postgres://postgres@127.0.0.1:PORT Scripts/attack/pg-scanner-freeze.sh
#   env: PROCS=2 ROUNDS=6 BURST=60 LEASE=2s HOLD=5 BOUND=120 SEED=61
set -u
. "$(dirname "$0")/lib.sh"
PROCS=${PROCS:-2}; ROUNDS=${ROUNDS:-6}; BURST=${BURST:-60}; LEASE=${LEASE:-2s}; HOLD=${HOLD:-5}; BOUND=${BOUND:-120}
pg_workspace scanfreeze
start_sim "$W" app-attack --latency 300ms --jitter 700ms --drop-after-start-rate 0.1 --ping-interval 300ms --seed ${SEED:-61}
mkdir -p "$W/in"; write_spec "$W/spec.yaml" "$SIM_URL"
psqlq() { psql "$DB" -Atqc "$1" 2>/dev/null; }
declare -A PID
for s in $(seq 1 "$PROCS"); do
  "$BIN" watch --db "$DB" --lease "$LEASE" --grace 3s --progress never "$W/spec.yaml" >/dev/null 2>"$W/p$s.log" & PID[$s]=$!
done
sleep 2
frozen=0
for r in $(seq 1 "$ROUNDS"); do
  make_files "$W/stage$r" "$BURST"
  (cd "$W/stage$r" && for f in *; do mv "$f" "$W/in/r$r-$f"; done)
  sleep "0.0$((RANDOM % 9))"
  owner=$(psqlq "select owner from scanner_leases limit 1"); pid=$(echo "$owner" | cut -d: -f2)
  if [ -n "$pid" ] && kill -STOP "$pid" 2>/dev/null; then
    echo "round $r: scanner pid $pid stopped with $(psqlq "select count(*) from documents") documents recorded"
    sleep "$HOLD"; kill -CONT "$pid"; frozen=$((frozen + 1))
  else
    echo "round $r: no scanner lease held (owner '$owner')"
  fi
  sleep 2
done
psqlq "select count(*) from documents" | sed 's/^/documents after the rounds: /'
expected_files=$(( ROUNDS * BURST ))
done_=0; t_end=$((SECONDS + BOUND))
while [ $SECONDS -lt $t_end ]; do
  left=$(psqlq "select count(*) from documents where state not in ('succeeded','skipped','dead','rejected','unresolved')")
  [ "$left" = 0 ] && [ "$(ls "$W/in" | wc -l)" = 0 ] && { done_=1; break; }
  sleep 1
done
[ $done_ = 1 ] || echo "STUCK: the watches did not finish within ${BOUND}s: $(psqlq "select state||'='||count(*) from documents group by state" | tr '\n' ' ') $(ls "$W/in" | wc -l) file(s) left in the inbox"
for s in $(seq 1 "$PROCS"); do kill -TERM "${PID[$s]}"; done
rcs=""; for s in $(seq 1 "$PROCS"); do
  t_end=$((SECONDS + 60)); while kill -0 "${PID[$s]}" 2>/dev/null && [ $SECONDS -lt $t_end ]; do sleep 0.5; done
  if kill -0 "${PID[$s]}" 2>/dev/null; then echo "HANG: watch pid ${PID[$s]} did not stop within 60 s of SIGTERM"; kill -9 "${PID[$s]}"; rcs="$rcs hang"; fi
  wait "${PID[$s]}"; rcs="$rcs $?"
done
echo "watch exit codes:$rcs"
# Every file is now in done/ (after_success: archive) or failed/: the expected list from there.
(cd "$W"; for f in in/* done/* failed/*; do [ -f "$f" ] && printf '%s\t%s\n' "${f#*/}" "$(sha256sum "$f" | cut -c1-64)"; done) >"$W/expected"
echo "files: $(wc -l <"$W/expected") of $expected_files"
dups=$(psqlq "select path||' x'||count(*) from documents group by path, sha256 having count(*) > 1")
[ -n "$dups" ] && echo "BROKEN: one file version recorded as several documents: $(echo "$dups" | head -5 | tr '\n' ' ') ($(echo "$dups" | wc -l) paths)"
grep -h "ERROR\| error " "$W"/p*.log | cut -c1-250 | sort | uniq -c | sort -rn | head -5
STRICT=1 python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$DB" "$W" "$W/expected"; rc=$?
kill $SIM_PID
[ -n "$dups" ] || [ $done_ = 0 ] || [[ "$rcs" == *hang* ]] && rc=1
[ "$(wc -l <"$W/expected")" = "$expected_files" ] || { echo "BROKEN: files lost"; rc=1; }
exit $rc
