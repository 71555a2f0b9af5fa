#!/usr/bin/env bash
# bench/load.sh: HTTP load benchmark of webhook-server (issue 7 "Load benchmark", issue 10 "Load").
#
# One run measures, with wrk and unique validly signed webhooks (bench/unique.lua):
#   hello   (a) bench-hello: bare hyper server, same connection setup, fixed 200
#   verify  (d) bench-verify-only: signature + parsing with the store bypassed
#   pg      (b) webhook-server, DATABASE_URL on a fresh PostgreSQL database (dropped afterwards)
#   sqlite  (c) webhook-server, DATABASE_URL on a temporary SQLite file
#   X+info      configuration X again with the default `info` logging instead of RUST_LOG=warn
#               (LOG_COMPARE=1 adds pg-notls+info, or pg+info without PG_NOTLS)
#   pg-notls    (b) again with `?sslmode=disable` in DATABASE_URL (PG_NOTLS=1): sqlx's default
#               sslmode=prefer negotiates TLS even on 127.0.0.1, see bench/README.md
#   pg-noworker, sqlite-noworker (DIAG=1): diagnostics with bench-server-diag, the same server
#               wiring with the reply worker parked (PostgreSQL with sslmode=disable); they print
#               the group-commit batch sizes
#
# Usage:
#   bash bench/load.sh            # all of the above at 64 connections, 3 s warm-up + 10 s each
#   bash bench/load.sh --soak     # PostgreSQL, 64 and 256 connections, 60 s each in 10 s segments,
#                                 # RSS sampled every 5 s: is p99 / RSS stable?
# Environment (defaults in brackets; --soak changes the marked ones):
#   CONFIGS ["hello verify pg sqlite"; soak: "pg"]   CONNECTIONS ["64"; soak: "64 256"]
#   DURATION seconds measured [10; soak: 60]         SEGMENT seconds per wrk run [DURATION; soak: 10]
#   REPEAT runs of each configuration; the report shows the median run [1]
#   WARMUP [3]  THREADS wrk threads [2]  SAMPLE_EVERY RSS sample seconds [1; soak: 5]
#   LOG_COMPARE [1; soak: 0]  PG_NOTLS [1; soak: 0]  DIAG [1; soak: 0]  MAX_RATE req/s the request files are sized for [60000]
#   BENCH_PORT [18480]  PG_URL [postgres://postgres@127.0.0.1:5432]  BUILD=0 skips cargo build
#   QUIET_WAIT seconds to wait before each configuration until the machine is < QUIET_BUSY % busy
#   (other processes) [0: do not wait; QUIET_BUSY 15]
#   ANSWER_WAIT seconds to wait after the load for every message to be answered [300]
#   SERVER_ENV extra KEY=VALUE settings for webhook-server (experiments), e.g. "WORKER_CONCURRENCY=4"
#   OUT result directory [target/bench-load/<timestamp>]
# Only 127.0.0.1 is contacted. See bench/README.md for how to read the table.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOAK=0
for arg in "$@"; do
  case "$arg" in
    --soak) SOAK=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

if [ "$SOAK" = 1 ]; then
  CONFIGS=${CONFIGS:-pg}
  CONNECTIONS=${CONNECTIONS:-"64 256"}
  DURATION=${DURATION:-60}
  SEGMENT=${SEGMENT:-10}
  SAMPLE_EVERY=${SAMPLE_EVERY:-5}
  LOG_COMPARE=${LOG_COMPARE:-0}
  PG_NOTLS=${PG_NOTLS:-0}
  DIAG=${DIAG:-0}
else
  CONFIGS=${CONFIGS:-"hello verify pg sqlite"}
  CONNECTIONS=${CONNECTIONS:-64}
  DURATION=${DURATION:-10}
  SEGMENT=${SEGMENT:-$DURATION}
  SAMPLE_EVERY=${SAMPLE_EVERY:-1}
  LOG_COMPARE=${LOG_COMPARE:-1}
  PG_NOTLS=${PG_NOTLS:-1}
  DIAG=${DIAG:-1}
fi
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-2}
MAX_RATE=${MAX_RATE:-60000}
PORT=${BENCH_PORT:-18480}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
BUILD=${BUILD:-1}
REPEAT=${REPEAT:-1}
QUIET_WAIT=${QUIET_WAIT:-0}
ANSWER_WAIT=${ANSWER_WAIT:-300}
QUIET_BUSY=${QUIET_BUSY:-15}
TS=$(date +%Y%m%d_%H%M%S)
OUT=${OUT:-$ROOT/target/bench-load/$TS}
WEBHOOK_URL=https://bench.example.com/api/v1/whatsapp/webhook
TARGET_URL=http://127.0.0.1:$PORT/api/v1/whatsapp/webhook
BIN=$ROOT/target/release
NCPU=$(nproc)
SEGMENTS=$(((DURATION + SEGMENT - 1) / SEGMENT))

if [ "$PG_NOTLS" = 1 ] && [[ " $CONFIGS " == *" pg "* ]] && [[ " $CONFIGS " != *" pg-notls "* ]]; then
  CONFIGS="$CONFIGS pg-notls"
fi
if [ "$DIAG" = 1 ] && [[ " $CONFIGS " == *" pg "* ]] && [[ " $CONFIGS " != *" pg-noworker "* ]]; then
  CONFIGS="$CONFIGS pg-noworker"
fi
if [ "$DIAG" = 1 ] && [[ " $CONFIGS " == *" sqlite "* ]] && [[ " $CONFIGS " != *" sqlite-noworker "* ]]; then
  CONFIGS="$CONFIGS sqlite-noworker"
fi
# The logging comparison runs on a configuration that is CPU-bound, not latency-bound.
if [ "$LOG_COMPARE" = 1 ] && [[ "$CONFIGS" != *"+info"* ]]; then
  if [[ " $CONFIGS " == *" pg-notls "* ]]; then
    CONFIGS="$CONFIGS pg-notls+info"
  elif [[ " $CONFIGS " == *" pg "* ]]; then
    CONFIGS="$CONFIGS pg+info"
  fi
fi

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() {
  echo "❌ $*" >&2
  exit 1
}

# ---------------------------------------------------------------- prerequisites and build
if ! command -v wrk >/dev/null; then
  say "wrk is not installed: installing it with apt-get"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null
  fi
fi
command -v wrk >/dev/null || die "wrk is required (apt-get install wrk)"
command -v curl >/dev/null || die "curl is required"
for c in $CONFIGS; do
  case "${c%+info}" in
    pg | pg-notls | pg-noworker) command -v psql >/dev/null || die "psql is required for the PostgreSQL runs" ;;
    sqlite | sqlite-noworker) command -v sqlite3 >/dev/null || die "sqlite3 is required to count SQLite rows" ;;
    hello | verify) ;;
    *) die "unknown configuration '$c' in CONFIGS (hello verify pg pg-notls pg-noworker sqlite sqlite-noworker, each optionally +info)" ;;
  esac
done
if [ "$BUILD" = 1 ]; then
  say "building release binaries (webhook-server, bench)"
  (cd "$ROOT" && cargo build --release -q -p webhook-server -p bench) || die "cargo build failed"
fi
for b in webhook-server bench-hello bench-verify-only bench-gen-requests bench-server-diag bench-fsync-probe; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing (run without BUILD=0)"
done

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-load.XXXXXX")
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
RUN_BASE=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
RUN_SEQ=0
SERVER_PID=""
SAMPLER_PID=""
CREATED_DBS=()

cleanup() {
  set +e
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    sleep 2
    kill -KILL "$SERVER_PID" 2>/dev/null
  fi
  for db in "${CREATED_DBS[@]}"; do
    psql "$PG_URL/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "❌ bench/load.sh: command failed at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers
# next_run_id: sets RUN_ID. Never call it in $(...): the counter must advance in this shell, or
# two request sets get the same SIDs and later ones are duplicates.
next_run_id() {
  RUN_SEQ=$((RUN_SEQ + 1))
  [ "$RUN_SEQ" -le 255 ] || die "more than 255 request sets in one invocation"
  RUN_ID=$(printf '%s%02x' "$RUN_BASE" "$RUN_SEQ")
}

# gen DIR SECONDS CONNS: unique signed requests for one wrk run of SECONDS at up to MAX_RATE.
gen() {
  local dir=$1 secs=$2 conns=$3 run per
  next_run_id
  run=$RUN_ID
  per=$(((MAX_RATE * secs * 5 / 4 + THREADS - 1) / THREADS + conns))
  TWILIO_AUTH_TOKEN=$TOKEN "$BIN/bench-gen-requests" --out "$dir" --url "$WEBHOOK_URL" \
    --threads "$THREADS" --per-thread "$per" --run-id "$run" || die "request generation failed"
  echo "$run" >"$dir/run_id"
}

kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
ticks_of() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# pg_pids: the backends of the benchmark database plus PostgreSQL's own background processes
# (WAL writer, checkpointer, ...), not the backends other programs have open on other databases.
pg_pids() {
  [ "$DB_KIND" = pg ] || return 0
  psql "$DB_URL" -qAtc "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND (datname = current_database() OR backend_type <> 'client backend')"
}
# pg_ticks PIDS...: CPU jiffies of those processes ("-" without PostgreSQL)
pg_ticks() {
  [ "$DB_KIND" = pg ] || {
    echo -
    return 0
  }
  local t=0 p
  for p in "$@"; do t=$((t + $(ticks_of "$p"))); done
  echo "$t"
}
# kthread_ticks: CPU jiffies of all kernel threads (ksoftirqd handling loopback packets, kworker and
# jbd2 flushing the disk): work the benchmark itself causes, not other programs.
kthread_ticks() {
  # cat, not awk on the glob: a process that exits in between must not end the scan
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
    awk '{ pid = $1; line = $0; sub(/^[0-9]+ \(.*\) /, "", line); split(line, f, " "); if (f[2] == 2 || pid == 2) t += f[12] + f[13] } END { print t + 0 }'
}
# "busy total" jiffies of the whole machine
cpu_line() { awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat; }
# busy_now: % of the machine busy over the next 2 s (other agents, builds, ...)
busy_now() {
  local a b
  a=$(cpu_line)
  sleep 2
  b=$(cpu_line)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f", (y[1] - x[1]) / (y[2] - x[2]) * 100 }'
}
# wait_quiet: up to QUIET_WAIT seconds for the machine to be under QUIET_BUSY % busy; prints the last reading
wait_quiet() {
  local busy waited=0
  busy=$(busy_now)
  while [ "$busy" -gt "$QUIET_BUSY" ] && [ "$waited" -lt "$QUIET_WAIT" ]; do
    [ "$waited" = 0 ] && echo "   machine is ${busy}% busy before the run; waiting up to ${QUIET_WAIT}s for < ${QUIET_BUSY}%" >&2
    sleep 8
    waited=$((waited + 10))
    busy=$(busy_now)
  done
  echo "$busy"
}
field() { grep -o "$1=[0-9.]*" "$2" | head -1 | cut -d= -f2; }

# wrk_run DIR SECONDS CONNS OUTFILE
# (bash's `time` appends wrk's own CPU seconds as "WRK_CPU user sys")
wrk_run() {
  local TIMEFORMAT='WRK_CPU %U %S'
  { time BENCH_REQUESTS=$1 wrk -t"$THREADS" -c"$3" -d"$2"s --timeout 5s -s "$ROOT/bench/unique.lua" \
    "$TARGET_URL" >"$4" 2>&1; } 2>>"$4" || die "wrk failed, see $4"
  grep -q '^BENCH_RESULT' "$4" || die "wrk printed no result, see $4"
}

# start_server CONFIG CONNS: sets SERVER_PID, DB_KIND, DB_URL, SQLITE_FILE
start_server() {
  local cfg=$1 conns=$2 log="$OUT/$3.server.log" rust_log=warn
  local -a cmd extra
  DB_KIND=none DB_URL="" SQLITE_FILE=""
  case "${cfg%+info}" in
    hello) cmd=("$BIN/bench-hello" "127.0.0.1:$PORT") ;;
    verify) cmd=("$BIN/bench-verify-only" "127.0.0.1:$PORT") ;;
    pg | pg-notls | pg-noworker)
      local db="bench_${TS}_$(echo "$3" | tr -c 'a-z0-9\n' '_')"
      psql "$PG_URL/postgres" -qAtc "CREATE DATABASE $db" >/dev/null || die "could not create database $db"
      CREATED_DBS+=("$db")
      DB_KIND=pg DB_URL="$PG_URL/$db"
      case "${cfg%+info}" in pg-notls | pg-noworker) DB_URL="$DB_URL?sslmode=disable" ;; esac
      cmd=("$BIN/webhook-server")
      ;;
    sqlite | sqlite-noworker)
      SQLITE_FILE="$WORK/$3.db"
      DB_KIND=sqlite DB_URL="sqlite://$SQLITE_FILE?mode=rwc"
      cmd=("$BIN/webhook-server")
      ;;
  esac
  case "${cfg%+info}" in *-noworker) cmd=("$BIN/bench-server-diag") ;; esac
  [[ "$cfg" == *+info ]] && rust_log=""
  # A clean environment and an empty working directory: no .env, webhook.toml or REDIS_URL
  # from the caller changes what is measured. No sender configured: replies are a dry run.
  local -a envs=(PATH="$PATH" APP_ENV=development HOST=127.0.0.1 PORT="$PORT"
    TWILIO_AUTH_TOKEN="$TOKEN" WEBHOOK_URL="$WEBHOOK_URL" NO_COLOR=1)
  [ -n "$DB_URL" ] && envs+=(DATABASE_URL="$DB_URL")
  [ -n "$rust_log" ] && envs+=(RUST_LOG="$rust_log")
  case "${cfg%+info}" in *-noworker) envs+=(BENCH_PARK_WORKER=1) ;; esac
  if [ "$DB_KIND" != none ] && [ -n "${SERVER_ENV:-}" ]; then
    # Extra settings for experiments, e.g. SERVER_ENV="STORE_BATCH_LINGER_US=200 WORKER_CONCURRENCY=4"
    read -r -a extra <<<"$SERVER_ENV"
    envs+=("${extra[@]}")
  fi
  mkdir -p "$WORK/cwd"
  (cd "$WORK/cwd" && exec env -i "${envs[@]}" "${cmd[@]}") >"$log" 2>&1 &
  SERVER_PID=$!
  local i
  for i in $(seq 1 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || die "$cfg exited at start, see $log"
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/healthz" && return 0
    sleep 0.1
  done
  die "$cfg did not answer within 30 s, see $log"
}

stop_server() {
  local i
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for i in $(seq 1 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "⚠️ server did not stop within 30 s of SIGTERM; killing it" >&2
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

db_query() { # SQL → its rows from the run's database (psql -At and sqlite3 print them alike)
  case "$DB_KIND" in
    pg) psql "$DB_URL" -qAtc "$1" ;;
    sqlite) sqlite3 "$SQLITE_FILE" "$1" ;;
    *) echo "" ;;
  esac
}

count_rows() { # RUN_ID → rows whose MessageSid belongs to that run
  db_query "SELECT count(*) FROM inbound_messages WHERE message_sid >= 'SM$1' AND message_sid < 'SM$1g'"
}

unanswered() { # messages still waiting for their reply (received or processing)
  db_query "SELECT count(*) FROM inbound_messages WHERE state IN ('received', 'processing')"
}

db_states() {
  db_query "SELECT state, count(*) FROM inbound_messages GROUP BY state ORDER BY state" | tr '\n' ' '
}

pg_tls() { psql "$DB_URL" -qAtc "SELECT count(*) FILTER (WHERE s.ssl) || ' of ' || count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()"; }
pg_checkpoints() { psql "$DB_URL" -qAtc "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"; }
pg_commits() { psql "$DB_URL" -qAtc "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }

# ---------------------------------------------------------------- one configuration
RESULTS="$OUT/results.tsv"
SEGMENT_RESULTS="$OUT/segments.tsv"
printf 'config\tconns\tok_per_s\tp50_ms\tp99_ms\tmax_ms\tnon2xx\terrors\trows\tok\tsent\twraps\trss_idle_mib\trss_load_mib\thwm_mib\trss_after_mib\tcpu_server\tcpu_pg\tcpu_machine\tbusy_before\trep\tcpu_wrk\tcpu_other\tcheckpoints\tcpu_kernel_threads\tbacklog\tanswered_after_s\n' >"$RESULTS"
printf 'config\tconns\tsegment\tok_per_s\tp50_ms\tp99_ms\tmax_ms\tnon2xx\terrors\trss_end_mib\trep\n' >"$SEGMENT_RESULTS"

run_config() {
  local cfg=$1 conns=$2 rep=$3 tag="$1-c$2-r$3" s
  local shared="$WORK/shared"
  local -a dirs=()
  say "$tag: preparing requests"
  if [ "${cfg%+info}" = hello ] || [ "${cfg%+info}" = verify ]; then
    # No store: repeated SIDs are harmless, so one small set serves warm-up and measurement.
    [ -d "$shared" ] || MAX_RATE=20000 gen "$shared" 5 "$conns"
    for s in $(seq 0 "$SEGMENTS"); do dirs+=("$shared"); done
  else
    gen "$WORK/$tag-warmup" "$WARMUP" "$conns"
    dirs+=("$WORK/$tag-warmup")
    for s in $(seq 1 "$SEGMENTS"); do
      gen "$WORK/$tag-seg$s" "$SEGMENT" "$conns"
      dirs+=("$WORK/$tag-seg$s")
    done
  fi

  if [ "${#dirs[@]}" -gt 1 ] && [ "${dirs[0]}" != "${dirs[1]}" ]; then
    local dup
    dup=$(for d in "${dirs[@]}"; do cat "$d/run_id"; done | sort | uniq -d)
    [ -z "$dup" ] || die "request sets share run id $dup: their SIDs would repeat"
  fi
  local load1 fsync_line=""
  case "${cfg%+info}" in
    pg*)
      # Start from a clean checkpoint (as the feasibility study did): otherwise the WAL of the
      # previous configuration can trigger a checkpoint inside this run's 10 s. The soak's
      # longer runs still meet the checkpoints their own WAL causes.
      psql "$PG_URL/postgres" -qc CHECKPOINT >/dev/null
      ;;
  esac
  load1=$(wait_quiet)
  if [ "${cfg%+info}" != hello ] && [ "${cfg%+info}" != verify ]; then
    # The disk's flush latency right now: every acknowledgement waits for one flush.
    fsync_line=$("$BIN/bench-fsync-probe" "$WORK" 1000 | sed 's/^BENCH_FSYNC //')
  fi
  say "$tag: starting the server (machine ${load1}% busy before)"
  start_server "$cfg" "$conns" "$tag"
  sleep 2
  local rss_idle
  rss_idle=$(kb "$SERVER_PID" VmRSS)

  say "$tag: warm-up ${WARMUP}s"
  wrk_run "${dirs[0]}" "$WARMUP" "$conns" "$OUT/$tag.warmup.txt"

  local rss_csv="$OUT/$tag.rss.csv"
  echo "seconds,vmrss_kib,vmhwm_kib" >"$rss_csv"
  local t0
  t0=$(date +%s.%N)
  (
    while kill -0 "$SERVER_PID" 2>/dev/null; do
      echo "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }'),$(kb "$SERVER_PID" VmRSS),$(kb "$SERVER_PID" VmHWM)" >>"$rss_csv"
      sleep "$SAMPLE_EVERY"
    done
  ) &
  SAMPLER_PID=$!

  local srv0 pg0 m0 k0 commits0="" ckpt0="" pids
  pids=$(pg_pids | tr '\n' ' ')
  srv0=$(ticks_of "$SERVER_PID")
  # shellcheck disable=SC2086
  pg0=$(pg_ticks $pids)
  m0=$(cpu_line)
  k0=$(kthread_ticks)
  if [ "$DB_KIND" = pg ]; then
    commits0=$(pg_commits)
    ckpt0=$(pg_checkpoints)
  fi

  local tot_ok=0 tot_us=0 tot_non2xx=0 tot_err=0 tot_sent=0 tot_wraps=0 worst_p50=0 worst_p99=0 worst_max=0
  for s in $(seq 1 "$SEGMENTS"); do
    local secs=$SEGMENT f="$OUT/$tag.seg$s.txt"
    [ $((s * SEGMENT)) -gt "$DURATION" ] && secs=$((DURATION - (s - 1) * SEGMENT))
    if [ "$SEGMENTS" -gt 1 ]; then
      say "$tag: measuring ${secs}s at $conns connections (segment $s/$SEGMENTS)"
    else
      say "$tag: measuring ${secs}s at $conns connections"
    fi
    wrk_run "${dirs[$s]}" "$secs" "$conns" "$f"
    local req non2xx err us p50 p99 mx sent wraps ok
    req=$(field requests "$f") non2xx=$(field non2xx "$f") us=$(field duration_us "$f")
    err=$(($(field connect_errors "$f") + $(field read_errors "$f") + $(field write_errors "$f") + $(field timeouts "$f")))
    p50=$(field p50_us "$f") p99=$(field p99_us "$f") mx=$(field max_us "$f")
    sent=$(field sent "$f") wraps=$(field wraps "$f")
    ok=$((req - non2xx))
    tot_ok=$((tot_ok + ok)) tot_us=$((tot_us + us)) tot_non2xx=$((tot_non2xx + non2xx)) tot_err=$((tot_err + err))
    tot_sent=$((tot_sent + sent)) tot_wraps=$((tot_wraps + wraps))
    [ "$p50" -gt "$worst_p50" ] && worst_p50=$p50
    [ "$p99" -gt "$worst_p99" ] && worst_p99=$p99
    [ "$mx" -gt "$worst_max" ] && worst_max=$mx
    printf '%s\t%s\t%s\t%.0f\t%.2f\t%.2f\t%.1f\t%s\t%s\t%.1f\t%s\n' "$cfg" "$conns" "$s" \
      "$(awk -v o="$ok" -v u="$us" 'BEGIN { print o / (u / 1e6) }')" \
      "$(awk -v x="$p50" 'BEGIN { print x / 1000 }')" "$(awk -v x="$p99" 'BEGIN { print x / 1000 }')" \
      "$(awk -v x="$mx" 'BEGIN { print x / 1000 }')" "$non2xx" "$err" \
      "$(awk -v x="$(kb "$SERVER_PID" VmRSS)" 'BEGIN { print x / 1024 }')" "$rep" >>"$SEGMENT_RESULTS"
  done

  local srv1 pg1 m1 k1 commits1="" ckpt1="" load_end
  load_end=$(date +%s.%N)
  srv1=$(ticks_of "$SERVER_PID")
  # Backends the pool opened during the measurement count from zero.
  local pids1 p
  pids1=$(pg_pids | tr '\n' ' ')
  for p in $pids1; do
    [[ " $pids " == *" $p "* ]] || pids="$pids $p"
  done
  # shellcheck disable=SC2086
  pg1=$(pg_ticks $pids)
  m1=$(cpu_line)
  k1=$(kthread_ticks)
  if [ "$DB_KIND" = pg ]; then
    commits1=$(pg_commits)
    ckpt1=$(pg_checkpoints)
  fi
  # Replies are asynchronous, and acknowledgements have priority during a burst: how many
  # messages are still unanswered right after the load and the CPU readings (the worker goes on meanwhile).
  local backlog="-" answered_after="-"
  if [ "$DB_KIND" != none ] && [[ "$cfg" != *-noworker* ]]; then
    backlog=$(unanswered)
  fi
  kill "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=""

  local rss_load hwm
  rss_load=$(awk -F, 'NR > 1 && $2 > m { m = $2 } END { print m + 0 }' "$rss_csv")
  hwm=$(kb "$SERVER_PID" VmHWM)
  sleep 1 # requests wrk abandoned at its deadline finish committing
  local rows="" run
  if [ "$DB_KIND" != none ]; then
    rows=0
    for s in $(seq 1 "$SEGMENTS"); do
      run=$(cat "${dirs[$s]}/run_id")
      rows=$((rows + $(count_rows "$run")))
    done
  fi
  sleep 2
  local rss_after
  rss_after=$(kb "$SERVER_PID" VmRSS)
  # How long until every message of the run was answered.
  if [ "$backlog" != - ]; then
    while :; do
      local left
      left=$(unanswered)
      answered_after=$(awk -v a="$(date +%s.%N)" -v b="$load_end" 'BEGIN { printf "%.1f", a - b }')
      [ "$left" = 0 ] && break
      if awk -v a="$answered_after" -v m="$ANSWER_WAIT" 'BEGIN { exit !(a > m) }'; then
        echo "⚠️ $tag: $left messages still unanswered ${ANSWER_WAIT}s after the load" >&2
        answered_after=">$ANSWER_WAIT"
        break
      fi
      sleep 0.5
    done
    say "$tag: $backlog messages unanswered when the load ended; all answered ${answered_after}s after it"
  fi
  {
    echo "config=$cfg connections=$conns machine_busy_before=$load1% loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
    if [ -n "$fsync_line" ]; then
      echo "fdatasync of 8 KiB before the run: $fsync_line"
    fi
    if [ -n "$commits0" ]; then
      echo "pg_commits_during_measurement=$((commits1 - commits0)) rows=$rows"
      echo "server connections using TLS: $(pg_tls)"
      echo "PostgreSQL checkpoints during the measurement (any database on the cluster): $((ckpt1 - ckpt0))"
    fi
    if [ "$DB_KIND" != none ]; then
      echo "inbound states at end: $(db_states)"
      echo "unanswered when the load ended: $backlog; all answered ${answered_after}s after the load ended"
    fi
  } >"$OUT/$tag.notes.txt"
  stop_server
  if grep -q '^BENCH_STORE_STATS' "$OUT/$tag.server.log"; then
    awk '/^BENCH_STORE_STATS/ { split($2, b, "="); split($3, r, "="); printf "group commit (warm-up + measurement): %s batches, %s rows, %.1f rows per batch\n", b[2], r[2], r[2] / (b[2] ? b[2] : 1) }' \
      "$OUT/$tag.server.log" >>"$OUT/$tag.notes.txt"
  fi

  local wall_ticks wrk_cpu cores=$((NCPU * 100)) tick
  tick=$(getconf CLK_TCK)
  wall_ticks=$(awk -v a="$m0" -v b="$m1" 'BEGIN { split(a, x, " "); split(b, y, " "); print y[2] - x[2] }')
  wrk_cpu=$(cat "$OUT/$tag".seg*.txt | awk '/^WRK_CPU/ { s += $2 + $3 } END { print s + 0 }')
  # CPU in % of one core over the measurement; "other" is what neither the server, its PostgreSQL
  # backends nor wrk used: other programs on the machine.
  local c_srv c_pg c_wrk c_all c_other c_kern
  c_srv=$(awk -v a="$srv0" -v b="$srv1" -v w="$wall_ticks" -v n="$cores" 'BEGIN { printf "%.0f", (b - a) / w * n }')
  c_pg=$(awk -v a="$pg0" -v b="$pg1" -v w="$wall_ticks" -v n="$cores" 'BEGIN { if (a == "-") print "-"; else printf "%.0f", (b - a) / w * n }')
  c_wrk=$(awk -v c="$wrk_cpu" -v w="$wall_ticks" -v n="$NCPU" -v t="$tick" 'BEGIN { printf "%.0f", c / (w / n / t) * 100 }')
  c_all=$(awk -v a="$m0" -v b="$m1" -v n="$cores" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f", (y[1] - x[1]) / (y[2] - x[2]) * n }')
  c_kern=$(awk -v a="$k0" -v b="$k1" -v w="$wall_ticks" -v n="$cores" 'BEGIN { printf "%.0f", (b - a) / w * n }')
  c_other=$(awk -v a="$c_all" -v s="$c_srv" -v p="$c_pg" -v w="$c_wrk" -v k="$c_kern" 'BEGIN { o = a - s - (p == "-" ? 0 : p) - w - k; printf "%.0f", (o < 0 ? 0 : o) }')
  printf '%s\t%s\t%.0f\t%.2f\t%.2f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%s%%\t%s\t%s%%\t%s\t%s\t%s%%\t%s%%\t%s\t%s%%\t%s\t%s\n' \
    "$cfg" "$conns" \
    "$(awk -v o="$tot_ok" -v u="$tot_us" 'BEGIN { print o / (u / 1e6) }')" \
    "$(awk -v x="$worst_p50" 'BEGIN { print x / 1000 }')" \
    "$(awk -v x="$worst_p99" 'BEGIN { print x / 1000 }')" \
    "$(awk -v x="$worst_max" 'BEGIN { print x / 1000 }')" \
    "$tot_non2xx" "$tot_err" "${rows:--}" "$tot_ok" "$tot_sent" "$tot_wraps" \
    "$(awk -v x="$rss_idle" 'BEGIN { print x / 1024 }')" \
    "$(awk -v x="$rss_load" 'BEGIN { print x / 1024 }')" \
    "$(awk -v x="$hwm" 'BEGIN { print x / 1024 }')" \
    "$(awk -v x="$rss_after" 'BEGIN { print x / 1024 }')" \
    "$c_srv" "$( [ "$c_pg" = - ] && echo - || echo "$c_pg%")" "$c_all" \
    "$load1" "$rep" "$c_wrk" "$c_other" "$( [ -n "$ckpt0" ] && echo $((ckpt1 - ckpt0)) || echo -)" "$c_kern" \
    "$backlog" "$answered_after" >>"$RESULTS"
}

# ---------------------------------------------------------------- main
{
  echo "date: $(date -Is)  commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
  echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $THREADS threads, unpinned, same machine"
  if [[ " $CONFIGS " == *" pg"* ]]; then
    echo "postgresql: $(psql "$PG_URL/postgres" -qAtc 'SHOW server_version') fsync=$(psql "$PG_URL/postgres" -qAtc 'SHOW fsync') synchronous_commit=$(psql "$PG_URL/postgres" -qAtc 'SHOW synchronous_commit')"
  fi
  echo "runs: warm-up ${WARMUP}s, then ${DURATION}s measured in $SEGMENTS segment(s), $REPEAT time(s) each; configs: $CONFIGS; connections: $CONNECTIONS"
  [ -n "${SERVER_ENV:-}" ] && echo "SERVER_ENV: $SERVER_ENV"
  echo "server: APP_ENV=development, RUST_LOG=warn (unless +info), no sender (replies are a dry run), no REDIS_URL"
} | tee "$OUT/environment.txt"

# Repeats are interleaved (all configurations, then all again) so that a burst of other load on
# the machine hits one run of several configurations rather than every run of one.
for rep in $(seq 1 "$REPEAT"); do
  for conns in $CONNECTIONS; do
    for cfg in $CONFIGS; do
      run_config "$cfg" "$conns" "$rep"
    done
  done
done

bash "$ROOT/bench/report.sh" "$OUT" | tee "$OUT/results.md"
echo "raw output: $OUT" >&2
