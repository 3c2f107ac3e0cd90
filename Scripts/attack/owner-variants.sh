#!/usr/bin/env bash
# One ledger per inbox, variants: (a) ledger B with --take-over-inbox while ledger A's watch runs (exit 5? who owns
# the inbox after?); (b) both .dify-batch-owner markers corrupted (truncated) then ledger B without take-over;
# (c) after take-over, outbox results edited by hand (truncated JSON, wrong sha256) with after_success: keep.
# Prints exit codes and server run counts; audit at the end. By design (README) (c) re-runs exactly the 2 edited
# files (the edited results are no longer evidence), so the audit reports those 2 contents run twice and D's usage
# short of the server's: any OTHER finding is a broken promise.
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/atk-own.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 200ms --seed 9
runs() { curl -s -H "Authorization: Bearer app-attack" "$SIM_URL/workflows/logs?limit=100" | jq .total; }
make_files "$W/in" 8; expected_list "$W/in" >"$W/expected"
write_spec "$W/spec.yaml" "$SIM_URL" "after_success: keep"
"$BIN" watch --db "$W/a.sqlite" "$W/spec.yaml" 2>"$W/a.log" & pa=$!
for _ in $(seq 1 300); do [ "$(ls "$W/out" 2>/dev/null | grep -c '\.json$')" -ge 8 ] && break; sleep 0.1; done
"$BIN" run --db "$W/b.sqlite" --take-over-inbox "$W/spec.yaml" 2>"$W/b1.log"; echo "(a) B --take-over-inbox while A's watch runs: exit $? ($(tail -1 "$W/b1.log" | cut -c1-160))"
echo "    owner now: $(jq -r .ledger "$W/in/.dify-batch-owner") / $(jq -r .ledger "$W/out/.dify-batch-owner")"
kill -TERM $pa; wait $pa; echo "    A's watch exit $?; server runs $(runs)"
"$BIN" run --db "$W/a.sqlite" "$W/spec.yaml" 2>"$W/a2.log"; echo "    A run again: exit $? ($(grep -o 'belongs to another ledger: [^ ]*' "$W/a2.log" | head -1))"
# (b) corrupt both markers
for m in "$W/in/.dify-batch-owner" "$W/out/.dify-batch-owner"; do head -c 20 "$m" >"$m.t" && mv "$m.t" "$m"; done
"$BIN" run --db "$W/c.sqlite" "$W/spec.yaml" 2>"$W/c.log"; echo "(b) ledger C, both markers truncated, no take-over: exit $? ; server runs $(runs) ($(grep -c 'already in the outbox' "$W/c.log") adopted)"
# (c) edit outbox results, take over with D
python3 - "$W/out/file-1.txt.json" "$W/out/file-2.txt.json" <<'PY'
import json, sys
p1, p2 = sys.argv[1:3]
data = open(p1).read(); open(p1, "w").write(data[: len(data) // 2])
d = json.load(open(p2)); d["source"]["sha256"] = "0" * 64; json.dump(d, open(p2, "w"))
PY
"$BIN" run --db "$W/d.sqlite" --take-over-inbox "$W/spec.yaml" 2>"$W/d.log"; echo "(c) ledger D takes over, file-1 result truncated, file-2 sha256 wrong: exit $?; server runs $(runs) (expect 10: 8 + the 2 edited)"
grep -E "file-[12].txt" "$W/d.log" | cut -c1-200 | tail -4
python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/d.sqlite" "$W" "$W/expected" | tail -3
kill $SIM_PID
