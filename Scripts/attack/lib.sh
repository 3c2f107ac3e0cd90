# Shared helpers for the attack scripts. Source it; needs python3, sqlite3, curl.
BIN=${BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.build/debug/dify-batch}
AUDIT=$(dirname "${BASH_SOURCE[0]}")/audit.py

# start_sim DIR KEY [simulate options...] -> sets SIM_URL, SIM_PID; uploads kept in DIR/store
start_sim() {
  local dir=$1 key=$2; shift 2
  mkdir -p "$dir/store"
  "$BIN" simulate --key "$key" --storage "$dir/store" "$@" >"$dir/sim.url" 2>"$dir/sim.log" &
  SIM_PID=$!
  for _ in $(seq 1 300); do [ -s "$dir/sim.url" ] && break; sleep 0.1; done
  SIM_URL=$(head -1 "$dir/sim.url")
}

# make_files INBOX N -> N text files with distinct content
make_files() {
  mkdir -p "$1"
  for i in $(seq 1 "$2"); do printf 'document %s\nunique %s %s\n' "$i" "$RANDOM" "$(date +%s%N)" >"$1/file-$i.txt"; done
}

# expected_list INBOX > LIST : name<TAB>sha256 for every file now in INBOX
expected_list() { ( cd "$1" && for f in *; do printf '%s\t%s\n' "$f" "$(sha256sum -- "$f" | cut -c1-64)"; done ); }

# write_spec FILE URL [extra yaml lines...]
write_spec() {
  local f=$1 url=$2; shift 2
  {
    echo "inbox: in"; echo "outbox: out"; echo "archive: done"
    echo "dify: {base_url: $url, api_key_env: ATTACK_KEY, response_mode: ${RESPONSE_MODE:-streaming}}"
    echo "match: {settle: 0s}"
    echo "concurrency: 6"
    echo "retry: {max_attempts: 3, base_delay: 20ms, max_delay: 300ms, max_backpressure: 30s}"
    echo "recover_deadline: ${RECOVER:-5s}"
    for l in "$@"; do echo "$l"; done
  } >"$f"
}

# A fresh PostgreSQL database on $PGURL (no database part): sets W (work folder named after $1), DB (its URL)
# and ATTACK_KEY. Exits 2 when the database cannot be created.
pg_workspace() {
  : "${PGURL:?set PGURL=postgres://USER@127.0.0.1:PORT (no database; private cluster: .ci/postgres-cluster start)}"
  W=$(mktemp -d "/tmp/atk-$1.XXXX"); echo "work: $W"
  DBN=atk_$RANDOM; psql "$PGURL/postgres" -qc "create database $DBN" || exit 2
  DB="$PGURL/$DBN?sslmode=disable"
  export ATTACK_KEY=app-attack
}
