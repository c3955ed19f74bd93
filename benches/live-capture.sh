#!/usr/bin/env bash
# Live capture without loss: replays a real capture into a veth pair between two
# network namespaces (made here, removed on exit) at increasing rates, then at
# top speed, and captures the far end with portflow and, under the same load,
# with tcpdump -w /dev/null. Writes the figures to docs/benchmarks/live.md (the
# last run).
#
#   benches/live-capture.sh [PCAP] [RATES...]     (PORTFLOW_ARGS adds flags to portflow capture)
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
cleanup() {
  for ns in $A $B; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
}
trap cleanup EXIT
for ns in $A $B; do
  ip netns add $ns
  ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add $VA netns $A type veth peer name $VB netns $B
ip netns exec $A ip link set $VA up
ip netns exec $B ip link set $VB up
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

run_portflow() { # rate
  local out; out=$(mktemp)
  ip netns exec $B "$pf" capture $VB --format json ${PORTFLOW_ARGS:-} > "$out" 2>/dev/null &
  local pid=$!
  sleep 1
  local r; r=$(replay "$1")
  sleep 1
  kill -INT $pid; wait $pid || true
  python3 - "$out" "$r" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); l = r["live"]
sent, pps = (sys.argv[2].split() + ["?", "?"])[:2]
print(f"{sent}\t{pps}\t{r['totals']['packets']}\t{l['dropped_kernel']}\t{l['dropped_queue']}")
PY
  rm -f "$out"
}

run_tcpdump() { # rate
  local err; err=$(mktemp)
  ip netns exec $B tcpdump -i $VB -w /dev/null 2> "$err" &
  local pid=$!
  sleep 1
  replay "$1" > /dev/null
  sleep 1
  kill -INT $pid; wait $pid || true
  awk '/packets captured/ {c=$1} /dropped by kernel/ {d=$1} END {print c "\t" d}' "$err"
  rm -f "$err"
}

table="| offered rate | sent | tcpreplay pps | portflow captured | portflow kernel drops | portflow queue drops | tcpdump captured | tcpdump kernel drops |
|---|---|---|---|---|---|---|---|"
for rate in "${rates[@]}"; do
  IFS=$'\t' read -r sent pps pfc pfd pfq < <(run_portflow "$rate")
  IFS=$'\t' read -r tdc tdd < <(run_tcpdump "$rate")
  row="| $rate | $sent | $pps | $pfc | $pfd | $pfq | $tdc | $tdd |"
  echo "$row" >&2
  table+=$'\n'"$row"
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
  echo "  between two namespaces; \`portflow capture IF --format json ${PORTFLOW_ARGS:-}\` (64 MiB buffer, TPACKET_V3),"
  echo "  then \`tcpdump -i IF -w /dev/null\` under the same replay; each stopped with SIGINT 1 s after the replay."
  echo "- CPU: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/,"",$2); print $2; exit}'), $(nproc) cores"
  echo
  echo "$table"
} | tee docs/benchmarks/live.md
