#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/) for SECONDS (default 30) from a seed
# corpus made from fixtures/; fails on the first crash, leaving the input in
# fuzz/artifacts/TARGET/ (turn it into a regression test named after what it
# was). Needs cargo-fuzz (scripts/setup-debian.sh test installs it); the
# stable toolchain is told to accept cargo-fuzz's nightly flags.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
# Nothing here reads standard input; cargo and rustc must not either.
exec </dev/null
cd "$(dirname "$0")/.."
secs="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode read_file)
export RUSTC_BOOTSTRAP=1
seeds=target/fuzz-seeds
rm -rf "$seeds"
cargo run --release --locked -q --example fuzz_seeds -- "$seeds"
cargo fuzz build -O
for t in "${targets[@]}"; do
  corpus=target/fuzz-corpus/$t
  mkdir -p "$corpus"
  echo "fuzz: $t for ${secs}s"
  # -rss_limit_mb: an allocation of a claimed length is a failure too.
  log=target/fuzz-$t.log
  status=0
  cargo fuzz run -O "$t" "$corpus" "$seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|ERROR|panicked at|SUMMARY|Test unit written" "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $t failed (status $status); full log in $log" >&2
    exit 1
  fi
done
