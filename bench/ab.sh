#!/usr/bin/env bash
# bench/ab.sh: compare two builds of webhook-server with alternating load runs (A, B, A, B, …).
#
# Absolute throughput on a shared 2-core machine drifts by ±25 % within an hour, so a change is
# judged by runs of both builds interleaved in the same half hour, never against an older table.
# Each round copies one binary over target/release/webhook-server and runs bench/load.sh for
# CONFIGS with BUILD=0 (no compiling during a measurement), then the other.
#
# Usage:
#   git stash; cargo build --release -p webhook-server; cp target/release/webhook-server /tmp/A
#   git stash pop; cargo build --release -p webhook-server; cp target/release/webhook-server /tmp/B
#   bash bench/ab.sh /tmp/A /tmp/B                 # CONFIGS=pg, 3 rounds
#   CONFIGS="pg sqlite" ROUNDS=2 bash bench/ab.sh /tmp/A /tmp/B
#   SERVER_ENV_B="STORE_BATCH_LINGER_US=500" CONFIGS=sqlite bash bench/ab.sh /tmp/B /tmp/B
#                                                    # one binary, two settings
# Environment: CONFIGS [pg]  ROUNDS [3]  QUIET_WAIT [45]  OUT [target/bench-ab/<timestamp>]
#   SERVER_ENV_A, SERVER_ENV_B: extra server settings for A's and B's runs (bench/load.sh's
#   SERVER_ENV); DURATION, … are passed on to bench/load.sh.
# Prints one line per run (variant, round, configuration, 2xx/s, p99 ms, CPU server / postgres /
# wrk) and leaves each run's full results in OUT/<variant>-<round>/. The binary in
# target/release is left as B's; rebuild before other measurements.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ $# -ne 2 ] || [ ! -x "$1" ] || [ ! -x "$2" ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
A=$(realpath "$1")
B=$(realpath "$2")
CONFIGS=${CONFIGS:-pg}
ROUNDS=${ROUNDS:-3}
QUIET_WAIT=${QUIET_WAIT:-45}
OUT=${OUT:-$ROOT/target/bench-ab/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
echo "A=$A"
echo "B=$B"
[ -n "${SERVER_ENV_A:-}${SERVER_ENV_B:-}" ] && echo "SERVER_ENV_A=${SERVER_ENV_A:-} SERVER_ENV_B=${SERVER_ENV_B:-}"
echo "configs: $CONFIGS; rounds: $ROUNDS; results in $OUT"
for round in $(seq 1 "$ROUNDS"); do
  for variant in A B; do
    bin=$A
    [ "$variant" = B ] && bin=$B
    [ "$bin" -ef "$ROOT/target/release/webhook-server" ] || cp "$bin" "$ROOT/target/release/webhook-server"
    dir="$OUT/$variant-$round"
    server_env=${SERVER_ENV_A:-}
    [ "$variant" = B ] && server_env=${SERVER_ENV_B:-}
    SERVER_ENV="$server_env" BUILD=0 CONFIGS="$CONFIGS" PG_NOTLS=0 DIAG=0 LOG_COMPARE=0 QUIET_WAIT="$QUIET_WAIT" OUT="$dir" \
      bash "$ROOT/bench/load.sh" >"$dir.log" 2>&1 || {
      echo "$variant round $round: bench/load.sh failed, see $dir.log" >&2
      exit 1
    }
    grep '^| (' "$dir/results.md" | awk -F'|' -v v="$variant" -v r="$round" \
      '{gsub(/\*/, ""); printf "%s %s %s | %s/s | p99 %s ms | CPU %s\n", v, r, $2, $4, $6, $14}'
  done
done
