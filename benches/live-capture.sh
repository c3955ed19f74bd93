#!/usr/bin/env bash
# Live capture without loss: replays a real capture into a veth pair between two
# network namespaces (made here, removed on exit) at increasing rates, then at
# top speed, and captures the far end with portflow and, under the same load,
# with tcpdump -w /dev/null. portflow runs once per thread count in THREADS
# (default "1 2": --workers 1, then two capture threads in a fanout group).
# Writes the figures to docs/benchmarks/live.md (the last run).
#
#   benches/live-capture.sh [PCAP] [RATES...]     (PORTFLOW_ARGS adds flags to portflow capture,
#                                                  THREADS the thread counts)
#
# PCAP defaults to bench-data/base.pcap (benches/make-input.sh). Needs root,
# tcpreplay and tcpdump. Only the script's own namespaces carry traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "live-capture: needs root (network namespaces, capture)" >&2; exit 2; }
input="${1:-bench-data/base.pcap}"
shift || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(50000 100000 200000 400000 topspeed)
[ -f "$input" ] || benches/make-input.sh
cargo build --release --locked -q --bin portflow
pf="$PWD/target/release/portflow"
A=pflA$$ B=pflB$$ VA=vla$$ VB=vlb$$
. scripts/netns.sh
trap 'netns_remove $A $B' EXIT
netns_pair $A $B $VA $VB
packets=$(capinfos -c -M "$input" | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')

replay() { # rate -> prints "sent rated_pps"
  local rate=$1 loops
  if [ "$rate" = topspeed ]; then
    loops=8; args=(--topspeed)
  else
    loops=$(( (rate * 2 + packets - 1) / packets )); args=(--pps "$rate")
  fi
  ip netns exec $A tcpreplay -i $VA "${args[@]}" --loop "$loops" "$input" 2>&1 \
    | awk '/Actual:/ {sent=$2} /Rated:/ {for (i=1;i<=NF;i++) if ($i ~ /pps/) pps=$(i-1)} END {print sent, pps}'
}

cpu_ticks() { # pid -> user + system clock ticks so far
  awk '{print $14 + $15}' "/proc/$1/stat"
}

run_portflow() { # rate threads
  local out; out=$(mktemp)
  ip netns exec $B "$pf" capture $VB --format json --workers "$2" ${PORTFLOW_ARGS:-} > "$out" 2>/dev/null &
  local pid=$!
  sleep 1
  local cpu0; cpu0=$(cpu_ticks $pid)
  local r; r=$(replay "$1")
  local cpu; cpu=$(( $(cpu_ticks $pid) - cpu0 ))
  sleep 1
  kill -INT $pid; wait $pid || true
  python3 - "$out" "$r" "$cpu" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); l = r["live"]
sent, pps = (sys.argv[2].split() + ["?", "?"])[:2]
each = "/".join(str(s["dropped_kernel"]) for s in l["sockets"])
packets = r["totals"]["packets"]
ns = int(sys.argv[3]) / int(sys.argv[4]) * 1e9 / max(packets, 1)
print(f"{sent}\t{pps}\t{packets}\t{l['dropped_kernel']}\t{each}\t{ns:.0f}")
PY
  rm -f "$out"
}

run_tcpdump() { # rate
  local err; err=$(mktemp)
  ip netns exec $B tcpdump -i $VB -w /dev/null 2> "$err" &
  local pid=$!
  sleep 1
  local r; r=$(replay "$1")
  sleep 1
  kill -INT $pid; wait $pid || true
  awk -v r="$r" '/packets captured/ {c=$1} /dropped by kernel/ {d=$1} END {split(r, s, " "); print s[1] "\t" s[2] "\t" c "\t" d}' "$err"
  rm -f "$err"
}

read -r -a threads <<< "${THREADS:-1 2}"
table="| offered rate | tool | sent | tcpreplay pps | captured | kernel drops | drops per thread | CPU ns/packet |
|---|---|---|---|---|---|---|---|"
add_row() { echo "$1" >&2; table+=$'\n'"$1"; }
for rate in "${rates[@]}"; do
  for t in "${threads[@]}"; do
    IFS=$'\t' read -r sent pps pfc pfd each ns < <(run_portflow "$rate" "$t")
    add_row "| $rate | portflow, $t thread(s) | $sent | $pps | $pfc | $pfd | $each | $ns |"
  done
  IFS=$'\t' read -r sent pps tdc tdd < <(run_tcpdump "$rate")
  add_row "| $rate | tcpdump | $sent | $pps | $tdc | $tdd | | |"
done
commit=$(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty)
{
  echo "# Last live-capture run"
  echo
  echo "Written by \`benches/live-capture.sh\`; earlier runs are in git's history of this file and in docs/benchmarks/archive/."
  echo
  echo "## Live capture run $(date -u +%Y-%m-%dT%H:%MZ) — commit $commit"
  echo
  echo "- input: \`$input\` ($packets packets) replayed with tcpreplay $(tcpreplay -V 2>&1 | head -1 | awk '{print $3}') into a veth pair"
  echo "  between two namespaces; \`portflow capture IF --format json --workers N ${PORTFLOW_ARGS:-}\` (64 MiB of kernel"
  echo "  buffer shared by the N fanout sockets, TPACKET_V3), then \`tcpdump -i IF -w /dev/null\` under the same replay;"
  echo "  each stopped with SIGINT 1 s after the replay. tcpreplay runs on the same machine and takes a core."
  echo "- CPU ns/packet: portflow's CPU time (all threads, user and kernel, /proc) during the replay over the packets"
  echo "  it analysed; one thread keeps up until about 10^9 / that many packets per second."
  echo "- CPU: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/,"",$2); print $2; exit}'), $(nproc) cores"
  echo
  echo "$table"
} | tee docs/benchmarks/live.md
