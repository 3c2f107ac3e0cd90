#!/usr/bin/env bash
# The outbox on a 64 KB tmpfs that fills up mid-run (as root). Then the tmpfs is grown and `run` is repeated:
# every file gets its outbox file from the stored result, Dify is not asked again (server runs == files).
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/atk-full.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 20ms --seed 4
make_files "$W/in" 120; expected_list "$W/in" >"$W/expected"
mkdir -p "$W/out"; mount -t tmpfs -o size=64k tmpfs "$W/out" || { echo "cannot mount tmpfs"; exit 2; }
write_spec "$W/spec.yaml" "$SIM_URL"
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run1.log"; echo "run 1 (disk full) exit $?"
tail -2 "$W/run1.log"
sqlite3 "$W/l.sqlite" "select state, last_error_class, last_error_code, count(*) from documents group by 1,2,3"
df -k "$W/out" | tail -1
ls "$W/out" | grep -c 'dify-batch.*tmp' | sed 's/^/temp files left in outbox: /'
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run2.log"; echo "run 2 (still full) exit $?"
tail -1 "$W/run2.log"
mount -o remount,size=8m "$W/out"
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run3.log"; echo "run 3 (space freed) exit $?"
tail -1 "$W/run3.log"
sqlite3 "$W/l.sqlite" "select state, count(*) from documents group by 1"
python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/l.sqlite" "$W" "$W/expected"; rc=$?
umount "$W/out"; kill $SIM_PID; exit $rc
