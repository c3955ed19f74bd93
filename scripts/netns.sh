# Sourced by the scripts that carry traffic between two network namespaces
# (scripts/scenario.sh, benches/live-capture.sh, benches/soak.sh): only the
# namespaces they make here carry it, and they are removed on exit.
#
#   netns_pair A B VA VB     namespaces A and B (IPv6 off, loopback up) joined by
#                            the veth pair VA (in A) and VB (in B), both up
#   netns_remove A B         kills what runs in them and removes them

netns_pair() {
  local a=$1 b=$2 va=$3 vb=$4 ns
  for ns in "$a" "$b"; do
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip netns exec "$ns" ip link set lo up
  done
  ip link add "$va" netns "$a" type veth peer name "$vb" netns "$b"
  ip netns exec "$a" ip link set "$va" up
  ip netns exec "$b" ip link set "$vb" up
}

netns_remove() {
  local ns p
  for ns in "$@"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}
