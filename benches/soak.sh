#!/usr/bin/env bash
# A sensor that runs for a long time: replays a capture in a loop into a veth
# pair between two namespaces (made here, removed on exit) at a steady rate for
# MINUTES (default 10), captured by `portflow capture` with --metrics, --flows,
# --events and --ipfix (to an nfcapd in the namespace), and samples portflow's resident
# memory every 10 s. Writes docs/benchmarks/soak.md (the last run): the samples,
# the first and last minute's mean, kernel drops and flows lost.
#
#   benches/soak.sh [MINUTES] [PPS] [PCAP]      (root; PCAP defaults to bench-data/base.pcap)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "soak: needs root (namespaces, capture)" >&2; exit 2; }
minutes="${1:-10}" pps="${2:-20000}" input="${3:-bench-data/base.pcap}"
[ -f "$input" ] || benches/make-input.sh
cargo build --release --locked -q --bin portflow
pf="$PWD/target/release/portflow"
A=psoA$$ B=psoB$$ VA=vsa$$ VB=vsb$$
work=$(mktemp -d)
. scripts/netns.sh
cleanup() {
  netns_remove $A $B
  rm -rf "$work"
}
trap cleanup EXIT
netns_pair $A $B $VA $VB
ip netns exec $A ip link set $VA mtu 65535
ip netns exec $B ip link set $VB mtu 65535
chmod 1777 "$work"
ip netns exec $B nfcapd -b 127.0.0.1 -p 4739 -w "$work" -t 3600 >/dev/null 2>&1 &
ip netns exec $B "$pf" capture $VB --format json -o "$work/report.json" --metrics 9717 \
  --flows "$work/flows.ndjson" --events "$work/events.ndjson" --ipfix 127.0.0.1:4739 \
  > /dev/null 2>"$work/stderr" &
sleep 2
pid=$(ip netns pids $B | while read -r p; do
  [ "$(readlink /proc/$p/exe)" = "$pf" ] && echo "$p"; done | head -1)
end=$(( $(date +%s) + minutes * 60 ))
ip netns exec $A tcpreplay -q -i $VA --pps "$pps" --loop 0 "$input" >/dev/null 2>&1 &
replay=$!
samples=()
while [ "$(date +%s)" -lt "$end" ]; do
  sleep 10
  samples+=("$(awk '/VmRSS/ {print $2}' /proc/$pid/status)")
done
kill $replay 2>/dev/null || true
sleep 2
kill -INT "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
events=$(wc -l < "$work/events.ndjson")
python3 - "$work/report.json" "$events" "$minutes" "$pps" "$input" "${samples[@]}" <<'PY' | tee docs/benchmarks/soak.md
import json, subprocess, sys, datetime
r = json.load(open(sys.argv[1])); l = r["live"]
events, minutes, pps, input_ = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
kib = [int(s) for s in sys.argv[6:]]
first, last = kib[:6], kib[-6:]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print("# Last soak run\n")
print("Written by `benches/soak.sh`; earlier runs are in git's history of this file.\n")
print(f"## Run {datetime.datetime.utcnow():%Y-%m-%dT%H:%MZ} — commit {commit}\n")
print(f"- {minutes} min of `{input_}` replayed in a loop at {pps} packets/s into a veth; `portflow capture` with")
print("  `--metrics`, `--flows`, `--events` and `--ipfix` (to nfcapd); resident memory sampled every 10 s.")
print(f"- packets analysed {r['totals']['packets']:,}, flows {r['flows']['total']:,}, kernel drops {l['dropped_kernel']:,}, flows lost {l['flows_lost']:,}; findings {len(r['findings']):,}, event lines {events:,}")
print(f"- RSS (MiB): first minute mean {sum(first)/len(first)/1024:.1f}, last minute mean {sum(last)/len(last)/1024:.1f}, max {max(kib)/1024:.1f}")
print("- samples (MiB, every 10 s): " + ", ".join(f"{k/1024:.0f}" for k in kib))
PY
