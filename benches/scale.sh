#!/usr/bin/env bash
# Cost per packet and memory as the number of flows and ports grows, and under a
# SYN flood; writes the tables to docs/benchmarks/scale.md (the last run).
#
#   benches/scale.sh [PACKETS] [RUNS]
#
# Inputs are made by the seeded generator (synth/src/bin/synth.rs) in bench-data/
# (not committed) and removed afterwards. Output is the human table to
# /dev/null (default settings otherwise); each input is put into the page cache
# as a read from disk leaves it (benches/page-cache.sh); times are medians of
# RUNS runs after a warm-up, RSS the peak over them.
#
# 1. Cost per packet on established flows, the curve: for each point of a flows
#    sweep (1 k to 800 k flows over 1,000 server ports; the default flow cap is
#    900,000) and a ports sweep (100 k flows over 10 to 60,000 server ports),
#    two inputs whose first PACKETS packets are the same (`synth established`:
#    the first packets open every flow, the rest pick an open flow at random),
#    PACKETS and 2 x PACKETS long. Both open, end and report the same flows and
#    ports, so the difference in time is what the second PACKETS packets cost:
#    (t(2N) - t(N)) / N is the cost per packet at that many flows and ports,
#    without the fixed cost of opening and ending flows and of the report,
#    which is shown apart (t(N) minus N packets at that cost).
# 2. Whole runs with flows picked at random (`synth scale`, PACKETS packets):
#    with many flows most packets open a flow, so this mixes in the cost of
#    opening and ending flows.
# 3. Floods of 1 M and 10 M SYNs from random sources, every one a new flow (the
#    flow cap evicts).
set -euo pipefail
cd "$(dirname "$0")/.."
packets="${1:-2000000}"
runs="${2:-5}"
cargo build --release --locked -q -p portflow -p portflow-synth --bin portflow --bin synth
pf=target/release/portflow
synth=target/release/synth
mkdir -p bench-data
f=bench-data/scale.pcap
f2=bench-data/scale2.pcap
trap 'rm -f "$f" "$f2"' EXIT

run() { # file -> "seconds rss_kb" (wall time to the microsecond, from bash's clock)
  local tf s e; tf=$(mktemp)
  s=$EPOCHREALTIME
  /usr/bin/time -o "$tf" -f "%M" "$pf" read -q "$1" >/dev/null 2>&1
  e=$EPOCHREALTIME
  awk -v s="$s" -v e="$e" -v m="$(cat "$tf")" 'BEGIN {printf "%.4f %d\n", e - s, m}'
  rm -f "$tf"
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

evicted() {
  "$pf" read -q --format json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["flows"]["evicted"])'
}

curve=()
established() { # label flows ports
  "$synth" established "$packets" "$2" "$3" "$f"
  "$synth" established "$((2 * packets))" "$2" "$3" "$f2"
  benches/page-cache.sh "$f" "$f2" >/dev/null
  run "$f" >/dev/null; run "$f2" >/dev/null
  local a=() b=() rss=0 t r
  for _ in $(seq "$runs"); do # interleaved, so drift hits both lengths alike
    read -r t r < <(run "$f"); a+=("$t")
    read -r t r < <(run "$f2"); b+=("$t"); if ((r > rss)); then rss=$r; fi
  done
  local t1 t2
  t1=$(printf '%s\n' "${a[@]}" | median)
  t2=$(printf '%s\n' "${b[@]}" | median)
  curve+=("$(python3 - "$1" "$2" "$3" "$packets" "$t1" "$t2" "$rss" "$(evicted "$f2")" <<'EOF'
import sys
label, flows, ports, n, t1, t2, rss, ev = sys.argv[1:]
n, t1, t2 = int(n), float(t1), float(t2)
per = (t2 - t1) / n
print(f"| {label} | {int(flows):,} | {int(ports):,} | {t1:.3f} | {t2:.3f} | {per * 1e9:.0f} | "
      f"{(t1 - n * per) * 1e3:.0f} | {int(rss) // 1024} | {ev} |")
EOF
)")
}
for flows in 1000 10000 100000 800000; do established "flows sweep" "$flows" 1000; done
for ports in 10 100 10000 60000; do established "ports sweep" 100000 "$ports"; done
rm -f "$f2"

whole() { # label packets flows ports
  benches/page-cache.sh "$f" >/dev/null
  run "$f" >/dev/null
  local ts=() rss=0 t r
  for _ in $(seq "$runs"); do
    read -r t r < <(run "$f"); ts+=("$t"); if ((r > rss)); then rss=$r; fi
  done
  local sec; sec=$(printf '%s\n' "${ts[@]}" | median)
  rows+=("| $1 | $2 | $3 | $4 | $(printf '%.2f' "$sec") | $(python3 -c "print(f'{$sec/$2*1e9:.0f}')") | $((rss / 1024)) | $(evicted "$f") |")
}
rows=()
for flows in 1000 10000 100000 1000000; do
  "$synth" scale "$packets" "$flows" 1000 "$f"
  whole "flows at random" "$packets" "$flows" 1000
done
for n in 1000000 10000000; do
  "$synth" flood "$n" "$f"
  whole "SYN flood" "$n" "$n" 1
done

commit=$(git rev-parse --short HEAD)$(git diff --quiet || echo "+dirty")
{
  echo "# Last scale run"
  echo
  echo "Written by \`benches/scale.sh\`; earlier runs are in git's history of this file and in docs/benchmarks/archive/."
  echo
  echo "## Scale run $(date -u +%Y-%m-%dT%H:%MZ) — commit $commit"
  echo
  echo "- \`benches/scale.sh $packets $runs\`: synthetic inputs (synth/src/bin/synth.rs, seed 7), default settings"
  echo "  (\`--flow-cap\` 900,000, \`--workers\` = $(nproc) cores), table output to /dev/null, median of $runs"
  echo "  runs after a warm-up, page cache as read from disk (benches/page-cache.sh); RSS is the peak over the runs."
  echo "- Cost per packet on established flows: N = $packets and 2N packets, the same first N"
  echo "  (\`synth established\`); per packet = (t(2N) - t(N)) / N; fixed = t(N) - N x per packet (opening, ending"
  echo "  and reporting the flows and ports, start-up). RSS and evictions are those of the 2N input."
  echo
  echo "| sweep | flows | server ports | t(N) s | t(2N) s | ns/packet | fixed ms | peak RSS MiB | flows evicted |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${curve[@]}"
  echo
  echo "- Whole runs, each packet on a flow picked at random (\`synth scale\`), and SYN floods: ns/packet is the"
  echo "  whole run's time over its packets."
  echo
  echo "| input | packets | distinct flows | server ports | median s | ns/packet | peak RSS MiB | flows evicted |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee docs/benchmarks/scale.md
