#!/usr/bin/env bash
# An existing SQLite ledger on a full file system: `run` (and `watch`) should fail with a clear, actionable message
# (the ledger's path, "free space") and a documented exit code — not a bare "Error: SQLite error 13" and exit 1
# (which the exit-code table reserves for documents that ended dead/rejected/unresolved).
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/atk-ldstart.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --seed 4
mkdir -p "$W/in" "$W/db"; mount -t tmpfs -o size=2m tmpfs "$W/db" || exit 2
write_spec "$W/spec.yaml" "$SIM_URL"
"$BIN" run --db "$W/db/l.sqlite" "$W/spec.yaml" 2>/dev/null; echo "empty run exit $?"
make_files "$W/in" 5
dd if=/dev/zero of="$W/db/filler" bs=4k 2>/dev/null
[ -n "${LEAVE_KB:-}" ] && truncate -s -"${LEAVE_KB}K" "$W/db/filler"   # room to open (wal, shm), not to write much
"$BIN" run --db "$W/db/l.sqlite" "$W/spec.yaml" 2>"$W/run.log" >/dev/null; echo "run on a full ledger disk: exit $?"; cut -c1-300 "$W/run.log" | tail -3
timeout 20 "$BIN" watch --db "$W/db/l.sqlite" "$W/spec.yaml" 2>"$W/watch.log" >/dev/null; echo "watch on a full ledger disk: exit $?"; cut -c1-300 "$W/watch.log" | tail -3
"$BIN" status --db "$W/db/l.sqlite" >/dev/null 2>"$W/status.log"; echo "status: exit $? $(head -1 "$W/status.log")"
umount "$W/db"; kill $SIM_PID
