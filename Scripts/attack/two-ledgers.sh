#!/usr/bin/env bash
# Two ledgers on one inbox: (a) concurrently (second must exit 5, nothing sent twice); (b) one after the other
# with after_success: keep (the second ledger knows nothing of the first: does it run and bill everything again?)
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/atk-2led.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 300ms --seed 4
make_files "$W/in" 12; expected_list "$W/in" >"$W/expected"
write_spec "$W/spec.yaml" "$SIM_URL"
ln -s "$W/in" "$W/in-link"; sed 's#^inbox: in#inbox: in-link#; s#^outbox: out#outbox: out2#; s#^archive: done#archive: done2#' "$W/spec.yaml" >"$W/spec2.yaml"
"$BIN" run --db "$W/a.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/a.log" & pa=$!
sleep 0.5
"$BIN" run --db "$W/b.sqlite" "$W/spec2.yaml" >/dev/null 2>"$W/b.log"; echo "(a) second ledger, symlinked inbox, concurrently: exit $? ($(tail -1 "$W/b.log" | cut -c1-200))"
wait $pa; echo "first exit $?"
python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/a.sqlite" "$W" "$W/expected" | tail -2
# (b) keep: files stay in the inbox
kill $SIM_PID; W2=$W/b; mkdir -p $W2; start_sim "$W2" app-attack --seed 4
make_files "$W2/in" 5; expected_list "$W2/in" >"$W2/expected"
write_spec "$W2/spec.yaml" "$SIM_URL" "after_success: keep"
"$BIN" run --db "$W2/a.sqlite" "$W2/spec.yaml" 2>/dev/null; echo "(b) ledger A exit $?"
"$BIN" run --db "$W2/b.sqlite" "$W2/spec.yaml" 2>"$W2/b.log"; echo "(b) ledger B on the same inbox+outbox after A: exit $?"; tail -1 "$W2/b.log"
n=$(curl -s -H "Authorization: Bearer app-attack" "$SIM_URL/workflows/logs?limit=100" | jq .total)
echo "(b) server runs for 5 files: $n"
kill $SIM_PID
