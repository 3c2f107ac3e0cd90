#!/usr/bin/env bash
# attack4: the SQLite ledger's file system (a tmpfs, root) fills up under a LIVE `watch` mid-work (files keep
# arriving), stays full HOLD s, then space is freed. Documents whose worker stopped on the ledger error must be
# sorted again by the same watch (stranded, README "The ledger"): within SETTLE s every file has its outcome and
# nothing is left in flight; or the watch ends with exit 4 and the documented message (then a second watch must
# finish the work). SIGTERM exit 0; STRICT audit.
set -u
. "$(dirname "$0")/lib.sh"
FILES=${FILES:-60}; HOLD=${HOLD:-6}; SETTLE=${SETTLE:-120}; FILL_AFTER=${FILL_AFTER:-2}
W=$(mktemp -d /tmp/atk-lfw.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 200ms --jitter 300ms --too-many-requests-rate 0.05 --drop-after-start-rate 0.05 --seed $RANDOM
make_files "$W/in" "$FILES"; expected_list "$W/in" >"$W/expected.all"
mkdir -p "$W/db"; mount -t tmpfs -o size=${SIZE:-2m} tmpfs "$W/db" || exit 2
write_spec "$W/spec.yaml" "$SIM_URL"
n=1; "$BIN" watch --db "$W/db/l.sqlite" --grace 5s "$W/spec.yaml" >/dev/null 2>"$W/watch-1.log" & pw=$!
sleep "$FILL_AFTER"
make_files "$W/stage" 20; (cd "$W/stage" && for f in *; do mv "$f" "$W/in/late-$f"; done); expected_list "$W/in" >>"$W/expected.all"
dd if=/dev/zero of="$W/db/filler" bs=4k 2>/dev/null
echo "filled after ${FILL_AFTER}s: $(sqlite3 "file:$W/db/l.sqlite?mode=ro" "select state, count(*) from documents group by 1" 2>&1 | tr '\n' ' ')"
sleep "$HOLD"; rm -f "$W/db/filler"; echo "db folder after freeing: $(ls -la "$W/db" | tail -n +4 | awk '{print $5, $9}' | tr "\n" " ") $(df -k "$W/db" | tail -1)"
alive=$(kill -0 $pw 2>/dev/null && echo yes || echo no); echo "space freed after ${HOLD}s; watch alive: $alive"
if [ $alive = no ]; then wait $pw; echo "watch #1 exit $?: $(tail -1 "$W/watch-1.log" | cut -c1-220)"; n=2; "$BIN" watch --db "$W/db/l.sqlite" --grace 5s "$W/spec.yaml" >/dev/null 2>"$W/watch-2.log" & pw=$!; fi
sort -u "$W/expected.all" -o "$W/expected"; nexp=$(wc -l <"$W/expected")
t0=$(date +%s)
while :; do
  fl=$(sqlite3 "file:$W/db/l.sqlite?mode=ro" "select count(*) from documents where state not in ('succeeded','dead','rejected','skipped','unresolved')" 2>/dev/null)
  nd=$(sqlite3 "file:$W/db/l.sqlite?mode=ro" "select count(*) from documents" 2>/dev/null)
  [ "$fl" = 0 ] && [ "${nd:-0}" -ge "$nexp" ] && break
  [ $(( $(date +%s) - t0 )) -ge "$SETTLE" ] && break
  kill -0 $pw 2>/dev/null || break
  sleep 1
done
bad=0
echo "after +$(( $(date +%s) - t0 ))s: documents $nd of $nexp files, not ended: $fl; watch #$n alive: $(kill -0 $pw 2>/dev/null && echo yes || echo no)"
sqlite3 "file:$W/db/l.sqlite?mode=ro" "select state, last_error_code, count(*) from documents group by 1,2"
if [ "$fl" != 0 ] || [ "${nd:-0}" -lt "$nexp" ]; then echo "BROKEN: work left in a live watch $SETTLE s after space was freed"; sqlite3 "file:$W/db/l.sqlite?mode=ro" "select id,path,state,attempts from documents where state not in ('succeeded','dead','rejected','skipped','unresolved') limit 8"; bad=1; fi
kill -TERM $pw; wait $pw; rc=$?; echo "watch #$n SIGTERM exit $rc"
cat "$W"/watch-*.log | grep -E " (warning|error|critical) |^dify-batch" | sed -E 's/^[^ ]+ //; s/path=[^ ]+ //; s/document=[0-9]+ //; s/document [0-9]+/document N/; s/[^ ]*file-[0-9]+\.txt/F/g; s/in [0-9]+m?s/in N/' | cut -c1-200 | sort | uniq -c | sort -rn | head -10
"$BIN" run --db "$W/db/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/final.log"; echo "final run exit $?"; tail -1 "$W/final.log" | cut -c1-200
cp "$W/db/l.sqlite" "$W/l.sqlite"; [ -f "$W/db/l.sqlite-wal" ] && cp "$W/db/l.sqlite-wal" "$W/l.sqlite-wal"
STRICT=1 python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/l.sqlite" "$W" "$W/expected" | tail -5; arc=${PIPESTATUS[0]}
[ -n "${KEEP:-}" ] || umount "$W/db"; kill $SIM_PID; [ $bad = 1 ] && exit 1; exit $arc
