#!/usr/bin/env bash
# A detection scenario with real tools, captured with tcpdump:
#   host A (10.77.0.1, "client and scanner") and host B (10.77.0.2, "server"),
#   two network namespaces joined by a veth pair that this script makes and removes.
# On B: an HTTP server on a non-standard port (python3 -m http.server 8081), an
# SSH-like banner (socat, 2222), a Telnet-like banner with option negotiation
# (socat, 2323) and a TLS server (openssl s_server, 8443, a throw-away
# self-signed certificate). From A: curl with Basic credentials over plain HTTP,
# two banner grabs with socat, curl over HTTPS, then an nmap SYN scan of B.
#   scripts/scenario.sh OUT.pcap      (root; only the script's namespaces carry traffic)
set -euo pipefail
out=${1:?usage: scenario.sh OUT.pcap}
[ "$(id -u)" -eq 0 ] || { echo "scenario: needs root" >&2; exit 2; }
A=pfsA$$ B=pfsB$$ VA=vsa$$ VB=vsb$$
work=$(mktemp -d)
. "$(dirname "$0")/netns.sh"
cleanup() {
  disown -a 2>/dev/null || true
  netns_remove $A $B
  rm -rf "$work"
}
trap cleanup EXIT
netns_pair $A $B $VA $VB
ip netns exec $A ip addr add 10.77.0.1/24 dev $VA
ip netns exec $B ip addr add 10.77.0.2/24 dev $VB

printf 'echo "SSH-2.0-OpenSSH_9.2p1 Debian-2"; sleep 0.2\n' > "$work/ssh.sh"
printf 'printf "\\377\\375\\030\\377\\375\\040login: "; sleep 0.2\n' > "$work/telnet.sh"
chmod +x "$work"/*.sh
mkdir -p "$work/www" && echo "hello" > "$work/www/index.html"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=portflow-scenario \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
ip netns exec $B tcpdump -Z root -i $VB -U -w "$out" -s 0 not arp 2>/dev/null &
(cd "$work/www" && ip netns exec $B python3 -m http.server 8081 --bind 10.77.0.2 >/dev/null 2>&1 &)
ip netns exec $B socat TCP-LISTEN:2222,bind=10.77.0.2,reuseaddr,fork EXEC:"$work/ssh.sh" &
ip netns exec $B socat TCP-LISTEN:2323,bind=10.77.0.2,reuseaddr,fork EXEC:"$work/telnet.sh" &
ip netns exec $B openssl s_server -quiet -accept 8443 -www -cert "$work/cert.pem" -key "$work/key.pem" >/dev/null 2>&1 </dev/null &
for port in 8081 2222 2323 8443; do
  for _ in $(seq 50); do ip netns exec $A bash -c "exec 3<>/dev/tcp/10.77.0.2/$port" 2>/dev/null && break; sleep 0.1; done
done
sleep 0.5
ip netns exec $A curl -s -o /dev/null -u operator:hunter2 http://10.77.0.2:8081/
ip netns exec $A socat -T 1 - TCP:10.77.0.2:2222 </dev/null >/dev/null || true
ip netns exec $A socat -T 1 - TCP:10.77.0.2:2323 </dev/null >/dev/null || true
ip netns exec $A curl -sk -o /dev/null https://10.77.0.2:8443/
ip netns exec $A nmap -n -Pn -sS -T4 --max-retries 1 -p 1-1024,2222,2323,8081,8443 10.77.0.2 >/dev/null
sleep 1
kill -INT %1 2>/dev/null || pkill -INT -f "tcpdump -i $VB" || true
wait %1 2>/dev/null || true
echo "scenario: wrote $out" >&2
