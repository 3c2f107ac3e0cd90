#!/usr/bin/env bash
# The same bytes dropped three times (a.txt, b.txt, c.txt) into a completion app whose streams are cut after the
# run started (billed, but a completion run cannot be looked up: unresolved). README: "The same file dropped three
# times in one batch | one run". Does each copy send (and get billed) after the first ended unresolved?
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/atk-dupun.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --mode completion --drop-after-start-rate 1.0 --latency 100ms --seed 2
mkdir -p "$W/in"; for f in a b c; do echo "the very same bytes" >"$W/in/$f.txt"; done
write_spec "$W/spec.yaml" "$SIM_URL"
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" 2>"$W/run.log" >/dev/null; echo "run exit $?"; tail -1 "$W/run.log"
sqlite3 "$W/l.sqlite" "select path, state, run_posts, duplicate_of, last_error_code from documents"
echo "run POSTs sent for one content: $(sqlite3 "$W/l.sqlite" "select sum(run_posts) from documents")"
kill $SIM_PID
