#!/usr/bin/env python3
"""Audit a dify-batch job against `dify-batch simulate` (workflow mode).

usage: audit.py BASE_URL KEY STORAGE_DIR LEDGER.sqlite JOB_DIR [EXPECTED_FILES_LIST]

Counts at the server: every run (GET /v1/workflows/logs, all pages; GET /v1/workflows/run/{id} for its inputs),
mapped to the uploaded bytes' sha256 through the simulator's --storage folder. Then checks the promise:
  * every input (name + sha256 from EXPECTED_FILES_LIST, written before the attack) has exactly one visible
    outcome in JOB_DIR/out (NAME.json or NAME.error.json, not both) and its source in in/, done/ or failed/;
  * no content was run more than once by the server (paid twice) unless the ledger counts it (duplicate_runs);
    a failed run and its retry are allowed, except with STRICT=1 (faults that never fail a run at the server);
  * ledger usage total_tokens == tokens the server reported for its runs.
Prints findings; exit 1 when the promise is broken.
"""
import hashlib, json, os, sqlite3, sys, urllib.error, urllib.request
from collections import defaultdict

base, key, storage, ledger, jobdir = sys.argv[1:6]
expected = sys.argv[6] if len(sys.argv) > 6 else None

def get(path):
    # the simulator's lookup faults (--run-detail-not-found-first, --logs-bad-gateway-first) hit us too: ask again
    for attempt in range(20):
        req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + key})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code not in (404, 502) or attempt == 19: raise

runs = []
page = 1
while True:
    d = get(f"/workflows/logs?page={page}&limit=100")
    runs += [it["workflow_run"] for it in d["data"]]
    if not d["has_more"]: break
    page += 1

def sha_of_upload(uid):
    p = os.path.join(storage, uid)
    try:
        with open(p, "rb") as f: return hashlib.sha256(f.read()).hexdigest()
    except OSError: return None

runs_by_sha = defaultdict(list)
server_tokens = 0
for r in runs:
    det = get(f"/workflows/run/{r['id']}")
    inputs = json.loads(det["inputs"]) if isinstance(det["inputs"], str) else det["inputs"]
    doc = inputs.get("document") or {}
    uid = doc.get("related_id")
    sha = sha_of_upload(uid) if uid else None
    other = {k: v for k, v in inputs.items() if k != "document" and not k.startswith("sys.")}
    if other: sha = f"{sha}+{json.dumps(other, sort_keys=True)}"   # rows: the same file with other inputs is another run
    runs_by_sha[sha].append((r["id"], det["status"], det["total_tokens"], doc.get("filename")))
    server_tokens += det["total_tokens"] or 0

class PG:
    """psql-backed stand-in for sqlite3.Connection (ledger given as a postgres:// URL)."""
    def __init__(self, url): self.url = url
    def execute(self, sql, params=()):
        import subprocess
        for p in params: sql = sql.replace("?", "'" + str(p).replace("'", "''") + "'", 1)
        out = subprocess.run(["psql", self.url, "-AtF", "\t", "-c", sql], capture_output=True, text=True, check=True).stdout
        rows = [tuple(None if c == "" else (int(c) if c.lstrip("-").isdigit() else c) for c in l.split("\t")) for l in out.splitlines()]
        class R:
            def fetchone(s): return rows[0] if rows else None
            def fetchall(s): return rows
        return R()
db = PG(ledger) if ledger.startswith("postgres") else sqlite3.connect(ledger)
ledger_tokens = db.execute("select coalesce(sum(total_tokens),0) from usage").fetchone()[0]
ledger_usage_runs = db.execute("select count(*) from usage").fetchone()[0]
usage_dupe = db.execute("select dify_run_id, count(*) from usage group by dify_run_id having count(*)>1").fetchall()
dups = dict(db.execute("select sha256, sum(duplicate_runs) from documents group by sha256").fetchall())
states = db.execute("select state, count(*) from documents group by state").fetchall()
broken = []
print(f"server: {len(runs)} runs, {server_tokens} tokens; ledger: {ledger_usage_runs} usage rows, {ledger_tokens} tokens; states {states}")
if usage_dupe: broken.append(f"usage counted twice for runs {usage_dupe}")
if ledger_tokens != server_tokens:
    broken.append(f"ledger tokens {ledger_tokens} != server tokens {server_tokens}")
for sha, rs in runs_by_sha.items():
    ok_runs = [r for r in rs if r[1] != "failed"]
    # STRICT=1 (no fault that makes a run fail at the server, so no legitimate second run): any second run counts
    if len(rs) > 1 + (dups.get(sha) or 0) and (len(ok_runs) > 1 or os.environ.get("STRICT") == "1"):
        broken.append(f"content {str(sha)[:12]} ({rs[0][3]}) run {len(rs)} times at the server (duplicate_runs={dups.get(sha)}): {[r[:2] for r in rs]}")

if expected:
    out = os.path.join(jobdir, "out")
    for line in open(expected):
        name, sha = line.rstrip("\n").split("\t")
        ok = os.path.exists(os.path.join(out, name + ".json"))
        err = os.path.exists(os.path.join(out, name + ".error.json"))
        where = [d for d in ("in", "done", "failed") if os.path.exists(os.path.join(jobdir, d, name))]
        st = db.execute("select state from documents where path=? order by id desc limit 1", (name,)).fetchone()
        if ok == err:
            broken.append(f"{name}: outcome files json={ok} error.json={err} (state {st})")
        if not where:
            broken.append(f"{name}: source is nowhere (in/done/failed)")
        if len(where) > 1:
            broken.append(f"{name}: source in several places {where}")
        if sha not in runs_by_sha and ok:
            # succeeded without a server run is fine only for skipped duplicates
            if st and st[0] not in ("skipped",):
                broken.append(f"{name}: .json written but the server never ran its content (state {st})")
for b in broken: print("BROKEN:", b)
print("OK" if not broken else f"{len(broken)} problem(s)")
sys.exit(1 if broken else 0)
