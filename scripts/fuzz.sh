#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/) for SECONDS (default 30) from a seed
# corpus made from fixtures/; fails on the first crash, leaving the input in
# fuzz/artifacts/TARGET/ (turn it into a regression test named after what it
# was). Needs cargo-fuzz (scripts/setup-debian.sh test installs it).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The targets are safe Rust, so by default they run without a sanitizer, which
# needs no nightly flags. FUZZ_SANITIZER=address adds AddressSanitizer; on a
# stable toolchain that takes RUSTC_BOOTSTRAP=1, which this script then sets.
# (With it, cargo's rustc probe failed in two of three fresh-clone CI runs,
# fed the text of a nightly-feature error as source; the cause was not found,
# and the default does not set it.)
set -euo pipefail
# Nothing here reads standard input; cargo and rustc must not either.
exec </dev/null
cd "$(dirname "$0")/.."
secs="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode read_file split chunks)
sanitizer="${FUZZ_SANITIZER:-none}"
if [ "$sanitizer" != none ]; then export RUSTC_BOOTSTRAP=1; fi
seeds=target/fuzz-seeds
rm -rf "$seeds"
cargo run --release --locked -q --example fuzz_seeds -- "$seeds"
# cargo fuzz has no --locked: the lock file is checked first (cargo metadata
# fails if it would have to change it), and must be the same afterwards.
lock_before=$(sha256sum fuzz/Cargo.lock)
host=$(rustc -vV | sed -n 's/^host: //p')
cargo metadata --locked --format-version 1 --filter-platform "$host" \
  --manifest-path fuzz/Cargo.toml >/dev/null
cargo fuzz build -O -s "$sanitizer"
for t in "${targets[@]}"; do
  corpus=target/fuzz-corpus/$t
  mkdir -p "$corpus"
  echo "fuzz: $t for ${secs}s"
  # -rss_limit_mb: an allocation of a claimed length is a failure too.
  log=target/fuzz-$t.log
  status=0
  cargo fuzz run -O -s "$sanitizer" "$t" "$corpus" "$seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|ERROR|panicked at|SUMMARY|Test unit written" "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $t failed (status $status); full log in $log" >&2
    exit 1
  fi
done
if [ "$(sha256sum fuzz/Cargo.lock)" != "$lock_before" ]; then
  echo "fuzz: fuzz/Cargo.lock changed during the run; it must be complete (commit the update)" >&2
  exit 1
fi
