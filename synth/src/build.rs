//! Packet builders for fixtures and tests: IP, TCP, UDP, ICMP, link layers and
//! tunnels, with correct lengths and checksums (TCP/UDP checksums by etherparse).
use etherparse::{TcpHeader, UdpHeader};

pub use portflow::decode::tcp_flags::{ACK, FIN, PSH, RST, SYN, URG};

/// An IP address for building packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ip {
    V4([u8; 4]),
    V6([u8; 16]),
}

pub fn v4(a: u8, b: u8, c: u8, d: u8) -> Ip {
    Ip::V4([a, b, c, d])
}

/// `2001:db8::n`.
pub fn v6(n: u16) -> Ip {
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0d;
    a[3] = 0xb8;
    a[14..16].copy_from_slice(&n.to_be_bytes());
    Ip::V6(a)
}

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// IPv4 header fields beyond addresses and protocol.
#[derive(Debug, Clone, Default)]
pub struct V4Opts {
    pub id: u16,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    pub more_fragments: bool,
    /// Options, padded to a multiple of 4 by the caller.
    pub options: Vec<u8>,
}

pub fn ipv4_with(src: [u8; 4], dst: [u8; 4], proto: u8, o: &V4Opts, payload: &[u8]) -> Vec<u8> {
    let ihl = 20 + o.options.len();
    let total = ihl + payload.len();
    let mut h = vec![0u8; ihl];
    h[0] = 0x40 | (ihl / 4) as u8;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..6].copy_from_slice(&o.id.to_be_bytes());
    let ff = o.frag_offset | if o.more_fragments { 0x2000 } else { 0 };
    h[6..8].copy_from_slice(&ff.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    h[20..].copy_from_slice(&o.options);
    let c = csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// IPv6 with a chain of extension headers given as (type, body) — each body is
/// padded to the 8-byte multiple the header needs.
pub fn ipv6_with(
    src: [u8; 16],
    dst: [u8; 16],
    ext: &[(u8, Vec<u8>)],
    proto: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut chain = Vec::new();
    for (i, (_, body)) in ext.iter().enumerate() {
        let next = ext.get(i + 1).map(|e| e.0).unwrap_or(proto);
        let mut e = vec![next, 0];
        e.extend_from_slice(body);
        while e.len() % 8 != 0 {
            e.push(0);
        }
        if ext[i].0 != 44 {
            e[1] = (e.len() / 8 - 1) as u8;
        }
        chain.extend_from_slice(&e);
    }
    let first = ext.first().map(|e| e.0).unwrap_or(proto);
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&((chain.len() + payload.len()) as u16).to_be_bytes());
    h[6] = first;
    h[7] = 64;
    h[8..24].copy_from_slice(&src);
    h[24..40].copy_from_slice(&dst);
    h.extend_from_slice(&chain);
    h.extend_from_slice(payload);
    h
}

/// An IP packet carrying `proto` over `payload`.
pub fn ip(src: Ip, dst: Ip, proto: u8, payload: &[u8]) -> Vec<u8> {
    match (src, dst) {
        (Ip::V4(s), Ip::V4(d)) => ipv4_with(s, d, proto, &V4Opts::default(), payload),
        (Ip::V6(s), Ip::V6(d)) => ipv6_with(s, d, &[], proto, payload),
        _ => panic!("mixed address families"),
    }
}

/// A TCP segment (header + payload) with a correct checksum.
#[allow(clippy::too_many_arguments)]
pub fn tcp_segment(
    src: Ip,
    sp: u16,
    dst: Ip,
    dp: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = TcpHeader::new(sp, dp, seq, 64240);
    h.acknowledgment_number = ack;
    h.fin = flags & FIN != 0;
    h.syn = flags & SYN != 0;
    h.rst = flags & RST != 0;
    h.psh = flags & PSH != 0;
    h.ack = flags & ACK != 0;
    h.urg = flags & URG != 0;
    h.checksum = match (src, dst) {
        (Ip::V4(s), Ip::V4(d)) => h.calc_checksum_ipv4_raw(s, d, payload).expect("small"),
        (Ip::V6(s), Ip::V6(d)) => h.calc_checksum_ipv6_raw(s, d, payload).expect("small"),
        _ => panic!("mixed address families"),
    };
    let mut out = h.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

pub fn udp_datagram(src: Ip, sp: u16, dst: Ip, dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = UdpHeader::without_ipv4_checksum(sp, dp, payload.len()).expect("small");
    h.checksum = match (src, dst) {
        (Ip::V4(s), Ip::V4(d)) => h.calc_checksum_ipv4_raw(s, d, payload).expect("small"),
        (Ip::V6(s), Ip::V6(d)) => h.calc_checksum_ipv6_raw(s, d, payload).expect("small"),
        _ => panic!("mixed address families"),
    };
    let mut out = h.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: Ip,
    sp: u16,
    dst: Ip,
    dp: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    ip(
        src,
        dst,
        6,
        &tcp_segment(src, sp, dst, dp, flags, seq, ack, payload),
    )
}

pub fn udp(src: Ip, sp: u16, dst: Ip, dp: u16, payload: &[u8]) -> Vec<u8> {
    ip(src, dst, 17, &udp_datagram(src, sp, dst, dp, payload))
}

/// ICMP(v6) port unreachable from `from`, quoting `original` (an IP packet).
pub fn port_unreachable(from: Ip, original: &[u8]) -> Vec<u8> {
    let (to, v6) = match original[0] >> 4 {
        4 => (Ip::V4(original[12..16].try_into().expect("4")), false),
        _ => (Ip::V6(original[8..24].try_into().expect("16")), true),
    };
    let quote = &original[..original.len().min(if v6 { 1232 } else { 28 })];
    let mut m = if v6 {
        vec![1, 4, 0, 0, 0, 0, 0, 0]
    } else {
        vec![3, 3, 0, 0, 0, 0, 0, 0]
    };
    m.extend_from_slice(quote);
    if !v6 {
        let c = csum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }
    ip(from, to, if v6 { 58 } else { 1 }, &m)
}

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

pub fn ethertype_of(ip_packet: &[u8]) -> u16 {
    if ip_packet[0] >> 4 == 6 {
        0x86dd
    } else {
        0x0800
    }
}

/// Ethernet II frame; `tags` are 802.1Q/802.1ad tags (TPID, VID), outermost first.
pub fn ethernet(ethertype: u16, tags: &[(u16, u16)], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    for (tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn eth_ip(ip_packet: &[u8]) -> Vec<u8> {
    ethernet(ethertype_of(ip_packet), &[], ip_packet)
}

/// Linux cooked capture v1 (LINKTYPE_LINUX_SLL).
pub fn sll(ip_packet: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6];
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&ethertype_of(ip_packet).to_be_bytes());
    f.extend_from_slice(ip_packet);
    f
}

/// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2).
pub fn sll2(ip_packet: &[u8]) -> Vec<u8> {
    let mut f = ethertype_of(ip_packet).to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(ip_packet);
    f
}

/// BSD null loopback with the address family in little- or big-endian order.
pub fn null(ip_packet: &[u8], big_endian: bool) -> Vec<u8> {
    let af: u32 = if ip_packet[0] >> 4 == 6 { 30 } else { 2 };
    let mut f = if big_endian {
        af.to_be_bytes().to_vec()
    } else {
        af.to_le_bytes().to_vec()
    };
    f.extend_from_slice(ip_packet);
    f
}

/// An Ethernet frame carrying a PPPoE session packet.
pub fn pppoe(ip_packet: &[u8]) -> Vec<u8> {
    let ppp_proto: u16 = if ip_packet[0] >> 4 == 6 {
        0x0057
    } else {
        0x0021
    };
    let mut p = vec![0x11, 0x00, 0x12, 0x34];
    p.extend_from_slice(&((ip_packet.len() + 2) as u16).to_be_bytes());
    p.extend_from_slice(&ppp_proto.to_be_bytes());
    p.extend_from_slice(ip_packet);
    ethernet(0x8864, &[], &p)
}

/// Outer endpoints of tunnels.
pub const TUNNEL_A: [u8; 4] = [192, 0, 2, 1];
pub const TUNNEL_B: [u8; 4] = [192, 0, 2, 2];

/// The tunnels the fixtures use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    Gre,
    ErspanII,
    ErspanIII,
    Vxlan,
    Geneve,
    GtpU,
    IpInIp,
    Teredo,
}

impl Tunnel {
    pub const ALL: [Tunnel; 8] = [
        Tunnel::Gre,
        Tunnel::ErspanII,
        Tunnel::ErspanIII,
        Tunnel::Vxlan,
        Tunnel::Geneve,
        Tunnel::GtpU,
        Tunnel::IpInIp,
        Tunnel::Teredo,
    ];
}

/// Wraps an inner IP packet in a tunnel between TUNNEL_A and TUNNEL_B and in
/// Ethernet. IP-in-IP of an IPv6 packet is 6in4; Teredo takes IPv6 only.
pub fn tunnel(kind: Tunnel, inner: &[u8]) -> Vec<u8> {
    let (a, b) = (Ip::V4(TUNNEL_A), Ip::V4(TUNNEL_B));
    let et = ethertype_of(inner);
    let outer = match kind {
        Tunnel::Gre => {
            let mut g = vec![0, 0];
            g.extend_from_slice(&et.to_be_bytes());
            g.extend_from_slice(inner);
            ip(a, b, 47, &g)
        }
        Tunnel::ErspanII => {
            // GRE with a sequence number, then the 8-byte ERSPAN II header, then Ethernet.
            let mut g = vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 1];
            g.extend_from_slice(&[0x10, 0x01, 0x00, 0x05, 0, 0, 0, 0]);
            g.extend_from_slice(&eth_ip(inner));
            ip(a, b, 47, &g)
        }
        Tunnel::ErspanIII => {
            let mut g = vec![0x10, 0, 0x22, 0xeb, 0, 0, 0, 1];
            g.extend_from_slice(&[0x20, 0x01, 0x00, 0x05, 0, 0, 0, 0, 0, 0, 0, 0]);
            g.extend_from_slice(&eth_ip(inner));
            ip(a, b, 47, &g)
        }
        Tunnel::Vxlan => {
            let mut v = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
            v.extend_from_slice(&eth_ip(inner));
            udp(a, 49152, b, 4789, &v)
        }
        Tunnel::Geneve => {
            // One 8-byte option (length 2 words... here 1 word of option header + 1 of data).
            let mut v = vec![0x02, 0, 0x65, 0x58, 0, 0, 0x2a, 0];
            v.extend_from_slice(&[0x01, 0x02, 0x03, 0x01, 0xde, 0xad, 0xbe, 0xef]);
            v.extend_from_slice(&eth_ip(inner));
            udp(a, 49153, b, 6081, &v)
        }
        Tunnel::GtpU => {
            let mut v = vec![0x30, 0xff];
            v.extend_from_slice(&(inner.len() as u16).to_be_bytes());
            v.extend_from_slice(&[0, 0, 0, 7]);
            v.extend_from_slice(inner);
            udp(a, 2152, b, 2152, &v)
        }
        Tunnel::IpInIp => ip(a, b, if et == 0x86dd { 41 } else { 4 }, inner),
        Tunnel::Teredo => {
            assert_eq!(et, 0x86dd, "Teredo carries IPv6");
            // With an origin indication header.
            let mut v = vec![0, 0, 0x12, 0x34, 0xc0, 0, 2, 9];
            v.extend_from_slice(inner);
            udp(a, 3544, b, 3544, &v)
        }
    };
    eth_ip(&outer)
}
