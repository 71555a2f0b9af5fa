#!/usr/bin/env bash
# bench/report.sh OUT_DIR: renders the Markdown report of a bench/load.sh run from its
# results.tsv / segments.tsv / environment.txt (load.sh calls it; run it again to re-render).
set -euo pipefail
dir=${1:?usage: bench/report.sh OUT_DIR}

echo "### Load benchmark results"
echo
sed 's/^/    /' "$dir/environment.txt"
echo
awk -F'\t' -v ncpu="$(nproc)" '
function verdict(ok) { return ok ? "met" : "**missed**" }
function label(c) {
  if (c == "hello") return "(a) bare hyper hello"
  if (c == "verify") return "(d) signature + parsing, no store"
  if (c == "pg") return "(b) webhook-server, PostgreSQL"
  if (c == "pg-info") return "(b) PostgreSQL, default info logging"
  if (c == "pg-notls") return "(b) PostgreSQL, sslmode=disable"
  if (c == "pg-noworker") return "diag: PostgreSQL, sslmode=disable, reply worker parked"
  if (c == "sqlite") return "(c) webhook-server, SQLite"
  if (c == "sqlite-noworker") return "diag: SQLite, reply worker parked"
  return c
}
NR == 1 { next }
{
  n++; cfg[n] = $1; conns[n] = $2; rate[$1, $2] = $3; p99[$1, $2] = $5
  idle[$1, $2] = $13; load[$1, $2] = ($14 > $15 ? $14 : $15); valid[$1, $2] = ($9 == "-" || ($12 == 0 && $9 + 0 >= $10 + 0)) && $7 == 0 && $8 == 0
  seen_conns[$2] = 1
  check = "n/a"
  if ($9 != "-") {
    check = $9 " / " $10
    if ($12 > 0) check = check " ❌ " $12 " wraps (duplicates)"
    else if ($9 + 0 >= $10 + 0 && $9 + 0 <= $11 + 0) check = check " ✓"
    else check = check " ❌"
  }
  rows[n] = sprintf("| %s | %s | **%s** | %s | **%s** | %s | %s | %s | %s | %s | %s / %s | %s | %s / %s / %s | %s |",
    label($1), $2, $3, $4, $5, $6, $7, $8, check, $13, $14, $15, $16, $17, $18, $19, $20 "%")
}
END {
  print "| configuration | conns | 2xx/s | p50 ms | p99 ms | max ms | non-2xx | socket errors | rows committed / 2xx | RSS idle MiB | RSS under load MiB (max sampled / VmHWM) | RSS after MiB | CPU server / postgres / machine busy | machine busy before |"
  print "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---|---:|"
  for (i = 1; i <= n; i++) print rows[i]
  print ""
  print "CPU: % of one core (100 % = one core, the machine has " ncpu " cores); \"machine busy\" is the whole box (server + database + wrk + anything else running)."
  print "rows / 2xx ✓: every acknowledged webhook has its row (rows ≥ 2xx; the few extra rows are requests wrk abandoned at its deadline after they were committed), and no SID was sent twice."
  print ""
  for (c in seen_conns) {
    base = rate["hello", c]
    if (base > 0) {
      line = "Ratios at " c " connections, against (a) " base "/s:"
      if (("verify", c) in rate) line = line sprintf(" (d)/(a) = %.0f %%;", 100 * rate["verify", c] / base)
      if (("pg", c) in rate) line = line sprintf(" (b)/(a) = %.0f %%;", 100 * rate["pg", c] / base)
      if (("sqlite", c) in rate) line = line sprintf(" (c)/(a) = %.0f %%;", 100 * rate["sqlite", c] / base)
      print line
      print ""
    }
    t = ""
    if (("pg", c) in rate)
      t = t sprintf("- (b) PostgreSQL ≥ 30,000 committed webhooks/s with p99 < 10 ms: %.0f/s, p99 %s ms → %s\n",
        rate["pg", c], p99["pg", c], verdict(rate["pg", c] >= 30000 && p99["pg", c] < 10 && valid["pg", c]))
    if (("sqlite", c) in rate)
      t = t sprintf("- (c) SQLite ≥ 25,000/s: %.0f/s → %s\n", rate["sqlite", c], verdict(rate["sqlite", c] >= 25000 && valid["sqlite", c]))
    if (("verify", c) in rate && base > 0)
      t = t sprintf("- (d) ≥ 60 %% of (a): %.0f %% → %s\n", 100 * rate["verify", c] / base, verdict(rate["verify", c] >= 0.6 * base))
    split("pg sqlite", srv, " ")
    for (k = 1; k <= 2; k++) if ((srv[k], c) in rate)
      t = t sprintf("- RSS of webhook-server (%s): idle %.1f MiB (< 20 → %s), under load %.1f MiB (< 64 → %s)\n",
        srv[k], idle[srv[k], c], verdict(idle[srv[k], c] < 20), load[srv[k], c], verdict(load[srv[k], c] < 64))
    if (t != "") printf "Targets at %s connections (issue 7):\n\n%s\n", c, t
    if (("pg", c) in rate && ("pg-info", c) in rate)
      printf "Logging at %s connections: info logging %.0f/s vs RUST_LOG=warn %.0f/s (%+.0f %%), p99 %s vs %s ms.\n\n",
        c, rate["pg-info", c], rate["pg", c], 100 * (rate["pg-info", c] / rate["pg", c] - 1), p99["pg-info", c], p99["pg", c]
  }
}' "$dir/results.tsv"

# Per-segment table when a configuration ran in more than one segment (--soak).
if awk -F'\t' 'NR > 1 && $3 > 1 { found = 1 } END { exit !found }' "$dir/segments.tsv"; then
  echo "#### Segments (stability over time)"
  echo
  echo "| configuration | conns | segment | 2xx/s | p50 ms | p99 ms | max ms | non-2xx | socket errors | RSS at end MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' 'NR > 1 { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$dir/segments.tsv"
  echo
  for f in "$dir"/*.rss.csv; do
    [ -e "$f" ] || continue
    awk -F, -v name="$(basename "$f" .rss.csv)" '
      NR == 2 { first = $2 } NR > 1 { last = $2; if ($2 > max) max = $2; n++ }
      END { if (n) printf "RSS samples %s: %d samples, first %.1f MiB, last %.1f MiB, max %.1f MiB\n\n", name, n, first / 1024, last / 1024, max / 1024 }' "$f"
  done
fi

echo "#### Notes per run"
echo
for f in "$dir"/*.notes.txt; do
  [ -e "$f" ] || continue
  echo "- $(basename "$f" .notes.txt): $(paste -sd ';' "$f" | sed 's/;/; /g')"
done
