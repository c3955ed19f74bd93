#!/usr/bin/env bash
# Builds the benchmark input from real captures: every clean, uncompressed
# Ethernet pcap of the shared corpus concatenated (mergecap -a), then repeated
# until the file reaches TARGET_MB (default 500), followed by seeded synthetic
# traffic for scale (synth/src/bin/synth.rs: 400,000 packets over 100,000 flows
# and 5,000 server ports). Output: bench-data/real.pcap (not committed).
# Usage: benches/make-input.sh [CORPUS] [TARGET_MB]
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${1:-${PORTFLOW_CORPUS:-../shared/corpus}}"
target_mb="${2:-500}"
mkdir -p bench-data
list=bench-data/real-files.txt
awk -F'\t' 'NR>1 && $2=="pcap" && $3=="" && $4=="ether" && $14=="clean" && $15=="ok" {print $1}' "$corpus/INDEX.tsv" \
  | sed "s#^#$corpus/#" > "$list"
echo "make-input: $(wc -l < "$list") clean Ethernet captures from $corpus" >&2
xargs -a "$list" mergecap -a -F pcap -s 65535 -w bench-data/base.pcap
base_mb=$(( $(stat -c %s bench-data/base.pcap) / 1000000 ))
copies=$(( target_mb / (base_mb > 0 ? base_mb : 1) + 1 ))
cargo build --release --locked -q -p portflow-synth --bin synth
target/release/synth scale 400000 100000 5000 bench-data/synth.pcap
args=()
for _ in $(seq "$copies"); do args+=(bench-data/base.pcap); done
args+=(bench-data/synth.pcap)
mergecap -a -F pcap -s 65535 -w bench-data/real.pcap "${args[@]}"
rm -f bench-data/synth.pcap
ls -l bench-data/real.pcap >&2
capinfos -c -s bench-data/real.pcap >&2 || true
