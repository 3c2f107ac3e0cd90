#!/usr/bin/env bash
# attack4: `watch` with its outbox on a 64 KB tmpfs (root) that fills up while files keep arriving; some paths
# already have an earlier version's outcome (the first wave's files are dropped again with new content while the
# disk is full: the new .json must replace the old outcome once it can be written). The file system is then grown
# and the LIVE watch must write every outcome by itself (local failures are retried without calling Dify) within
# SETTLE s; SIGTERM exit 0; STRICT audit (server runs == documents sent once each).
set -u
. "$(dirname "$0")/lib.sh"
FILES=${FILES:-40}; SETTLE=${SETTLE:-90}
W=$(mktemp -d /tmp/atk-fullw.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 50ms --jitter 100ms --too-many-requests-rate 0.05 --seed $RANDOM
mkdir -p "$W/out" "$W/in"; mount -t tmpfs -o size=64k tmpfs "$W/out" || { echo "cannot mount tmpfs"; exit 2; }
write_spec "$W/spec.yaml" "$SIM_URL"
make_files "$W/in" 12; expected_list "$W/in" >"$W/wave1"
"$BIN" watch --db "$W/l.sqlite" --grace 5s "$W/spec.yaml" >/dev/null 2>"$W/watch.log" & pw=$!
for _ in $(seq 1 100); do [ "$(ls "$W/out" | grep -c '\.json$')" -ge 12 ] && break; sleep 0.2; done
echo "wave 1: $(ls "$W/out" | grep -c '\.json$') outcomes"
# fill the disk: a filler file takes what is left
dd if=/dev/zero of="$W/out/.filler" bs=1k count=64 2>/dev/null; df -k "$W/out" | tail -1
# wave 2: new files + the wave-1 names again with new content (their old .json must be replaced)
make_files "$W/stage" "$FILES"; (cd "$W/stage" && for f in *; do mv "$f" "$W/in/w2-$f"; done)
for f in $(cut -f1 "$W/wave1"); do printf 'new content %s %s\n' "$f" "$RANDOM$RANDOM" >"$W/in/.$f.new"; mv "$W/in/.$f.new" "$W/in/$f"; done
expected_list "$W/in" >"$W/expected"
for _ in $(seq 1 150); do
  n=$(sqlite3 "$W/l.sqlite" "select count(*) from documents where last_error_code='ENOSPC' and state='failed'" 2>/dev/null)
  [ "${n:-0}" -ge $((FILES / 2)) ] && break; sleep 0.2
done
echo "local failures ENOSPC while full: $n; watch alive: $(kill -0 $pw 2>/dev/null && echo yes || echo no)"
sqlite3 "$W/l.sqlite" "select state, last_error_code, count(*) from documents group by 1,2"
rm -f "$W/out/.filler"; mount -o remount,size=8m "$W/out"
t0=$(date +%s); nexp=$(wc -l <"$W/expected")
while :; do
  fl=$(sqlite3 "$W/l.sqlite" "select count(*) from documents where state not in ('succeeded','dead','rejected','skipped','unresolved')" 2>/dev/null)
  [ "$fl" = 0 ] && break; [ $(( $(date +%s) - t0 )) -ge "$SETTLE" ] && break; sleep 1
done
echo "after space was freed + $(( $(date +%s) - t0 ))s: not ended in the live watch: $fl"
bad=0; [ "$fl" != 0 ] && { echo "BROKEN: documents left unfinished in a live watch"; bad=1; }
kill -TERM $pw; wait $pw; rc=$?; echo "watch SIGTERM exit $rc"; [ $rc != 0 ] && bad=1
grep -E " (warning|error) " "$W/watch.log" | sed -E 's/^[^ ]+ //; s/path=[^ ]+ //; s/document=[0-9]+ //; s/[^ ]*file-[0-9]+\.txt/F/g; s/\.dify-batch-[a-z0-9]+\.tmp/T/; s/local_failures=[0-9]+/L/; s/in [0-9]+m?s/in N/' | cut -c1-170 | sort | uniq -c | sort -rn | head -8
# every path: its newest version's outcome, and that outcome is of the newest content
python3 - "$W" <<'PY' || bad=1
import json, os, sys
w = sys.argv[1]; bad = 0
for line in open(os.path.join(w, "expected")):
    name, sha = line.rstrip("\n").split("\t")
    j, e = os.path.join(w, "out", name + ".json"), os.path.join(w, "out", name + ".error.json")
    if os.path.exists(j) == os.path.exists(e): print("BROKEN:", name, "outcome files", os.path.exists(j), os.path.exists(e)); bad = 1; continue
    d = json.load(open(j if os.path.exists(j) else e))
    if d["source"]["sha256"] != sha: print("BROKEN:", name, "outcome is of another content", d["source"]["sha256"][:12], "not", sha[:12]); bad = 1
print("newest-content check:", "OK" if not bad else "BROKEN")
sys.exit(bad)
PY
ls -a "$W/out" | grep -c '^\.dify-batch-.*\.tmp$' | sed 's/^/temp files left: /'
# the audit's expected list: wave-1 names now carry their new content; their first content's run is a legit one
STRICT=1 python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/l.sqlite" "$W" "$W/expected" | tail -4; arc=${PIPESTATUS[0]}
umount "$W/out"; kill $SIM_PID; [ $bad = 1 ] && exit 1; exit $arc
