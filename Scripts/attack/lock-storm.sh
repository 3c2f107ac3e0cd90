#!/usr/bin/env bash
# attack4: another program (sqlite3 `BEGIN IMMEDIATE`) holds the ledger's write lock again and again at random
# moments, for HOLDS shorter and longer than the busy timeout (BT, hidden flag --busy-timeout), while `watch`
# works with files arriving, latency and faults. A watch that ends (exit 4 on a lock past the busy timeout, as
# README says) is logged with its exit code and message and started again. After the storm: within SETTLE s every
# file must have its outcome and nothing may stay in flight in the LIVE watch (stranded documents are sorted again
# after <= 60 s); SIGTERM must end it with exit 0; then a clean `run` and a STRICT audit.
# KILL_EVERY=N: also kill -9 the watch every ~N s of the storm (a crash while documents are stranded) and start it again.
# usage: STORM=40 BT=300ms FILES=40 [KILL_EVERY=5] Scripts/attack/lock-storm.sh
set -u
. "$(dirname "$0")/lib.sh"
STORM=${STORM:-40}; BT=${BT:-300ms}; FILES=${FILES:-40}; SETTLE=${SETTLE:-100}; MAXHOLD_MS=${MAXHOLD_MS:-2500}
FAULTS=${FAULTS:---latency 200ms --jitter 300ms --too-many-requests-rate 0.1 --drop-after-start-rate 0.1 --seed $RANDOM}
W=$(mktemp -d /tmp/atk-lockstorm.XXXX); echo "work: $W storm=${STORM}s busy-timeout=$BT"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack $FAULTS
make_files "$W/in" "$FILES"; expected_list "$W/in" >"$W/expected.all"
write_spec "$W/spec.yaml" "$SIM_URL"
"$BIN" status --db "$W/l.sqlite" >/dev/null 2>&1
arrive() {
  local d; d=$(mktemp -d "$W/stage.XXXX"); make_files "$d" "$2"
  (cd "$d" && for f in *; do printf '%s\t%s\n' "$1-$f" "$(sha256sum -- "$f" | cut -c1-64)" >>"$W/expected.all"; mv "$f" "$W/in/$1-$f"; done)
  rmdir "$d"
}
starts=0
start_watch() { starts=$((starts+1)); "$BIN" watch --db "$W/l.sqlite" --busy-timeout "$BT" --grace 5s "$W/spec.yaml" >/dev/null 2>"$W/watch-$starts.log" & pw=$!; }
start_watch
end=$(( $(date +%s) + STORM )); holds=0; long=0; exits=""; kills=0; next_kill=$(( $(date +%s) + ${KILL_EVERY:-100000} ))
while [ "$(date +%s)" -lt "$end" ]; do
  ms=$(( RANDOM % MAXHOLD_MS + 20 )); holds=$((holds+1)); [ $ms -gt 300 ] && long=$((long+1))
  ( printf '.timeout 20000\nBEGIN IMMEDIATE;\nSELECT 1;\n'; sleep "$(echo "scale=3; $ms/1000" | bc)"; printf 'COMMIT;\n' ) | sqlite3 "$W/l.sqlite" >/dev/null 2>&1
  [ $((RANDOM % 4)) = 0 ] && arrive "h$holds" $((RANDOM % 6 + 1))
  if ! kill -0 $pw 2>/dev/null; then
    wait $pw; rc=$?; msg=$(grep -E "critical|exit|busy|locked" "$W/watch-$starts.log" | tail -1 | cut -c1-200)
    exits="$exits $rc"; echo "watch #$starts ended exit $rc: $msg"; start_watch
  fi
  if [ "$(date +%s)" -ge "$next_kill" ] && kill -0 $pw 2>/dev/null; then
    kill -9 $pw; wait $pw 2>/dev/null; kills=$((kills+1)); start_watch; next_kill=$(( $(date +%s) + KILL_EVERY ))
  fi
  sleep 0.$(( RANDOM % 9 ))
done
echo "kill -9 of the watch during the storm: $kills"
sort -u "$W/expected.all" -o "$W/expected"; nexp=$(wc -l <"$W/expected")
echo "holds: $holds (over 300 ms: $long); watch exits during the storm:${exits:- none}; files: $nexp"
t0=$(date +%s)
while :; do
  n=$(find "$W/out" -name '*.json' ! -name '.*' | wc -l)
  fl=$(sqlite3 "$W/l.sqlite" "select count(*) from documents where state in ('uploading','uploaded','running','recovering','pending')" 2>/dev/null)
  [ "$n" -ge "$nexp" ] && [ "$fl" = 0 ] && break
  [ $(( $(date +%s) - t0 )) -ge "$SETTLE" ] && break
  kill -0 $pw 2>/dev/null || { wait $pw; echo "watch #$starts ended exit $? after the storm"; start_watch; }
  sleep 1
done
bad=0
echo "after the storm + $(( $(date +%s) - t0 ))s: outcomes $n of $nexp; not ended in the live watch: $fl"
sqlite3 "$W/l.sqlite" "select state, count(*) from documents group by state"
if [ "$n" -lt "$nexp" ] || [ "$fl" != 0 ]; then
  echo "BROKEN: documents left without an outcome / in flight in a live watch $SETTLE s after the lock was gone"
  sqlite3 "$W/l.sqlite" "select id, path, state, attempts, updated_at from documents where state not in ('succeeded','dead','rejected','skipped','unresolved') limit 10" 2>/dev/null
  bad=1
fi
kill -TERM $pw; wait $pw; rc=$?; echo "watch #$starts SIGTERM exit $rc"; [ $rc != 0 ] && { echo "BROKEN: watch exit $rc on SIGTERM"; bad=1; }
cat "$W"/watch-*.log | grep -E " error | critical | warning " | sed -E 's/document=[0-9]+//; s/path=[^ ]+//; s/document [0-9]+/document N/; s/[0-9]+ ms/N ms/; s/in [0-9]+ s/in N s/; s/^[^ ]+ //' | cut -c1-200 | sort | uniq -c | sort -rn | head -12
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/final.log"; echo "final run exit $?"; tail -1 "$W/final.log" | cut -c1-200
STRICT=1 python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/l.sqlite" "$W" "$W/expected" | tail -6; arc=${PIPESTATUS[0]}
kill $SIM_PID; [ $bad = 1 ] && exit 1; exit $arc
