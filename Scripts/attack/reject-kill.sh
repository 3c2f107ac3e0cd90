#!/usr/bin/env bash
# attack4: kill -9 of `watch` while its scan rejects many files at once (over match.max_size: rejected before any
# upload, `.error.json` written), ROUNDS times with a burst of BURST files each; some bursts reuse names whose
# earlier version succeeded (their stale `.json` must give way to the rejection's `.error.json`). After a final
# clean `run`: every file exactly one outcome, of its newest content; rejected documents have their .error.json.
set -u
. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-8}; BURST=${BURST:-120}
W=$(mktemp -d /tmp/atk-rejkill.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 30ms --seed $RANDOM
write_spec "$W/spec.yaml" "$SIM_URL" "after_success: keep"
sed -i 's/^match: {settle: 0s}/match: {settle: 0s, max_size: 1KB}/' "$W/spec.yaml"
mkdir -p "$W/in"
# small files that succeed first (names reused later by big versions)
for i in $(seq 1 20); do printf 'small %s %s\n' "$i" "$RANDOM" >"$W/in/reuse-$i.txt"; done
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/first.log"; echo "first run exit $? ($(ls "$W/out" | grep -c '\.json$') outcomes)"
big() { mkdir -p "$W/stage"; head -c 1500 /dev/urandom | base64 -w 100 >"$W/stage/$1"; printf '%s\n' "$2" >>"$W/stage/$1"; }
for r in $(seq 1 "$ROUNDS"); do
  "$BIN" watch --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/watch-$r.log" & p=$!
  for i in $(seq 1 "$BURST"); do big "r$r-big-$i.txt" "$r $i"; done
  [ "$r" = 2 ] && for i in $(seq 1 20); do big "reuse-$i.txt" "reuse $i"; done
  sleep 1; mv "$W"/stage/* "$W/in/"   # the burst appears at once
  sleep 0.$(printf '%03d' $(( RANDOM % 400 + 20 )))
  n=$(sqlite3 "$W/l.sqlite" "select count(*) from documents where state='rejected'")
  kill -9 $p; wait $p 2>/dev/null
  m=$(sqlite3 "$W/l.sqlite" "select count(*) from documents where state='rejected' and output_path is null")
  echo "round $r: killed with $n rejected in the ledger, $m of them without an outcome path"
done
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/final.log"; echo "final run exit $?: $(tail -1 "$W/final.log" | cut -c1-150)"
expected_list "$W/in" >"$W/expected"
python3 - "$W" <<'PY'
import json, os, sqlite3, sys
w = sys.argv[1]; db = sqlite3.connect(os.path.join(w, "l.sqlite")); bad = []
for line in open(os.path.join(w, "expected")):
    name, sha = line.rstrip("\n").split("\t")
    st, op = db.execute("select state, output_path from documents where path=? order by id desc limit 1", (name,)).fetchone() or (None, None)
    j, e = (os.path.join(w, "out", name + s) for s in (".json", ".error.json"))
    have = [s for s, p in ((".json", j), (".error.json", e)) if os.path.exists(p)]
    want = ".error.json" if st == "rejected" else ".json"
    if have != [want]:
        extra = ""
        if os.path.exists(j): extra = " (.json is of content " + str(json.load(open(j))["source"]["sha256"])[:12] + ", file is " + sha[:12] + ")"
        bad.append(f"{name}: state {st}, output_path {op}, outcome files {have}{extra}")
for b in bad[:12]: print("BROKEN:", b)
print(f"{len(bad)} file(s) without their one right outcome")
sys.exit(1 if bad else 0)
PY
rc=$?; kill $SIM_PID; exit $rc
