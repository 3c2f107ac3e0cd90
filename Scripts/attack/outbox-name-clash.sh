#!/usr/bin/env bash
# Two inbox paths whose outbox names clash: file `d.txt` (→ out/d.txt.json) and folder `d.txt.json/` holding
# `e.txt` (→ out/d.txt.json/e.txt.json needs out/d.txt.json to be a folder). Both are paid for; can both outcomes
# be written?
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/atk-clash.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --seed 2
mkdir -p "$W/in/d.txt.json"; echo "the file d" >"$W/in/d.txt"; echo "the file e" >"$W/in/d.txt.json/e.txt"
write_spec "$W/spec.yaml" "$SIM_URL"
"$BIN" check "$W/spec.yaml" 2>&1 | grep -E 'inbox|result|clash|d.txt'
for i in 1 2; do "$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" 2>"$W/run$i.log" >/dev/null; echo "run $i exit $?"; grep -v ' info ' "$W/run$i.log" | tail -2 | cut -c1-300; done
sqlite3 "$W/l.sqlite" "select path, state, last_error_class, last_error_code from documents"
find "$W/out" | sort
n=$(curl -s -H "Authorization: Bearer app-attack" "$SIM_URL/workflows/logs?limit=100" | jq .total); echo "server runs: $n"
kill $SIM_PID
