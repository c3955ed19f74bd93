#!/usr/bin/env bash
# Is a change faster or slower? Times two portflow binaries on one input,
# interleaved (A, B, A, B...: the machine's drift hits both alike), after a
# warm-up of each, with the input first put into the page cache as a read
# from disk leaves it (benches/page-cache.sh).
#
#   benches/ab.sh A B [FILE] [RUNS] [-- PORTFLOW READ ARGS...]
#
# A and B are portflow executables, or git revisions (built in worktrees under
# target/ab/). FILE defaults to bench-data/real.pcap, RUNS to 15. Prints each
# side's median and quartiles and B's median over A's; nothing is written.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: benches/ab.sh A B [FILE] [RUNS] [-- ARGS...]" >&2; exit 2; }
a=$1 b=$2
shift 2
file=bench-data/real.pcap runs=15
if [ $# -gt 0 ] && [ "$1" != -- ]; then file=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" != -- ]; then runs=$1; shift; fi
[ "${1:-}" = -- ] && shift
args=("$@")
[ -f "$file" ] || benches/make-input.sh

binary() { # REV|PATH -> path of a portflow binary
  if [ -x "$1" ] && [ -f "$1" ]; then realpath "$1"; return; fi
  local rev tree
  rev=$(git rev-parse --short "$1")
  tree=target/ab/$rev
  if [ ! -x "$tree/target/release/portflow" ]; then
    rm -rf "$tree"
    git worktree add --detach -f "$tree" "$rev" >/dev/null
    (cd "$tree" && cargo build --release --locked -q --bin portflow)
  fi
  realpath "$tree/target/release/portflow"
}
pa=$(binary "$a")
pb=$(binary "$b")
benches/page-cache.sh "$file" >&2
run() { # BINARY -> seconds
  local s e
  s=$EPOCHREALTIME
  "$1" read -q "${args[@]}" "$file" >/dev/null
  e=$EPOCHREALTIME
  awk -v s="$s" -v e="$e" 'BEGIN {printf "%.4f\n", e - s}'
}
run "$pa" >/dev/null
run "$pb" >/dev/null
ta=() tb=()
for _ in $(seq "$runs"); do
  ta+=("$(run "$pa")")
  tb+=("$(run "$pb")")
done
stats() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {printf "%.4f %.4f %.4f\n", v[int((NR+3)/4)], v[int((NR+1)/2)], v[int((3*NR+1)/4)]}'; }
read -r a1 am a3 < <(stats "${ta[@]}")
read -r b1 bm b3 < <(stats "${tb[@]}")
echo "input: $file, $runs interleaved rounds, args: ${args[*]:-(none)}"
echo "A $a: median $am s (quartiles $a1-$a3)"
echo "B $b: median $bm s (quartiles $b1-$b3)"
awk -v a="$am" -v b="$bm" 'BEGIN {printf "B/A: %.3f\n", b / a}'
