#!/usr/bin/env bash
# attack4: copies of one content (same bytes, other names) arriving together (one scan's batch), later (after the
# original succeeded), and while the original runs, with kill -9 of `watch` in between: every copy ends `skipped`
# with the RIGHT outcome: its own source.path and sha256, `duplicate_of` naming a file of the same content, and the
# outputs of that content's one run (checked against the server's run of that upload); one run per content.
set -u
. "$(dirname "$0")/lib.sh"
CONTENTS=${CONTENTS:-15}; COPIES=${COPIES:-4}
W=$(mktemp -d /tmp/atk-copies.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 300ms --jitter 300ms --drop-after-start-rate 0.1 --too-many-requests-rate 0.05 --seed $RANDOM
write_spec "$W/spec.yaml" "$SIM_URL" "after_success: keep"
mkdir -p "$W/in" "$W/stage"
for c in $(seq 1 "$CONTENTS"); do printf 'content %s %s %s\n' "$c" "$RANDOM" "$(date +%N)" >"$W/stage/c$c-a.txt"; done
# wave 1: each content and a copy together (one scan)
for c in $(seq 1 "$CONTENTS"); do cp "$W/stage/c$c-a.txt" "$W/stage/c$c-b.txt"; done
mv "$W"/stage/* "$W/in/"
"$BIN" watch --db "$W/l.sqlite" --grace 3s "$W/spec.yaml" >/dev/null 2>"$W/w1.log" & p=$!
sleep 0.7
# wave 2: copies while the originals run; then kill -9
for c in $(seq 1 "$CONTENTS"); do cp "$W/in/c$c-a.txt" "$W/stage/c$c-c.txt"; done; mv "$W"/stage/* "$W/in/"
sleep 0.$((RANDOM % 9)); kill -9 $p; wait $p 2>/dev/null
"$BIN" watch --db "$W/l.sqlite" --grace 3s "$W/spec.yaml" >/dev/null 2>"$W/w2.log" & p=$!
for _ in $(seq 1 150); do [ "$(sqlite3 "$W/l.sqlite" "select count(*) from documents where state not in ('succeeded','skipped','dead','rejected','unresolved')")" = 0 ] && break; sleep 0.2; done
# wave 3: copies after the originals succeeded
for c in $(seq 1 "$CONTENTS"); do for k in $(seq 4 "$COPIES"); do cp "$W/in/c$c-a.txt" "$W/stage/c$c-$k.txt"; done; done; mv "$W"/stage/* "$W/in/"
sleep 2; kill -TERM $p; wait $p; echo "watch exit $?"
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/final.log"; echo "final run exit $?: $(tail -1 "$W/final.log" | cut -c1-150)"
sqlite3 "$W/l.sqlite" "select state, count(*) from documents group by 1"
expected_list "$W/in" >"$W/expected"
python3 - "$W" "$SIM_URL" <<'PY'
import json, os, sqlite3, sys, hashlib, urllib.request
w, base = sys.argv[1], sys.argv[2]
def get(p):
    r = urllib.request.Request(base + p, headers={"Authorization": "Bearer app-attack"})
    with urllib.request.urlopen(r, timeout=30) as f: return json.load(f)
db = sqlite3.connect(os.path.join(w, "l.sqlite")); bad = []
sha_of = dict(l.rstrip("\n").split("\t") for l in open(os.path.join(w, "expected")))
outputs_by_sha = {}
for name, sha in sha_of.items():
    p = os.path.join(w, "out", name + ".json")
    if not os.path.exists(p): bad.append(f"{name}: no .json"); continue
    d = json.load(open(p))
    if d["source"]["path"] != name or d["source"]["sha256"] != sha: bad.append(f"{name}: source {d['source']} is not its own")
    st = db.execute("select state, duplicate_of from documents where path=? order by id desc limit 1", (name,)).fetchone()
    if d.get("duplicate_of") is not None or (st and st[0] == "skipped"):
        orig = d.get("duplicate_of")
        if orig not in sha_of or sha_of[orig] != sha: bad.append(f"{name}: duplicate_of {orig!r} is not a file of the same content")
    outputs_by_sha.setdefault(sha, set()).add(json.dumps(d["outputs"], sort_keys=True))
for sha, outs in outputs_by_sha.items():
    if len(outs) != 1: bad.append(f"content {sha[:12]}: {len(outs)} different outputs among its files")
# the server's run of each content: its outputs must be the ones in the outbox
runs = []; page = 1
while True:
    d = get(f"/workflows/logs?page={page}&limit=100"); runs += [it["workflow_run"]["id"] for it in d["data"]]
    if not d["has_more"]: break
    page += 1
per_sha = {}
for rid in runs:
    det = get(f"/workflows/run/{rid}")
    inputs = json.loads(det["inputs"]) if isinstance(det["inputs"], str) else det["inputs"]
    uid = (inputs.get("document") or {}).get("related_id")
    sha = hashlib.sha256(open(os.path.join(w, "store", uid), "rb").read()).hexdigest()
    outs = json.loads(det["outputs"]) if isinstance(det["outputs"], str) else det["outputs"]
    per_sha.setdefault(sha, []).append(json.dumps(outs, sort_keys=True))
for sha, outs in outputs_by_sha.items():
    srv = per_sha.get(sha, [])
    if len(srv) != 1: bad.append(f"content {sha[:12]}: {len(srv)} runs at the server")
    elif srv[0] not in outs: bad.append(f"content {sha[:12]}: outbox outputs differ from the server's run")
for b in bad[:15]: print("BROKEN:", b)
print(f"{len(sha_of)} files, {len(outputs_by_sha)} contents, {len(runs)} runs: {len(bad)} problem(s)")
sys.exit(1 if bad else 0)
PY
rc=$?; kill $SIM_PID; exit $rc
