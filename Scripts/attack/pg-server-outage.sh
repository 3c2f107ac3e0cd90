#!/usr/bin/env bash
# The PostgreSQL server goes away while PROCS `run` (CMD=watch: `watch`) processes share its ledger on one inbox of
# FILES files (latency, dropped streams): ROUNDS times, at a random moment, one of
#   restart-fast / restart-immediate (pg_ctl restart -m fast|immediate),
#   stop-fast / stop-immediate for 5-20 s, then start again.
# After each outage: which processes ended (exit code, last stderr line), which kept going. A process that ended is
# started again while the job has work. Every wait is bounded (BOUND s after the last outage: a HANG is reported and
# killed -9). Then a final `run` and the audit (STRICT=1: no content run twice at the server).
# THE CLUSTER IS RESTARTED: give this script its own cluster (not one a test suite or another script uses).
# usage: eval "$(.ci/postgres-cluster start)"; PGDIR=$DIFY_BATCH_TEST_POSTGRES_DIR PGURL=postgres://postgres@127.0.0.1:PORT \
#          Scripts/attack/pg-server-outage.sh      env: FILES=200 PROCS=2 CMD=run LEASE=3s ROUNDS=4 SEED=31 BOUND=120 DURABLE=1 OUTAGES="..." LOGLEVEL=info
set -u
. "$(dirname "$0")/lib.sh"
: "${PGDIR:?set PGDIR to the cluster folder (DIFY_BATCH_TEST_POSTGRES_DIR)}"
FILES=${FILES:-200}; PROCS=${PROCS:-2}; CMD=${CMD:-run}; LEASE=${LEASE:-3s}; ROUNDS=${ROUNDS:-4}; BOUND=${BOUND:-120}
OUTAGES=${OUTAGES:-restart-fast restart-immediate stop-fast stop-immediate}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V -r | head -1)
PORT=${PGURL##*:}
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u "$(stat -c %U "$PGDIR/data")" -- "$@"; else "$@"; fi; }
pgctl() { as_owner "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 "$@" >/dev/null; }
# DURABLE=1 (default): the server runs with fsync, synchronous_commit and full_page_writes on, as in production. The
# test cluster's own settings (all off) lose the last committed transactions on `-m immediate` (a crash), which makes
# any product look like it paid a run twice; DURABLE=0 keeps them to show that.
if [ "${DURABLE:-1}" = 1 ]; then dur="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"; else dur="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"; fi
OPTS="-h 127.0.0.1 -p $PORT -k $PGDIR $dur -c max_connections=200"
pgstart() { pgctl -o "$OPTS" start; }
pgctl -m fast -o "$OPTS" restart   # the durability settings above from the start
pg_workspace outage
start_sim "$W" app-attack --latency ${LATENCY:-800ms} --jitter 1500ms --drop-after-start-rate 0.1 --too-many-requests-rate 0.05 --ping-interval 300ms --seed ${SEED:-31}
make_files "$W/in" "$FILES"; expected_list "$W/in" >"$W/expected"
write_spec "$W/spec.yaml" "$SIM_URL"
: >"$W/events"; : >"$W/exits"
gen=0
declare -A PID LOG
now() { date +%T.%N | cut -c1-12; }
start() {
  gen=$((gen + 1)); LOG[$1]="$W/p$1.$gen.log"
  local grace=(); [ "$CMD" = watch ] && grace=(--grace 3s)
  "$BIN" "$CMD" --db "$DB" --lease "$LEASE" "${grace[@]}" --progress never --log-level "${LOGLEVEL:-info}" "$W/spec.yaml" >/dev/null 2>"${LOG[$1]}" &
  PID[$1]=$!; echo "$(now) start slot $1 pid ${PID[$1]} gen $gen" >>"$W/events"
}
reap() {
  local p=${PID[$1]:-}; [ -z "$p" ] && return 0
  kill -0 "$p" 2>/dev/null && return 1
  wait "$p"; local rc=$?
  echo "slot $1 pid $p ${LOG[$1]##*/} exit $rc: $(grep -v '^progress' "${LOG[$1]}" | tail -1 | cut -c1-300)" >>"$W/exits"
  echo "$(now) slot $1 pid $p ended with exit $rc" >>"$W/events"; PID[$1]=""; return 0
}
psqlq() { psql "$DB" -Atqc "$1" 2>/dev/null; }
work_left() { [ "$(psqlq "select count(*) from documents where state not in ('succeeded','skipped','dead','rejected','unresolved')")" != 0 ]; }
tick() { # reap, restart ended `run`s while there is work (only while the server is up)
  for s in $(seq 1 "$PROCS"); do
    if reap "$s" && [ "$CMD" = run ] && [ "${1:-up}" = up ] && work_left; then start "$s"; fi
  done
}
for s in $(seq 1 "$PROCS"); do start "$s"; done
read -ra outs <<<"$OUTAGES"
for r in $(seq 1 "$ROUNDS"); do
  t_end=$((SECONDS + 2 + RANDOM % 6)); while [ $SECONDS -lt $t_end ]; do tick; sleep 0.3; done
  kind=${outs[$(( (r - 1) % ${#outs[@]} ))]}
  down=$((5 + RANDOM % 16))
  echo "$(now) round $r: $kind (states $(psqlq "select state||'='||count(*) from documents group by state" | tr '\n' ' '))" >>"$W/events"
  case $kind in
    restart-fast) pgctl -m fast -o "$OPTS" restart ;;
    restart-immediate) pgctl -m immediate -o "$OPTS" restart ;;
    stop-fast|stop-immediate)
      pgctl -m "${kind#stop-}" stop; echo "$(now)   server down for $down s" >>"$W/events"
      t_end=$((SECONDS + down)); while [ $SECONDS -lt $t_end ]; do tick down; sleep 0.3; done
      pgstart ;;
  esac
  echo "$(now)   server up again" >>"$W/events"
done
stuck=0
if [ "$CMD" = watch ]; then
  # The watches must finish the job by themselves (bounded): a document left in flight, held by a live process that no
  # longer works on it (its lease renewed by the heartbeat), is STUCK until that process restarts.
  t_end=$((SECONDS + BOUND)); while work_left && [ $SECONDS -lt $t_end ]; do tick; sleep 1; done
  if work_left; then
    stuck=$(psqlq "select count(*) from documents where state not in ('succeeded','skipped','dead','rejected','unresolved')")
    echo "STUCK: $stuck document(s) not finished by the running watches ${BOUND}s after the last outage:"
    psqlq "select id||' '||path||' '||state||' owner='||coalesce(lease_owner,'-')||' idle '||((extract(epoch from now())*1000)::bigint-updated_at)/1000||'s' from documents where state not in ('succeeded','skipped','dead','rejected','unresolved') order by id limit 20"
  fi
  for s in $(seq 1 "$PROCS"); do [ -n "${PID[$s]:-}" ] && kill -TERM "${PID[$s]}"; done
fi
hangs=0; deadline=$((SECONDS + BOUND))
while :; do
  alive=0
  for s in $(seq 1 "$PROCS"); do
    if reap "$s"; then [ "$CMD" = run ] && [ $SECONDS -lt $deadline ] && work_left && { start "$s"; alive=$((alive + 1)); }
    else alive=$((alive + 1)); fi
  done
  [ $alive = 0 ] && break
  if [ $SECONDS -ge $deadline ]; then
    for s in $(seq 1 "$PROCS"); do
      p=${PID[$s]:-}; [ -z "$p" ] && continue
      echo "HANG: slot $s pid $p did not end within ${BOUND}s after the last outage; its log ends: $(grep -v '^progress' "${LOG[$s]}" | tail -1 | cut -c1-300)"
      hangs=$((hangs + 1)); kill -9 "$p"; reap "$s"
    done
    break
  fi
  sleep 0.5
done
cat "$W/events"; echo "--- exits:"; cat "$W/exits"
timeout 300 "$BIN" run --db "$DB" --lease "$LEASE" --progress never "$W/spec.yaml" >/dev/null 2>"$W/final.log"; echo "final run exit $?: $(tail -1 "$W/final.log")"
bad_exits=$(awk '{for(i=1;i<=NF;i++) if($i=="exit"){c=$(i+1); sub(":","",c); if(c!~/^(0|1|4)$/) print}}' "$W/exits" | wc -l)
[ "$bad_exits" -gt 0 ] && echo "BROKEN: $bad_exits undocumented exit code(s)"
twice=$(grep -ho 'document=[0-9]* \(succeeded\|skipped\|dead\)' "$W"/p*.log "$W/final.log" | awk '{print $1}' | sort | uniq -d)
[ -n "$twice" ] && echo "BROKEN: documents finished by two processes: $twice"
STRICT=1 python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$DB" "$W" "$W/expected"; rc=$?
kill $SIM_PID
[ $hangs -gt 0 ] || [ "$bad_exits" -gt 0 ] || [ -n "$twice" ] || [ "$stuck" != 0 ] && rc=1
exit $rc
