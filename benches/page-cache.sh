#!/usr/bin/env bash
# Puts each FILE into the page cache the way reading it from disk does: written
# back, dropped from the cache, then read once from start to end.
#
#   benches/page-cache.sh FILE...
#
# How a file sits in the page cache changes how fast it is read. A file just
# written 4 KiB at a time (mergecap, the synth example) is cached in 4 KiB
# pages; read from disk, the same file fills the cache through readahead in
# large folios (2 MiB here: Linux 6.18, ext4). Memory-mapped readers such as
# `portflow read` and the bare walk map a large folio with one page-table entry
# and pay 2.5× less to touch every byte; read(2)-based readers (tcpdump, tshark)
# barely notice. The benchmark scripts
# call this before measuring, so every tool reads the same, reproducible state
# that a capture read from disk would be in, whatever wrote the file last.
# Prints the kernel's FileHugePages before and after, as a record of the state.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 FILE..." >&2; exit 2; }
huge() { awk '/^FileHugePages:/ {print int($2 / 1024)}' /proc/meminfo; }
before=$(huge)
for f in "$@"; do
  sync "$f"
  # GNU dd: count=0 with iflag=nocache drops the whole file's cached pages.
  dd if="$f" iflag=nocache count=0 status=none
  dd if="$f" of=/dev/null bs=1M status=none
done
echo "page cache: $* dropped and read once; FileHugePages $before -> $(huge) MiB"
