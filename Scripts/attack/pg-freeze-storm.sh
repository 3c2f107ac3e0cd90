#!/usr/bin/env bash
# PROCS `run` (CMD=watch: `watch`) processes share one PostgreSQL ledger (--lease LEASE) and one inbox of FILES
# files, with latency and faults at the simulator. For STORM seconds a random process is, at random moments:
#   * SIGSTOPped for less than the lease, then continued;
#   * SIGSTOPped for 1.5-4 leases, then continued;
#   * SIGSTOPped INSIDE one of its ledger transactions (stopped and continued until the server shows one of its
#     connections `idle in transaction`), held past the lease, then continued;
#   * killed -9 (and a new process started in its place).
# A `run` that ends is restarted while the job still has work. Every wait is bounded (a process that does not end
# within BOUND s after the storm is a HANG, killed -9 and reported). Then one final `run` finishes what is left.
# Audit: audit.py with STRICT=1 (a content run more than once at the server is broken unless the ledger counts the
# duplicate), every exit code documented (0, 1, 4; any other, or a signal other than our kill -9, is reported),
# and no document logged as finished (succeeded/skipped/dead) by two processes.
# usage: PGURL=postgres://postgres@127.0.0.1:PORT Scripts/attack/pg-freeze-storm.sh
#   env: FILES=200 PROCS=3 CMD=run LEASE=2s STORM=60 SEED=11 LOGLEVEL=info MAXACTIVE= (a job-wide max_active: claims in a
#        transaction with the job's advisory lock) FAULTS="simulator flags" BOUND=90
set -u
. "$(dirname "$0")/lib.sh"
FILES=${FILES:-200}; PROCS=${PROCS:-3}; CMD=${CMD:-run}; LEASE=${LEASE:-2s}; STORM=${STORM:-60}; BOUND=${BOUND:-90}
LEASE_S=${LEASE%s}
FAULTS=${FAULTS:---latency 300ms --jitter 900ms --drop-after-start-rate 0.1 --too-many-requests-rate 0.05 --drop-blocking-after-start-rate 0.05}
pg_workspace storm
# shellcheck disable=SC2086
start_sim "$W" app-attack $FAULTS --ping-interval 300ms --seed ${SEED:-11}
make_files "$W/in" "$FILES"; expected_list "$W/in" >"$W/expected"
extra=(); [ -n "${MAXACTIVE:-}" ] && extra+=("max_active: $MAXACTIVE")
write_spec "$W/spec.yaml" "$SIM_URL" "${extra[@]}"
: >"$W/events"; : >"$W/exits"
gen=0
declare -A PID LOG
start() { # start SLOT
  gen=$((gen + 1)); LOG[$1]="$W/p$1.$gen.log"
  local grace=(); [ "$CMD" = watch ] && grace=(--grace 3s)
  "$BIN" "$CMD" --db "$DB" --lease "$LEASE" "${grace[@]}" --progress never --log-level "${LOGLEVEL:-info}" "$W/spec.yaml" >/dev/null 2>"${LOG[$1]}" &
  PID[$1]=$!; echo "$(date +%T.%N | cut -c1-12) start slot $1 pid ${PID[$1]} gen $gen" >>"$W/events"
}
reap() { # reap SLOT: if its process ended, record its exit code; returns 0 when it ended
  local p=${PID[$1]:-}; [ -z "$p" ] && return 0
  kill -0 "$p" 2>/dev/null && return 1
  wait "$p"; local rc=$?
  echo "slot $1 pid $p ${LOG[$1]##*/} exit $rc ${KILLED[$p]:+(killed -9 by us)}" >>"$W/exits"; PID[$1]=""; return 0
}
declare -A KILLED
psqlq() { psql "$DB" -Atqc "$1" 2>/dev/null; }
work_left() { [ "$(psqlq "select count(*) from documents where state not in ('succeeded','skipped','dead','rejected','unresolved')")" != 0 ]; }
ports_of() { ss -tnpH 2>/dev/null | grep "pid=$1," | awk '{n=split($4,a,":"); printf "%s,", a[n]}' | sed 's/,$//'; }
in_tx() { # in_tx PID: one of its connections is idle inside a transaction at the server
  local ports; ports=$(ports_of "$1"); [ -z "$ports" ] && return 1
  [ "$(psqlq "select count(*) from pg_stat_activity where client_port in ($ports) and state like 'idle in transaction%'")" -gt 0 ] 2>/dev/null
}
stop_for() { # stop_for SLOT SECONDS KIND
  local p=${PID[$1]}; kill -STOP "$p" 2>/dev/null || return
  echo "$(date +%T.%N | cut -c1-12) $3 stop slot $1 pid $p for $2 s" >>"$W/events"
  sleep "$2"; kill -CONT "$p" 2>/dev/null
}
stop_in_tx() { # stop_in_tx SLOT: up to 60 tries to freeze it inside a transaction
  local p=${PID[$1]} k
  for k in $(seq 1 60); do
    kill -STOP "$p" 2>/dev/null || return
    sleep 0.03
    if in_tx "$p"; then
      local held; held=$(python3 -c "print(round($LEASE_S*(1.5+2.5*__import__('random').random()),2))")
      echo "$(date +%T.%N | cut -c1-12) in-tx stop slot $1 pid $p after $k tries, for $held s: $(psqlq "select state||' '||left(query,60) from pg_stat_activity where client_port in ($(ports_of "$p"))" | tr '\n' '|')" >>"$W/events"
      sleep "$held"
      echo "$(date +%T.%N | cut -c1-12)   after: $(psqlq "select count(*) from pg_stat_activity where client_port in ($(ports_of "$p"))") connection(s) left at the server" >>"$W/events"
      kill -CONT "$p"; IN_TX_HITS=$((IN_TX_HITS + 1)); return
    fi
    kill -CONT "$p"; sleep "0.0$((RANDOM % 9 + 1))"
  done
  echo "$(date +%T.%N | cut -c1-12) in-tx stop slot $1: no transaction caught in 60 tries" >>"$W/events"
}
IN_TX_HITS=0; STOPS=0; KILLS=0
for s in $(seq 1 "$PROCS"); do start "$s"; done
end=$((SECONDS + STORM))
while [ $SECONDS -lt $end ]; do
  sleep "0.$((RANDOM % 9 + 1))"
  for s in $(seq 1 "$PROCS"); do
    if reap "$s" && [ "$CMD" = run ] && work_left; then start "$s"; fi
  done
  s=$((RANDOM % PROCS + 1)); [ -z "${PID[$s]:-}" ] && continue
  case $((RANDOM % 8)) in
    0|1) stop_for "$s" "$(python3 -c "print(round($LEASE_S*0.8*__import__('random').random(),2))")" short; STOPS=$((STOPS + 1)) ;;
    2|3) stop_for "$s" "$(python3 -c "print(round($LEASE_S*(1.5+2.5*__import__('random').random()),2))")" long; STOPS=$((STOPS + 1)) ;;
    4|5|6) stop_in_tx "$s"; STOPS=$((STOPS + 1)) ;;
    7) KILLED[${PID[$s]}]=1; kill -9 "${PID[$s]}"; KILLS=$((KILLS + 1)); echo "$(date +%T.%N | cut -c1-12) kill -9 slot $s pid ${PID[$s]}" >>"$W/events"; reap "$s"; start "$s" ;;
  esac
done
echo "storm over: $STOPS stops ($IN_TX_HITS inside a transaction), $KILLS kills; states: $(psqlq "select state||'='||count(*) from documents group by state" | tr '\n' ' ')"
[ "$CMD" = watch ] && for s in $(seq 1 "$PROCS"); do [ -n "${PID[$s]:-}" ] && kill -TERM "${PID[$s]}"; done
hangs=0
deadline=$((SECONDS + BOUND))
while :; do
  alive=0; for s in $(seq 1 "$PROCS"); do reap "$s" || alive=$((alive + 1)); done
  [ $alive = 0 ] && break
  if [ $SECONDS -ge $deadline ]; then
    for s in $(seq 1 "$PROCS"); do
      p=${PID[$s]:-}; [ -z "$p" ] && continue
      echo "HANG: slot $s pid $p did not end within ${BOUND}s ($(tail -1 "${LOG[$s]}")); stack state $(cat /proc/$p/status | grep State)"
      hangs=$((hangs + 1)); KILLED[$p]=1; kill -9 "$p"; reap "$s"
    done
    break
  fi
  sleep 0.5
done
timeout 300 "$BIN" run --db "$DB" --lease "$LEASE" --progress never "$W/spec.yaml" >/dev/null 2>"$W/final.log"; echo "final run exit $?: $(tail -1 "$W/final.log")"
echo "exit codes: $(grep -v 'killed -9 by us' "$W/exits" | awk '{print $NF}' | sort | uniq -c | tr -s ' \n' ' ')"
bad_exits=$(grep -v 'killed -9 by us' "$W/exits" | awk '$NF !~ /^(0|1|4)$/' | wc -l)
[ "$bad_exits" -gt 0 ] && { echo "BROKEN: undocumented exit codes:"; grep -v 'killed -9 by us' "$W/exits" | awk '$NF !~ /^(0|1|4)$/'; }
twice=$(grep -ho 'document=[0-9]* \(succeeded\|skipped\|dead\)' "$W"/p*.log "$W/final.log" | awk '{print $1}' | sort | uniq -d)
[ -n "$twice" ] && echo "BROKEN: documents finished by two processes: $twice"
echo "log lines: lost-lease $(cat "$W"/p*.log | grep -c 'lost its lease\|taken over by'), closed-in-transaction $(cat "$W"/p*.log | grep -c 'closed in the middle of a transaction'), ledger errors $(cat "$W"/p*.log | grep -c 'ledger or file system error')"
STRICT=1 python3 "$AUDIT" "$SIM_URL" app-attack "$W/store" "$DB" "$W" "$W/expected"; rc=$?
kill $SIM_PID
[ $hangs -gt 0 ] || [ "$bad_exits" -gt 0 ] || [ -n "$twice" ] && rc=1
exit $rc
