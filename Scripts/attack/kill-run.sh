#!/usr/bin/env bash
# kill -9 `dify-batch run` at random moments against a faulty simulator, then run to the end and audit:
# every file one outcome, no content run twice at the server, ledger usage == server tokens.
# usage: Scripts/attack/kill-run.sh [FILES] [KILLS] [simulate fault options...]
set -u
. "$(dirname "$0")/lib.sh"
FILES=${1:-40}; KILLS=${2:-15}; shift 2 2>/dev/null || true
FAULTS=("$@"); [ ${#FAULTS[@]} -eq 0 ] && FAULTS=(--latency 80ms --jitter 200ms --drop-after-start-rate 0.2 --error-rate 0.05 --bad-gateway-rate 0.05 --too-many-requests-rate 0.1 --seed $RANDOM)
W=$(mktemp -d /tmp/atk-killrun.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack "${FAULTS[@]}"
make_files "$W/in" "$FILES"; expected_list "$W/in" >"$W/expected"
write_spec "$W/spec.yaml" "$SIM_URL"
CMD=${CMD:-run}   # CMD=watch kills `watch` instead (files keep arriving while it runs)
for r in $(seq 1 "$KILLS"); do
  [ "$CMD" = watch ] && make_files "$W/in/r$r" 2 && (cd "$W/in" && for f in r$r/*; do mv "$f" "r$r-${f#r$r/}"; done; rmdir r$r) && expected_list "$W/in" >>"$W/expected.all"
  "$BIN" "$CMD" --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run-$r.log" &
  p=$!; sleep "0.$(( RANDOM % 90 + 5 ))"; kill -9 $p 2>/dev/null; wait $p 2>/dev/null
done
[ -f "$W/expected.all" ] && sort -u "$W/expected" "$W/expected.all" -o "$W/expected"
for r in 1 2; do "$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/final-$r.log"; echo "final run $r exit $?"; done
tail -2 "$W/final-2.log"
python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/l.sqlite" "$W" "$W/expected"; rc=$?
kill $SIM_PID; exit $rc
