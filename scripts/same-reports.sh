#!/usr/bin/env bash
# Shows that a change left portflow's output alone: runs this tree's
# `portflow read` and the one of a reference revision (or binary) over every
# capture in fixtures/, every file of the shared corpus and the benchmark
# input, and compares, file by file, the JSON report, the table and `--flows`,
# each with --workers 1 and 2, together with the exit status and stderr.
#
#   scripts/same-reports.sh REV|BINARY [CORPUS]
#
# REV is built in a git worktree under target/same-reports/ (BINARY, a
# `portflow` executable, is used as it is). CORPUS defaults to
# $PORTFLOW_CORPUS or ../shared/corpus; bench-data/real.pcap is included when
# it exists (benches/make-input.sh). The JSON report's `generator.elapsed_s` is
# the one field that may differ (wall time). Prints one line per difference and
# exits 1 if there is any.
set -euo pipefail
cd "$(dirname "$0")/.."
ref="${1:?usage: scripts/same-reports.sh REV|BINARY [CORPUS]}"
corpus="${2:-${PORTFLOW_CORPUS:-../shared/corpus}}"
work=target/same-reports
mkdir -p "$work"
if [ -x "$ref" ] && [ -f "$ref" ]; then
  old=$(realpath "$ref")
else
  rev=$(git rev-parse --short "$ref")
  tree="$work/tree-$rev"
  if [ ! -x "$tree/target/release/portflow" ]; then
    rm -rf "$tree"
    git worktree add --detach -f "$tree" "$rev" >/dev/null
    (cd "$tree" && cargo build --release --locked -q --bin portflow)
  fi
  old=$(realpath "$tree/target/release/portflow")
fi
cargo build --release --locked -q --bin portflow
new=$(realpath target/release/portflow)

list="$work/inputs.txt"
{
  find fixtures -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.gz' \)
  [ -d "$corpus" ] && find "$corpus" -type f ! -name '*.md' ! -name '*.tsv'
  [ -f bench-data/real.pcap ] && echo bench-data/real.pcap
} | sort > "$list"
echo "same-reports: $(wc -l < "$list") inputs; reference $old" >&2

# One line per (input, run): input, run, and a hash of exit status, stdout
# (elapsed time removed) and stderr.
outputs() {
  local bin=$1 file=$2 workers mode
  for workers in 1 2; do
    for mode in json table flows; do
      local args=(read -q --workers "$workers")
      case $mode in
        json) args+=(--format json) ;;
        flows) args+=(--flows) ;;
      esac
      local err="$work/err.$BASHPID" h
      h=$({
        "$bin" "${args[@]}" "$file" 2>"$err" | sed -E 's/"elapsed_s": [0-9.e+-]+/"elapsed_s": 0/'
        echo "status ${PIPESTATUS[0]}"
        cat "$err"
      } | sha256sum | cut -c1-16)
      rm -f "$err"
      printf '%s\t%s-w%s\t%s\n' "$file" "$mode" "$workers" "$h"
    done
  done
}
export -f outputs
export work
# The reference's outputs are kept, by binary and input list, for the next run.
key=$(cat "$old" "$list" | sha256sum | cut -c1-16)
if [ ! -s "$work/old-$key.txt" ]; then
  xargs -a "$list" -d '\n' -P "$(nproc)" -I{} bash -c 'outputs "$0" "$1"' "$old" {} | sort > "$work/old-$key.tmp"
  mv "$work/old-$key.tmp" "$work/old-$key.txt"
fi
cp "$work/old-$key.txt" "$work/old.txt"
xargs -a "$list" -d '\n' -P "$(nproc)" -I{} bash -c 'outputs "$0" "$1"' "$new" {} | sort > "$work/new.txt"
if diff "$work/old.txt" "$work/new.txt" > "$work/diff.txt"; then
  echo "same-reports: identical: $(wc -l < "$work/new.txt") runs over $(wc -l < "$list") inputs" >&2
else
  grep '^>' "$work/diff.txt" | cut -f1,2 | sed 's/^> /differs: /'
  echo "same-reports: $(grep -c '^>' "$work/diff.txt") of $(wc -l < "$work/new.txt") runs differ" >&2
  exit 1
fi
