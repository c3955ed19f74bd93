//! The Community ID of a flow (version 1, <https://github.com/corelight/community-id-spec>):
//! the same string Zeek, Suricata, Wireshark and Arkime give the same
//! conversation, so an analyst can pivot between their logs and portflow's.
//!
//! `"1:"` + base64 of the SHA-1 of: the seed (2 bytes), the two addresses
//! (4 bytes each for IPv4, 16 for IPv6), the IP protocol, a zero byte, and
//! for TCP, UDP and SCTP the two ports, all in network byte order, with the
//! endpoint whose (address, port) is the smaller first. Other protocols
//! (DCCP here) hash the addresses and the protocol alone.
use super::FlowKey;
use crate::decode::{mapped_v4, Addr};
use crate::services::Transport;
use base64::Engine;
use sha1::{Digest, Sha1};

/// The Community ID (v1) of `key` with `seed` (0 unless the analysts who
/// share the IDs chose another).
pub fn community_id(key: &FlowKey, seed: u16) -> String {
    let ports = matches!(
        key.transport,
        Transport::Tcp | Transport::Udp | Transport::Sctp
    )
    .then_some((key.lo_port, key.hi_port));
    v1(seed, &key.lo, &key.hi, key.transport.ip_proto(), ports)
}

/// The hash of one conversation between `a` and `b` (`ports`: `a`'s, then
/// `b`'s, for the protocols that have them), in either order.
fn v1(seed: u16, a: &Addr, b: &Addr, proto: u8, ports: Option<(u16, u16)>) -> String {
    let (pa, pb) = ports.unwrap_or((0, 0));
    let (mut a, mut b) = ((wire(a), pa), (wire(b), pb));
    if (a.0, a.1) > (b.0, b.1) {
        std::mem::swap(&mut a, &mut b);
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(a.0);
    h.update(b.0);
    h.update([proto, 0]);
    if ports.is_some() {
        h.update(a.1.to_be_bytes());
        h.update(b.1.to_be_bytes());
    }
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    )
}

/// An address as it is on the wire: 4 bytes for IPv4, 16 for IPv6.
fn wire(a: &Addr) -> &[u8] {
    if mapped_v4(a).is_some() {
        &a[12..]
    } else {
        &a[..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;

    fn key(t: Transport, a: Addr, ap: u16, b: Addr, bp: u16) -> FlowKey {
        FlowKey::new(t, a, ap, b, bp).0
    }

    fn v6(s: &str) -> Addr {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    fn v4(s: &str) -> Addr {
        v4_mapped(&s.parse::<std::net::Ipv4Addr>().unwrap().octets())
    }

    // The spec's baseline data (baseline/baseline_deflt.json and
    // baseline_seed1.json of corelight/community-id-spec), which Zeek,
    // Suricata and pycommunityid agree on.
    #[test]
    fn ids_match_the_spec_baseline() {
        let tcp = key(
            Transport::Tcp,
            v4("128.232.110.120"),
            34855,
            v4("66.35.250.204"),
            80,
        );
        assert_eq!(community_id(&tcp, 0), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        assert_eq!(community_id(&tcp, 1), "1:3V71V58M3Ksw/yuFALMcW0LAHvc=");
        let udp = key(Transport::Udp, v4("8.8.8.8"), 53, v4("192.168.1.52"), 54585);
        assert_eq!(community_id(&udp, 0), "1:d/FP5EW3wiY1vCndhwleRRKHowQ=");
        assert_eq!(community_id(&udp, 1), "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=");
        let tcp6 = key(
            Transport::Tcp,
            v6("2001:470:e5bf:dead:4957:2174:e82c:4887"),
            63943,
            v6("2607:f8b0:400c:c03::1a"),
            25,
        );
        assert_eq!(community_id(&tcp6, 0), "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=");
        assert_eq!(community_id(&tcp6, 1), "1:eJYTW6AOzFLlSUoESovMjnu7rMw=");
        let sctp = key(
            Transport::Sctp,
            v4("192.168.170.56"),
            7,
            v4("192.168.170.8"),
            7,
        );
        assert_eq!(community_id(&sctp, 0), "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=");
        // A protocol without ports (RSVP, 46), either way round.
        let (a, b) = (v4("10.1.12.1"), v4("10.1.12.2"));
        assert_eq!(v1(0, &a, &b, 46, None), "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=");
        assert_eq!(v1(0, &b, &a, 46, None), "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=");
        assert_eq!(v1(1, &b, &a, 46, None), "1:rYir8gphR31noO9iDRQmF/BteEI=");
    }

    #[test]
    fn both_directions_give_one_id() {
        let a = v4("10.0.0.1");
        let b = v4("127.0.0.1");
        let there = key(Transport::Tcp, a, 1234, b, 80);
        let back = key(Transport::Tcp, b, 80, a, 1234);
        assert_eq!(community_id(&there, 0), community_id(&back, 0));
        // Same address both ways: the ports decide the order.
        assert_eq!(
            v1(0, &a, &a, 17, Some((9, 7))),
            v1(0, &a, &a, 17, Some((7, 9)))
        );
    }
}
