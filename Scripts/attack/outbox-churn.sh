#!/usr/bin/env bash
# attack4: the outbox changes under a running `watch` between a scan's listing and the settle. Before the start:
# stale `NAME.error.json` (another content's `dead` record), stale `NAME.json` (another content's success),
# symlinks where outcome files go (to a victim file outside the outbox, or dangling). While it works (latency 1 s so
# the window is wide), a churner picks documents the ledger shows pending/uploading/running and, in their outbox
# place: writes a stale `.error.json` or `.json`, or makes a FOLDER named like the result for 0.1-2 s, or a symlink,
# then (for folders) removes it again; new files keep arriving. Checks after everything settled and the churner's
# folders are gone: every file exactly one outcome, a regular file (not a link), whose source.sha256 is the
# file's and whose status matches the ledger; the victims untouched; no temp files; STRICT audit.
# usage: FILES=40 CHURN=40 Scripts/attack/outbox-churn.sh
set -u
. "$(dirname "$0")/lib.sh"
FILES=${FILES:-40}; CHURN=${CHURN:-40}; SETTLE=${SETTLE:-120}
W=$(mktemp -d /tmp/atk-churn.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 1s --jitter 500ms --too-many-requests-rate 0.05 --seed $RANDOM
make_files "$W/in" "$FILES"; expected_list "$W/in" >"$W/expected.all"
mkdir -p "$W/out" "$W/victims"
write_spec "$W/spec.yaml" "$SIM_URL"
stale_error() { printf '{"status":"dead","job":"spec","source":{"path":"%s","sha256":"%s","bytes":1},"error":{"code":"x","message":"stale"},"attempts":1}\n' "$1" "$(printf %064d 0)" >"$W/out/$1.error.json"; }
stale_json() { printf '{"status":"succeeded","job":"spec","source":{"path":"%s","sha256":"%s","bytes":1},"outputs":{"text":"stale"}}\n' "$1" "$(printf %064d 1)" >"$W/out/$1.json"; }
victim() { printf 'victim %s\n' "$1" >"$W/victims/$1"; }
i=0
for f in $(ls "$W/in"); do
  i=$((i+1))
  case $((i % 6)) in
    0) stale_error "$f";; 1) stale_json "$f";; 2) victim "$f.json"; ln -s "$W/victims/$f.json" "$W/out/$f.json";;
    3) victim "$f.error.json"; ln -s "$W/victims/$f.error.json" "$W/out/$f.error.json";; 4) ln -s "$W/nowhere/$f" "$W/out/$f.json";;
  esac
done
(cd "$W/victims" && sha256sum * >"$W/victims.sum")
"$BIN" watch --db "$W/l.sqlite" --grace 5s "$W/spec.yaml" >/dev/null 2>"$W/watch.log" & pw=$!
arrive() {
  local d; d=$(mktemp -d "$W/stage.XXXX"); make_files "$d" "$2"
  (cd "$d" && for f in *; do printf '%s\t%s\n' "$1-$f" "$(sha256sum -- "$f" | cut -c1-64)" >>"$W/expected.all"; mv "$f" "$W/in/$1-$f"; done)
  rmdir "$d"
}
declare -A did
for c in $(seq 1 "$CHURN"); do
  [ $((c % 5)) = 0 ] && arrive "c$c" 3
  p=$(sqlite3 "$W/l.sqlite" "select path from documents where state in ('pending','uploading','uploaded','running') order by random() limit 1" 2>/dev/null)
  [ -z "$p" ] && { sleep 0.3; continue; }
  k=$((RANDOM % 5))
  case $k in
    0) [ -e "$W/out/$p.error.json" ] || stale_error "$p"; did[stale_error]=$(( ${did[stale_error]:-0}+1 ));;
    1) [ -e "$W/out/$p.json" ] || stale_json "$p"; did[stale_json]=$(( ${did[stale_json]:-0}+1 ));;
    2|3) sfx=.json; [ $k = 3 ] && sfx=.error.json
       if [ ! -e "$W/out/$p$sfx" ] && mkdir "$W/out/$p$sfx" 2>/dev/null; then
         did[folder]=$(( ${did[folder]:-0}+1 )); (sleep 0.$((RANDOM % 20 + 1)); sleep 0.$((RANDOM % 9)); rmdir "$W/out/$p$sfx" 2>/dev/null || rm -rf "$W/out/$p$sfx") &
       fi;;
    4) victim "$p.late"; [ -e "$W/out/$p.error.json" ] || ln -s "$W/victims/$p.late" "$W/out/$p.error.json" 2>/dev/null; did[symlink]=$(( ${did[symlink]:-0}+1 ));;
  esac
  sleep 0.$((RANDOM % 4))
done
wait_bg() { for j in $(jobs -p); do [ "$j" != "$pw" ] && [ "$j" != "$SIM_PID" ] && wait "$j" 2>/dev/null; done; }
wait_bg
(cd "$W/victims" && for f in *.late; do [ -f "$f" ] && sha256sum "$f"; done) >>"$W/victims.sum" 2>/dev/null
echo "churn: stale_error=${did[stale_error]:-0} stale_json=${did[stale_json]:-0} folder=${did[folder]:-0} symlink=${did[symlink]:-0}"
sort -u "$W/expected.all" -o "$W/expected"; nexp=$(wc -l <"$W/expected")
t0=$(date +%s)
while :; do
  fl=$(sqlite3 "$W/l.sqlite" "select count(*) from documents where state in ('uploading','uploaded','running','recovering','pending','failed')" 2>/dev/null)
  nd=$(sqlite3 "$W/l.sqlite" "select count(distinct path) from documents" 2>/dev/null)
  [ "$fl" = 0 ] && [ "$nd" -ge "$nexp" ] && break
  [ $(( $(date +%s) - t0 )) -ge "$SETTLE" ] && break
  sleep 1
done
echo "settled after $(( $(date +%s) - t0 ))s; not ended: $fl"
sqlite3 "$W/l.sqlite" "select state, last_error_code, count(*) from documents group by 1,2"
kill -TERM $pw; wait $pw; echo "watch SIGTERM exit $?"
grep -E " (warning|error) " "$W/watch.log" | sed -E 's/^[^ ]+ //; s/path=[^ ]+ //; s/document=[0-9]+ //; s/c?[0-9]*-?file-[0-9]+\.txt/F/g' | cut -c1-180 | sort | uniq -c | sort -rn | head -12
bad=0
python3 - "$W" <<'PY' || bad=1
import json, os, sqlite3, sys, hashlib
w = sys.argv[1]; out = os.path.join(w, "out"); db = sqlite3.connect(os.path.join(w, "l.sqlite"))
bad = []
for line in open(os.path.join(w, "expected")):
    name, sha = line.rstrip("\n").split("\t")
    row = db.execute("select state, last_error_code, output_path from documents where path=? order by id desc limit 1", (name,)).fetchone()
    st = row[0] if row else None
    if row and row[0] == "rejected" and row[1] == "outbox_blocked" and row[2] is None:
        # README: a folder in the way of the .error.json itself: recorded rejected, no outcome file (documented)
        print(f"documented: {name} rejected outbox_blocked, its .error.json could not be written (the churner's folder)"); continue
    found = []
    for sfx in (".json", ".error.json"):
        p = os.path.join(out, name + sfx)
        if os.path.islink(p): bad.append(f"{name}{sfx} is a symlink (state {st})"); continue
        if os.path.isdir(p): bad.append(f"{name}{sfx} is a folder (state {st})"); continue
        if os.path.isfile(p): found.append((sfx, json.load(open(p))))
    if len(found) != 1: bad.append(f"{name}: {len(found)} outcome files {[f[0] for f in found]} (state {st})"); continue
    sfx, d = found[0]
    if (d.get("source") or {}).get("sha256") not in (sha, None if st == "rejected" else sha):
        bad.append(f"{name}{sfx}: source.sha256 {str((d.get('source') or {}).get('sha256'))[:12]} is not the file's {sha[:12]} (state {st}, status {d.get('status')})")
    want = {"succeeded": ".json", "skipped": ".json"}.get(st, ".error.json")
    if sfx != want: bad.append(f"{name}: outcome {sfx} but ledger state {st}")
for b in bad: print("BROKEN:", b)
print(f"outcome check: {len(bad)} problem(s)")
sys.exit(1 if bad else 0)
PY
(cd "$W/victims" && sha256sum -c --quiet "$W/victims.sum") || { echo "BROKEN: a victim file outside the outbox was changed"; bad=1; }
tmp=$(find "$W/out" -name '.dify-batch-*.tmp' | wc -l); [ "$tmp" != 0 ] && { echo "BROKEN: $tmp temp files in the outbox"; bad=1; }
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/final.log"; echo "final run exit $?"; tail -1 "$W/final.log" | cut -c1-200
STRICT=1 python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/l.sqlite" "$W" "$W/expected" | tail -6; arc=${PIPESTATUS[0]}
kill $SIM_PID; [ $bad = 1 ] && exit 1; exit $arc
