#!/usr/bin/env bash
# Replace / append / truncate / rename inbox files while `run` has them queued or in flight (concurrency 1,
# slow runs), then run again and audit: every name present at the end has one outcome, the outbox .json of a
# path holds the content that is now archived, nothing lost.
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/atk-mutate.XXXX); echo "work: $W"
export ATTACK_KEY=app-attack
start_sim "$W" app-attack --latency 400ms --seed 3
make_files "$W/in" 10
# big file so its upload takes a moment
head -c 12000000 /dev/urandom | base64 -w 100 > "$W/in/big.txt"
write_spec "$W/spec.yaml" "$SIM_URL" "concurrency: 1"
sed -i 's/^concurrency: 6$//' "$W/spec.yaml"
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run1.log" &
p=$!
sleep 0.6
cd "$W/in"
echo "appended" >> file-9.txt            # queued: append (same inode)
: > file-8.txt; echo "short" > file-8.txt # queued: truncate + rewrite (same inode)
printf 'replacement 7\n' > ../r7 && mv ../r7 file-7.txt   # queued: replace (new inode)
mv file-6.txt file-6-renamed.txt          # queued: rename
for f in file-*.txt big.txt; do :; done
# whatever is in flight now: rewrite it in place
inflight=$(sqlite3 "$W/l.sqlite" "select path from documents where state in ('uploading','uploaded','running') limit 1" 2>/dev/null)
echo "in flight at mutation: ${inflight:-none}"
[ -n "$inflight" ] && [ -f "$inflight" ] && echo "rewritten in flight" >> "$inflight"
cd - >/dev/null
wait $p; echo "run 1 exit $?"
"$BIN" run --db "$W/l.sqlite" "$W/spec.yaml" >/dev/null 2>"$W/run2.log"; echo "run 2 exit $?"
echo "--- ledger"; sqlite3 "$W/l.sqlite" "select id, path, state, last_error_code, substr(sha256,1,8) from documents order by path, id"
echo "--- check: each path's newest version has a matching outcome"
fail=0
for d in in done; do ls "$W/$d"; done
for f in $(cd "$W/done" && ls) $(cd "$W/in" && ls); do
  src="$W/done/$f"; [ -f "$src" ] || src="$W/in/$f"
  sha=$(sha256sum "$src" | cut -c1-64)
  if [ -f "$W/out/$f.json" ]; then
    osha=$(jq -r .source.sha256 "$W/out/$f.json")
    [ "$osha" = "$sha" ] || { echo "BROKEN: $f: out/$f.json is for $osha but the file kept is $sha ($src)"; fail=1; }
  elif [ -f "$W/out/$f.error.json" ]; then echo "error: $f $(jq -c .error.code "$W/out/$f.error.json")"
  else echo "BROKEN: $f has no outcome"; fail=1; fi
done
find "$W/in" "$W/done" -type f | wc -l
kill $SIM_PID; exit $fail
