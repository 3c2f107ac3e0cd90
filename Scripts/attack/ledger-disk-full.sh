#!/usr/bin/env bash
# The SQLite ledger on a small tmpfs that fills up mid-run (as root). Then the tmpfs is grown and `run` repeated:
# every file one outcome, nothing run twice at the server, ledger usage == server tokens.
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/atk-ldfull.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency ${LATENCY:-30ms} --seed 4
make_files "$W/in" ${FILES:-150}; expected_list "$W/in" >"$W/expected"
mkdir -p "$W/db"; mount -t tmpfs -o size=${SIZE:-400k} tmpfs "$W/db" || exit 2
write_spec "$W/spec.yaml" "$SIM_URL"
timeout 120 "$BIN" run --db "$W/db/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run1.log" & p=$!
if [ -n "${FILL_AFTER:-}" ]; then sleep "$FILL_AFTER"; dd if=/dev/zero of="$W/db/filler" bs=4k 2>/dev/null; echo "filled the ledger's disk after ${FILL_AFTER}s: $(sqlite3 "file:$W/db/l.sqlite?mode=ro" "select state, count(*) from documents group by 1" 2>&1 | tr '\n' ' ')"; fi
wait $p; echo "run 1 (ledger disk full) exit $?"
rm -f "$W/db/filler"
grep -v ' info ' "$W/run1.log" | cut -c1-260 | sort | uniq -c | sort -rn | head -5
df -k "$W/db" | tail -1
mount -o remount,size=20m "$W/db"
for i in 2 3; do timeout 120 "$BIN" run --db "$W/db/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run$i.log"; echo "run $i exit $?"; tail -1 "$W/run$i.log"; done
cp "$W/db/l.sqlite" "$W/l.sqlite"
python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/l.sqlite" "$W" "$W/expected"; rc=$?
umount "$W/db"; kill $SIM_PID; exit $rc
