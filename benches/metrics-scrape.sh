#!/usr/bin/env bash
# What one scrape of `capture --metrics` costs at the bounded cardinality:
# captures on loopback with --metrics-top 100 while UDP datagrams go to 500
# ports (so 100 ports have series of their own and the rest is "other"), then
# scrapes /metrics N times (default 500) one after another and reports the
# series served, the response size, the median and 99th-percentile time of a
# scrape (curl's time_total) and portflow's CPU time per scrape (/proc, all
# threads, the capture's own idle work measured alone and taken off).
#   benches/metrics-scrape.sh [N]         (root: captures on lo)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-500}"
[ "$(id -u)" -eq 0 ] || { echo "metrics-scrape: needs root (capture on lo)" >&2; exit 2; }
cargo build --release --locked -q --bin portflow
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/portflow capture lo -f 'udp and dst portrange 20000-20499' --metrics "$port" \
  --metrics-top 100 --format json -d 120s > /dev/null 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
sleep 1
python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for round in range(20):
    for p in range(20000, 20500):
        s.sendto(b"x" * (p % 200 + 1), ("127.0.0.1", p))
PY
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
# The capture's own CPU over the same wall time, without scrapes.
idle0=$(ticks); start=$(date +%s.%N)
curl -s "http://127.0.0.1:$port/metrics" -o /tmp/metrics-scrape.$$
for _ in $(seq "$n"); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/metrics"; done > /tmp/metrics-times.$$
busy=$(( $(ticks) - idle0 )); wall=$(echo "$(date +%s.%N) - $start" | bc)
idle1=$(ticks); sleep "$wall"; idle=$(( $(ticks) - idle1 ))
series=$(grep -c '^portflow_' /tmp/metrics-scrape.$$)
size=$(stat -c %s /tmp/metrics-scrape.$$)
sort -n /tmp/metrics-times.$$ | awk -v n="$n" -v busy="$busy" -v idle="$idle" -v hz="$hz" -v series="$series" -v size="$size" \
  '{t[NR]=$1} END {printf "metrics-scrape: %d series, %d bytes; %d scrapes: median %.2f ms, p99 %.2f ms; portflow CPU %.3f ms a scrape\n", series, size, n, t[int(n/2)]*1000, t[int(n*0.99)]*1000, (busy-idle)/hz*1000/n}'
rm -f /tmp/metrics-scrape.$$ /tmp/metrics-times.$$
