#!/usr/bin/env bash
# Measures `portflow read` against tcpdump, tshark and bare record walks on one
# input, in one go, and writes the figures to docs/benchmarks/compare.md (the
# last run; docs/BENCHMARKS.md holds the status against the targets). Two walks
# decode nothing: portflow's own file reader (the ceiling this project holds
# itself to) and pcap-parser's frame parser over a memory map (the walk the
# speed issue names); libpcap's walk is there for reference.
#
#   benches/compare.sh [FILE] [RUNS]
#
# FILE defaults to bench-data/real.pcap (built by benches/make-input.sh from the
# shared corpus). The file is first put into the page cache as a read from disk
# leaves it (benches/page-cache.sh; PAGE_CACHE=as-is skips that and measures the
# file as it is cached now). Then one warm-up round and RUNS rounds (default 5)
# in which every tool runs once, interleaved; the median wall time is reported
# with the peak RSS and the major page faults (pages read from disk during the
# timed runs: the page cache was meant to be warm, and this VM's DAMON pages
# out cold file pages under memory pressure, such as tshark's 1.1 GiB heap, so
# a run that had to read from disk shows here), and the median CPU time (user +
# system): portflow's CPU time over the machine's cores is the least wall time
# its work could take here, however well the threads shared it, and the run
# prints which tshark ratio that allows. Five more runs of `portflow read
# --timings` follow, and the one with the median total is recorded: wall time
# per phase and CPU time per thread, which show which thread set the pace.
set -euo pipefail
cd "$(dirname "$0")/.."
file="${1:-bench-data/real.pcap}"
runs="${2:-5}"
[ -f "$file" ] || benches/make-input.sh
command -v /usr/bin/time >/dev/null || { echo "compare: installing time" >&2; apt-get install -y -qq time >/dev/null; }
cargo build --release --locked -q --bin portflow --example walk
pf=target/release/portflow
walk=target/release/examples/walk
if [ "${PAGE_CACHE:-read}" = as-is ]; then
  cache="page cache as it was (PAGE_CACHE=as-is)"
else
  cache=$(benches/page-cache.sh "$file")
fi
packets=$(capinfos -c -M "$file" | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
size=$(stat -c %s "$file")

names=("portflow read" "portflow read --workers 1" "tcpdump -r F -w /dev/null" "tshark -q -z conv,tcp"
  "bare walk (portflow reader)" "libpcap walk (pcap crate)" "bare walk (pcap-parser)")
command_of() { # index -> cmd
  case $1 in
    0) cmd=("$pf" read -q "$file") ;;
    1) cmd=("$pf" read -q --workers 1 "$file") ;;
    2) cmd=(tcpdump -r "$file" -w /dev/null) ;;
    3) cmd=(tshark -n -q -r "$file" -z conv,tcp) ;;
    4) cmd=("$walk" reader "$file") ;;
    5) cmd=("$walk" libpcap "$file") ;;
    6) cmd=("$walk" pcap-parser "$file") ;;
  esac
}
# Runs are interleaved (every tool once per round), so the VM's drift over the
# minutes a run takes hits every tool alike; one warm-up round first. Wall time
# is bash's clock around /usr/bin/time (microseconds), peak RSS from it.
tf=$(mktemp)
times=() rss=() majflt=() cpus=()
for i in "${!names[@]}"; do
  command_of "$i"; "${cmd[@]}" >/dev/null 2>&1 || true
  times[i]="" rss[i]=0 majflt[i]=0 cpus[i]=""
done
for _ in $(seq "$runs"); do
  for i in "${!names[@]}"; do
    command_of "$i"
    s=$EPOCHREALTIME
    /usr/bin/time -o "$tf" -f "%M %F %U %S" "${cmd[@]}" >/dev/null 2>&1 || true
    e=$EPOCHREALTIME
    times[i]+="$(awk -v s="$s" -v e="$e" 'BEGIN {printf "%.4f", e - s}') "
    read -r r f u k < <(tail -1 "$tf")
    cpus[i]+="$(awk -v u="$u" -v k="$k" 'BEGIN {printf "%.2f", u + k}') "
    if ((r > rss[i])); then rss[i]=$r; fi
    majflt[i]=$((majflt[i] + f))
  done
done
rm -f "$tf"
# Where portflow's time went: five more runs with --timings; the one with the
# median total is recorded.
timings=$(for _ in 1 2 3 4 5; do
  "$pf" read -q --timings "$file" 2>&1 >/dev/null | paste -sd'\t'
done | awk -F'since the command started' '{split($1, a, "; "); split(a[length(a)], b, " "); print b[1] "\t" $0}' \
  | sort -n | sed -n 3p | cut -f2-)
huge_end=$(awk '/^FileHugePages:/ {print int($2 / 1024)}' /proc/meminfo)
results=$(mktemp)
for i in "${!names[@]}"; do
  command_of "$i"
  med=$(printf '%s\n' ${times[i]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  cpu_med=$(printf '%s\n' ${cpus[i]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${names[i]}" "$med" "${rss[i]}" "${majflt[i]}" "$cpu_med" "${cmd[*]}"
done > "$results"

pf_count=$("$pf" read -q --format json "$file" | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["packets"])')
cpu=$(lscpu | awk -F: '/Model name/ {gsub(/^ +/,"",$2); print $2; exit}')
commit=$(git rev-parse --short HEAD)$(git diff --quiet || echo "+dirty")

report=$(python3 - "$results" "$packets" "$size" "$(nproc)" <<'PY'
import sys
rows=[l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
packets=int(sys.argv[2]); size=int(sys.argv[3])
t={r[0]: float(r[1]) for r in rows}
cpu={r[0]: float(r[4]) for r in rows}
out=["| tool | median s | packets/s | MB/s | peak RSS MiB | major faults | CPU s | command |","|---|---|---|---|---|---|---|---|"]
for name, sec, rss, majflt, cpus, cmd in rows:
    s=float(sec) or 1e-9
    out.append(f"| {name} | {s:.3f} | {packets/s/1e6:.2f} M | {size/s/1e6:.0f} | {int(rss)/1024:.0f} | {majflt} | {float(cpus):.2f} | `{cmd}` |")
pf=t["portflow read"]
def ratio(k): return t[k]/pf if pf else float("nan")
out.append("")
out.append(f"Ratios (packets/s, portflow read = default settings): "
           f"{ratio('tcpdump -r F -w /dev/null'):.2f}x tcpdump, "
           f"{ratio('tshark -q -z conv,tcp'):.1f}x tshark, "
           f"{t['bare walk (portflow reader)']/pf*100:.0f}% of the bare walk's rate "
           f"({t['bare walk (pcap-parser)']/pf*100:.0f}% of pcap-parser's walk), "
           f"--workers 1 / default time: {t['portflow read --workers 1']/pf:.2f}.")
walk=t["bare walk (portflow reader)"]
out.append("")
out.append(f"Ceiling (the bare walk, which decodes nothing, against the same tools): "
           f"{t['tcpdump -r F -w /dev/null']/walk:.2f}x tcpdump, "
           f"{t['tshark -q -z conv,tcp']/walk:.1f}x tshark.")
cores=int(sys.argv[4])
out.append("")
out.append(f"CPU bound: portflow read used {cpu['portflow read']:.2f} s of CPU (user + system, median); "
           f"spread perfectly over {cores} cores that is {cpu['portflow read']/cores:.3f} s of wall time, "
           f"{t['tshark -q -z conv,tcp']/(cpu['portflow read']/cores):.0f}x tshark at best for the same work.")
print("\n".join(out))
PY
)

{
  echo "# Last compare run"
  echo
  echo "Written by \`benches/compare.sh\`; earlier runs are in git's history of this file and in docs/benchmarks/archive/."
  echo
  echo "## Run $(date -u +%Y-%m-%dT%H:%MZ) — commit $commit"
  echo
  echo "- input: \`$file\`, $size bytes, $packets packets (capinfos); portflow counted $pf_count"
  echo "- CPU: $cpu, $(nproc) cores; $(uname -sr)"
  echo "- versions: $("$pf" --version); $(tcpdump --version 2>&1 | head -1); $(tshark --version 2>/dev/null | head -1); $(tcpdump --version 2>&1 | grep -i libpcap | head -1)"
  echo "- $cache"
  echo "- $runs rounds after a warm-up round, every tool once per round (interleaved); wall time from bash's clock around /usr/bin/time, median; major faults summed over the timed runs; CPU s is user + system time (/usr/bin/time, 10 ms resolution), median; FileHugePages at the end $huge_end MiB"
  echo
  echo "$report"
  echo
  echo "Where portflow's time went (\`portflow read -q --timings\`, the run with the median total of five more):"
  echo
  printf '%s\n' "$timings" | tr '\t' '\n' | sed 's/^portflow: /- /'
} | tee docs/benchmarks/compare.md
rm -f "$results"
