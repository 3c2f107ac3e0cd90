#!/usr/bin/env bash
# rows: true tables (CSV with a BOM, quoted fields with commas/quotes/newlines, CRLF, duplicate rows, invalid
# rows, a malformed row; a JSONL table) against a workflow app, `run` killed -9 at random moments, then run to
# the end. Checks: each table has .jsonl+.csv with one line per data row; no inputs run twice at the server;
# ledger usage == server tokens.
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/atk-rows.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 150ms --jitter 300ms --drop-after-start-rate 0.25 --seed ${SEED:-11}
mkdir -p "$W/in/files"
for i in $(seq 1 30); do printf 'row file %s %s\n' $i $RANDOM >"$W/in/files/f$i.txt"; done
{
  printf '\xef\xbb\xbf'
  printf 'document,language,note\r\n'
  for i in $(seq 1 30); do printf 'files/f%s.txt,"en, ""quoted""\r\nline",n%s\r\n' $i $i; done
  printf 'files/f1.txt,"en, ""quoted""\r\nline",dup-of-1\r\n'      # duplicate inputs of row 1
  printf 'files/missing.txt,en,bad\r\n'                              # names no file: invalid
  printf ',en,empty-required\r\n'                                    # required document empty: invalid
  printf 'files/f2.txt,en,too,many,fields\r\n'                       # malformed
  printf 'files/f3.txt,%s,too-long-language\r\n' "$(printf 'x%.0s' $(seq 1 40))"   # max_length 32: invalid
} >"$W/in/table.csv"
{ for i in $(seq 1 10); do printf '{"document":"files/f%s.txt","language":"de"}\n' $i; done; echo '[1,2]'; echo; echo '{"document":"files/f1.txt","language":"de"}'; } >"$W/in/t2.jsonl"
write_spec "$W/spec.yaml" "$SIM_URL" "rows: true"
sed -i 's#^match: {settle: 0s}#match: {settle: 0s, exclude: ["files/**"]}#' "$W/spec.yaml"
"$BIN" check "$W/spec.yaml" 2>&1 | sed -n '/inbox:/,$p' | head -20
for r in $(seq 1 ${KILLS:-12}); do
  "$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run-$r.log" &
  p=$!; sleep "0.$(( RANDOM % 90 + 10 ))"; kill -9 $p 2>/dev/null; wait $p 2>/dev/null
done
for r in 1 2; do "$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/final-$r.log"; echo "final run $r exit $?"; tail -1 "$W/final-$r.log"; done
ls -R "$W/out" "$W/done" 2>&1 | head; 
for t in table.csv t2.jsonl; do
  [ -f "$W/out/$t.jsonl" ] && echo "$t: $(wc -l <"$W/out/$t.jsonl") jsonl lines; $(jq -r .status "$W/out/$t.jsonl" | sort | uniq -c | tr '\n' ' ')"
done
sqlite3 "$W/l.sqlite" "select state, count(*) from documents where row_of is not null group by 1"
python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$W/l.sqlite" "$W"; rc=$?
kill $SIM_PID; exit $rc
