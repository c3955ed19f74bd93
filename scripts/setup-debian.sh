#!/usr/bin/env bash
# Installs the Debian packages portflow needs, only those missing.
#   scripts/setup-debian.sh build   libpcap-dev and gcc (to build and run; gcc links, and builds mimalloc)
#   scripts/setup-debian.sh test    + tshark, tcpdump, tcpreplay, nmap, socat, openssl, iproute2, prometheus, nfdump, softflowd,
#                                   nftables, iptables (tests),
#                                   and cargo-fuzz (scripts/fuzz.sh)
set -euo pipefail
want=(libpcap-dev pkg-config gcc)
if [ "${1:-build}" = test ]; then
  want+=(tshark tcpdump tcpreplay nmap socat iproute2 curl python3 wireshark-common openssl prometheus nfdump softflowd
    nftables iptables)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The one Rust version the project states: Cargo.toml's rust-version.
need=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' "$(dirname "$0")/../Cargo.toml")
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust $need or newer with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
have=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
  echo "setup: portflow needs Rust $need or newer (Cargo.toml rust-version); this is $have: rustup update" >&2
  exit 1
fi
if [ "${1:-build}" = test ] && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz" >&2
  cargo install --locked -q cargo-fuzz
fi
