#!/usr/bin/env bash
# rows: true with a file column: a row's identity (dedupe key) is its cells, i.e. the file's PATH, not its content.
# Replace files/a.txt with new content and drop a new table naming it: is the row skipped with the old file's result?
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/atk-rowstale.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --seed 2
mkdir -p "$W/in/files"; echo "monday's report" >"$W/in/files/a.txt"
write_spec "$W/spec.yaml" "$SIM_URL" "rows: true"
sed -i 's#^match: {settle: 0s}#match: {settle: 0s, exclude: ["files/**"]}#' "$W/spec.yaml"
printf 'document,language\nfiles/a.txt,en\n' >"$W/in/monday.csv"
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" 2>/dev/null; echo "monday run exit $?"
echo "tuesday's report, completely different" >"$W/in/files/a.txt"
printf 'document,language\nfiles/a.txt,en\n' >"$W/in/tuesday.csv"
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" 2>/dev/null; echo "tuesday run exit $?"
echo "tuesday.csv row 1: $(jq -c '{status, text: .outputs.text, dify}' "$W/out/tuesday.csv.jsonl")"
echo "file now: $(cat "$W/in/files/a.txt")"
n=$(curl -s -H "Authorization: Bearer app-attack" "$SIM_URL/workflows/logs?limit=100" | jq .total); echo "server runs: $n (expected 2: the file changed)"
kill $SIM_PID
grep -q "tuesday" "$W/out/tuesday.csv.jsonl" && exit 0 || { echo "BROKEN: tuesday's table got monday's result"; exit 1; }
