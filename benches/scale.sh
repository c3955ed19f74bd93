#!/usr/bin/env bash
# Cost per packet and memory as the number of flows and ports grows, and under a
# SYN flood; appends a table to docs/BENCHMARKS.md.
#
#   benches/scale.sh [PACKETS] [RUNS]
#
# Inputs are made by the seeded generator (examples/synth.rs) in bench-data/
# (not committed) and removed afterwards, PACKETS packets each (default
# 2,000,000): a flows sweep (1 k to 1 M flows over 1,000 server ports) and a
# ports sweep (100 k flows over 10 to 60,000 server ports); then floods of 1 M
# and 10 M SYNs from random sources, every one a new flow (the flow cap evicts).
set -euo pipefail
cd "$(dirname "$0")/.."
packets="${1:-2000000}"
runs="${2:-3}"
cargo build --release --locked -q --bin portflow --example synth
pf=target/release/portflow
synth=target/release/examples/synth
mkdir -p bench-data
f=bench-data/scale.pcap

measure() { # file -> "median_s peak_rss_kb"
  "$pf" read -q --format json -o /dev/null "$1" 2>/dev/null || true
  local tf; tf=$(mktemp)
  for _ in $(seq "$runs"); do
    /usr/bin/time -o "$tf" -a -f "%e %M" "$pf" read -q --format json -o /dev/null "$1" >/dev/null 2>&1
  done
  sort -n "$tf" | awk '{t[NR]=$1; if ($2>m) m=$2} END {print t[int((NR+1)/2)], m}'
  rm -f "$tf"
}

rows=()
row() { # label flows ports
  read -r sec rss < <(measure "$f")
  evicted=$("$pf" read -q --format json "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["flows"]["evicted"])')
  rows+=("| $1 | $packets | $2 | $3 | $sec | $(python3 -c "print(f'{$sec/$packets*1e9:.0f}')") | $((rss / 1024)) | $evicted |")
}
for flows in 1000 10000 100000 1000000; do
  "$synth" scale "$packets" "$flows" 1000 "$f"
  row "flows sweep" "$flows" 1000
done
for ports in 10 100 10000 60000; do
  "$synth" scale "$packets" 100000 "$ports" "$f"
  row "ports sweep" 100000 "$ports"
done
for n in 1000000 10000000; do
  "$synth" flood "$n" "$f"
  read -r sec rss < <(measure "$f")
  evicted=$("$pf" read -q --format json "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["flows"]["evicted"])')
  rows+=("| SYN flood | $n | $n | 1 | $sec | $(python3 -c "print(f'{$sec/$n*1e9:.0f}')") | $((rss / 1024)) | $evicted |")
done
rm -f "$f"

commit=$(git rev-parse --short HEAD)$(git diff --quiet || echo "+dirty")
{
  echo
  echo "## Scale run $(date -u +%Y-%m-%dT%H:%MZ) — commit $commit"
  echo
  echo "- \`benches/scale.sh $packets $runs\`: synthetic inputs (examples/synth.rs, seed 7), default settings"
  echo "  (\`--flow-cap\` 900,000, \`--workers\` = $(nproc) cores), median of $runs runs after a warm-up; RSS is the peak"
  echo "  over the runs. The ports sweep's 1,000-port point is the flows sweep's 100,000-flow row."
  echo
  echo "| input | packets | distinct flows | server ports | median s | ns/packet | peak RSS MiB | flows evicted |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee -a docs/BENCHMARKS.md
