#!/usr/bin/env bash
# bench/report.sh OUT_DIR: renders the Markdown report of a bench/load.sh run from its
# results.tsv / segments.tsv / environment.txt / *.notes.txt (load.sh calls it; run it again to
# re-render). With REPEAT > 1 each row is the median run by throughput among the runs that other
# programs disturbed least (their CPU during the run < CLEAN_OTHER % of one core, default 20); the
# throughput of every run is listed in brackets, disturbed runs marked with *.
set -euo pipefail
dir=${1:?usage: bench/report.sh OUT_DIR}

echo "### Load benchmark results"
echo
sed 's/^/    /' "$dir/environment.txt"
echo
awk -F'\t' -v ncpu="$(nproc)" -v clean="${CLEAN_OTHER:-20}" '
function verdict(ok) { return ok ? "met" : "**missed**" }
function label(c,   base, l) {
  base = c; sub(/\+info$/, "", base)
  if (base == "hello") l = "(a) bare hyper hello"
  else if (base == "verify") l = "(d) signature + parsing, no store"
  else if (base == "pg") l = "(b) webhook-server, PostgreSQL"
  else if (base == "pg-notls") l = "(b) webhook-server, PostgreSQL, sslmode=disable"
  else if (base == "pg-noworker") l = "diag: PostgreSQL, sslmode=disable, reply worker parked"
  else if (base == "sqlite") l = "(c) webhook-server, SQLite"
  else if (base == "sqlite-noworker") l = "diag: SQLite, reply worker parked"
  else l = base
  if (c ~ /\+info$/) l = l ", default info logging"
  return l
}
NR == 1 { next }
{
  k = $1 SUBSEP $2
  if (!(k in nrun)) { order[++nkeys] = k; cfg_of[k] = $1; conns_of[k] = $2; seen_conns[$2] = 1 }
  i = ++nrun[k]
  line[k, i] = $0
  r[k, i] = $3 + 0
  other = $23; sub(/%/, "", other)
  disturbed[k, i] = (other + 0 >= clean)
}
END {
  print "| configuration | conns | 2xx/s (each run) | p50 ms | p99 ms | max ms | non-2xx | socket errors | rows committed / 2xx | RSS idle MiB | RSS under load MiB (max sampled / VmHWM) | RSS after MiB | CPU server / postgres / wrk / kernel threads | other programs CPU | unanswered at the end · all answered after |"
  print "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---|---:|---:|"
  for (o = 1; o <= nkeys; o++) {
    k = order[o]; n = nrun[k]
    # the undisturbed runs (all of them if every run was disturbed), sorted by throughput;
    # the median one (lower median for even counts)
    nc = 0
    for (i = 1; i <= n; i++) if (!disturbed[k, i]) idx[++nc] = i
    if (nc == 0) for (i = 1; i <= n; i++) idx[++nc] = i
    for (i = 2; i <= nc; i++) for (j = i; j > 1 && r[k, idx[j]] < r[k, idx[j - 1]]; j--) { t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t }
    m = idx[int((nc + 1) / 2)]
    split(line[k, m], f, "\t")
    runs = ""
    if (n > 1) { for (i = 1; i <= n; i++) runs = runs (i > 1 ? " / " : "") r[k, i] (disturbed[k, i] ? "*" : ""); runs = " (" runs ")" }
    c = f[1]; cc = f[2]
    rate[c, cc] = f[3]; p99[c, cc] = f[5]; idle[c, cc] = f[13]; load[c, cc] = (f[14] > f[15] ? f[14] : f[15])
    valid[c, cc] = 1; invalid_runs = 0
    for (i = 1; i <= n; i++) {
      split(line[k, i], g, "\t")
      if (g[7] != 0 || g[8] != 0 || (g[9] != "-" && (g[12] != 0 || g[9] + 0 < g[10] + 0))) invalid_runs++
    }
    if (invalid_runs) valid[c, cc] = 0
    check = "n/a"
    if (f[9] != "-") {
      check = f[9] " / " f[10]
      if (f[12] > 0) check = check " ❌ " f[12] " wraps (duplicates)"
      else if (f[9] + 0 >= f[10] + 0 && f[9] + 0 <= f[11] + 0) check = check " ✓"
      else check = check " ❌"
    }
    if (invalid_runs && n > 1) check = check " (" invalid_runs " of " n " runs with errors or missing rows)"
    answered = (f[26] == "" || f[26] == "-") ? "-" : f[26] " · " f[27] " s"
    printf "| %s | %s | **%s**%s | %s | **%s** | %s | %s | %s | %s | %s | %s / %s | %s | %s / %s / %s / %s | %s | %s |\n",
      label(c), cc, f[3], runs, f[4], f[5], f[6], f[7], f[8], check, f[13], f[14], f[15], f[16], f[17], f[18], f[22], f[25], f[23], answered
  }
  print ""
  print "CPU: % of one core during the measurement (the machine has " ncpu " cores, " ncpu * 100 " %); postgres = the backends of the benchmark database + the background processes of PostgreSQL; kernel threads = ksoftirqd (loopback packets), kworker/jbd2 (disk flushes); other programs = whole machine − all of these. Runs where other programs used ≥ " clean " % are marked * and not chosen as the median when an undisturbed run exists."
  print "unanswered at the end · all answered after: messages still waiting for their reply when the load ended (acknowledgements have priority during a burst, see README), and the seconds from the end of the load until the last was answered."
  print "rows / 2xx ✓: every acknowledged webhook has its row (rows ≥ 2xx; the few extra rows are requests wrk abandoned at its deadline after they were committed), and no SID was sent twice."
  print ""
  for (c in seen_conns) {
    base = rate["hello", c]
    if (base > 0) {
      l = "Ratios at " c " connections, against (a) " base "/s:"
      if (("verify", c) in rate) l = l sprintf(" (d)/(a) = %.0f %%;", 100 * rate["verify", c] / base)
      if (("pg", c) in rate) l = l sprintf(" (b)/(a) = %.0f %%;", 100 * rate["pg", c] / base)
      if (("sqlite", c) in rate) l = l sprintf(" (c)/(a) = %.0f %%;", 100 * rate["sqlite", c] / base)
      if (("pg-notls", c) in rate) l = l sprintf(" (b, sslmode=disable)/(a) = %.0f %%;", 100 * rate["pg-notls", c] / base)
      print l
      print ""
    }
    t = ""
    if (("pg", c) in rate)
      t = t sprintf("- (b) PostgreSQL ≥ 30,000 committed webhooks/s with p99 < 10 ms: %.0f/s, p99 %s ms → %s\n",
        rate["pg", c], p99["pg", c], verdict(rate["pg", c] >= 30000 && p99["pg", c] < 10 && valid["pg", c]))
    if (("pg-notls", c) in rate)
      t = t sprintf("  - same with sslmode=disable: %.0f/s, p99 %s ms → %s\n",
        rate["pg-notls", c], p99["pg-notls", c], verdict(rate["pg-notls", c] >= 30000 && p99["pg-notls", c] < 10 && valid["pg-notls", c]))
    if (("sqlite", c) in rate)
      t = t sprintf("- (c) SQLite ≥ 25,000/s: %.0f/s → %s\n", rate["sqlite", c], verdict(rate["sqlite", c] >= 25000 && valid["sqlite", c]))
    if (("verify", c) in rate && base > 0)
      t = t sprintf("- (d) ≥ 60 %% of (a): %.0f %% → %s\n", 100 * rate["verify", c] / base, verdict(rate["verify", c] >= 0.6 * base))
    split("pg pg-notls sqlite", srv, " ")
    for (s = 1; s <= 3; s++) if ((srv[s], c) in rate)
      t = t sprintf("- RSS of webhook-server (%s): idle %.1f MiB (< 20 → %s), under load %.1f MiB (< 64 → %s)\n",
        srv[s], idle[srv[s], c], verdict(idle[srv[s], c] < 20), load[srv[s], c], verdict(load[srv[s], c] < 64))
    if (t != "") printf "Targets at %s connections (issue 7):\n\n%s\n", c, t
    for (kk in rate) {
      split(kk, parts, SUBSEP)
      if (parts[2] != c || parts[1] !~ /\+info$/) continue
      b = parts[1]; sub(/\+info$/, "", b)
      if ((b, c) in rate)
        printf "Logging (%s, %s connections): default info logging %.0f/s vs RUST_LOG=warn %.0f/s (%+.0f %%), p99 %s vs %s ms.\n\n",
          b, c, rate[parts[1], c], rate[b, c], 100 * (rate[parts[1], c] / rate[b, c] - 1), p99[parts[1], c], p99[b, c]
    }
  }
}' "$dir/results.tsv"

# Per-segment table when a configuration ran in more than one segment (--soak).
if awk -F'\t' 'NR > 1 && $3 > 1 { found = 1 } END { exit !found }' "$dir/segments.tsv"; then
  echo "#### Segments (stability over time)"
  echo
  echo "| configuration | conns | run | segment | 2xx/s | p50 ms | p99 ms | max ms | non-2xx | socket errors | RSS at end MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' 'NR > 1 { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $11, $3, $4, $5, $6, $7, $8, $9, $10 }' "$dir/segments.tsv"
  echo
  for f in "$dir"/*.rss.csv; do
    [ -e "$f" ] || continue
    awk -F, -v name="$(basename "$f" .rss.csv)" '
      NR == 2 { first = $2 } NR > 1 { last = $2; if ($2 > max) max = $2; n++ }
      END { if (n) printf "- RSS samples %s: %d samples, first %.1f MiB, last %.1f MiB, max %.1f MiB\n", name, n, first / 1024, last / 1024, max / 1024 }' "$f"
  done
  echo
fi

echo "#### Notes per run"
echo
for f in "$dir"/*.notes.txt; do
  [ -e "$f" ] || continue
  echo "- $(basename "$f" .notes.txt): $(paste -sd ';' "$f" | sed 's/;/; /g')"
done
