//! The traffic in `fixtures/generated/`: one seeded conversation set at the IP
//! layer, written under every link type portflow decodes, inside every tunnel,
//! cut by a small snaplen, fragmented, and as deliberately broken files.
//!
//! Regenerate with `make fixtures` (a test checks that the
//! committed files equal what this code makes).
use super::build::*;
use super::write::{Pcap, Pcapng};
use super::Rng;

/// Start of the fixtures' packet time: 2024-01-01T00:00:00Z.
pub const T0: u64 = 1_704_067_200_000_000_000;

/// Timestamped packets, written in order.
struct Script {
    out: Vec<(u64, Vec<u8>)>,
    t: u64,
    rng: Rng,
}

impl Script {
    /// Packet `p`, `step_us` after the one before.
    fn at(&mut self, p: Vec<u8>, step_us: u64) {
        self.t += step_us * 1000;
        self.out.push((self.t, p));
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        self.rng.bytes(n)
    }
}

/// The base conversations as timestamped IP packets.
pub fn conversations(seed: u64) -> Vec<(u64, Vec<u8>)> {
    let mut sc = Script {
        out: Vec::new(),
        t: T0,
        rng: Rng::new(seed),
    };
    http(&mut sc);
    tcp_oddities(&mut sc);
    udp_v4(&mut sc);
    ipv6(&mut sc);
    sc.out
}

const SERVER: Ip = Ip::V4([10, 0, 0, 1]);
const CLIENT: Ip = Ip::V4([10, 0, 0, 2]);

/// 1. HTTP: full handshake, request, three response segments, FIN both ways (SF).
fn http(sc: &mut Script) {
    let (c, srv) = (CLIENT, SERVER);
    sc.at(tcp(c, 40001, srv, 80, SYN, 1000, 0, &[]), 0);
    sc.at(tcp(srv, 80, c, 40001, SYN | ACK, 5000, 1001, &[]), 850);
    sc.at(tcp(c, 40001, srv, 80, ACK, 1001, 5001, &[]), 40);
    let req = b"GET /index.html HTTP/1.1\r\nHost: example\r\nUser-Agent: fixture\r\n\r\n";
    sc.at(tcp(c, 40001, srv, 80, PSH | ACK, 1001, 5001, req), 10);
    let mut seq = 5001;
    for n in [1400usize, 1400, 500] {
        let body = sc.bytes(n);
        sc.at(
            tcp(srv, 80, c, 40001, ACK, seq, 1001 + req.len() as u32, &body),
            300,
        );
        seq += n as u32;
    }
    sc.at(
        tcp(
            c,
            40001,
            srv,
            80,
            FIN | ACK,
            1001 + req.len() as u32,
            seq,
            &[],
        ),
        200,
    );
    sc.at(
        tcp(
            srv,
            80,
            c,
            40001,
            FIN | ACK,
            seq,
            1002 + req.len() as u32,
            &[],
        ),
        100,
    );
    sc.at(
        tcp(
            c,
            40001,
            srv,
            80,
            ACK,
            1002 + req.len() as u32,
            seq + 1,
            &[],
        ),
        50,
    );
}

/// 2-6. A refused SYN, an unanswered one, mid-stream TLS, and a service on
/// an unregistered high port reached with and without a handshake.
fn tcp_oddities(sc: &mut Script) {
    let srv = SERVER;
    // 2. SSH refused: SYN answered by RST (REJ).
    let c3 = v4(10, 0, 0, 3);
    sc.at(tcp(c3, 51000, srv, 22, SYN, 77, 0, &[]), 1000);
    sc.at(tcp(srv, 22, c3, 51000, RST | ACK, 0, 78, &[]), 120);

    // 3. Unanswered SYN and its retransmission to 8000 (S0).
    let c4 = v4(10, 0, 0, 4);
    sc.at(tcp(c4, 33333, srv, 8000, SYN, 9, 0, &[]), 500);
    sc.at(tcp(c4, 33333, srv, 8000, SYN, 9, 0, &[]), 1_000_000);

    // 4. Mid-stream TLS without a handshake: the well-known side is the service.
    let (s5, c6) = (v4(10, 0, 0, 5), v4(10, 0, 0, 6));
    for i in 0..3u32 {
        let body = sc.bytes(200);
        sc.at(tcp(c6, 50505, s5, 443, ACK | PSH, 100 + i, 900, &body), 700);
        let body = sc.bytes(1200);
        sc.at(tcp(s5, 443, c6, 50505, ACK | PSH, 900 + i, 103, &body), 300);
    }

    // 5. A service on an unregistered high port, with a handshake.
    let c7 = v4(10, 0, 0, 7);
    sc.at(tcp(c7, 55555, srv, 31337, SYN, 1, 0, &[]), 400);
    sc.at(tcp(srv, 31337, c7, 55555, SYN | ACK, 1, 2, &[]), 2_000);
    sc.at(tcp(c7, 55555, srv, 31337, ACK | PSH, 2, 2, b"hello"), 100);
    // 6. A later mid-stream flow to the same service from a lower-numbered client
    //    port: the known server wins over the scored fallback.
    let c8 = v4(10, 0, 0, 8);
    sc.at(tcp(c8, 1024, srv, 31337, ACK | PSH, 50, 60, b"again"), 300);
    sc.at(tcp(srv, 31337, c8, 1024, ACK, 60, 55, &[]), 100);
}

/// 7-8. DNS over UDP, and a UDP probe to a closed port refused by ICMP.
fn udp_v4(sc: &mut Script) {
    let (c, srv) = (CLIENT, SERVER);
    // 7. DNS over UDP.
    let dns = v4(10, 0, 0, 53);
    let body = sc.bytes(40);
    sc.at(udp(c, 53000, dns, 53, &body), 900);
    let body = sc.bytes(120);
    sc.at(udp(dns, 53, c, 53000, &body), 1_500);

    // 8. A UDP probe to a closed port, refused by ICMP.
    let probe = udp(c, 41000, srv, 9999, b"probe");
    sc.at(probe.clone(), 700);
    sc.at(port_unreachable(srv, &probe), 60);
}

/// 9-11. IPv6: HTTPS reset by the client, NTP, a probe refused by ICMPv6.
fn ipv6(sc: &mut Script) {
    // 9. IPv6 HTTPS: handshake, data, client RST (RSTO).
    let (c6a, s6) = (v6(2), v6(1));
    sc.at(tcp(c6a, 40002, s6, 443, SYN, 10, 0, &[]), 300);
    sc.at(tcp(s6, 443, c6a, 40002, SYN | ACK, 20, 11, &[]), 1_200);
    let body = sc.bytes(300);
    sc.at(tcp(c6a, 40002, s6, 443, ACK | PSH, 11, 21, &body), 80);
    let body = sc.bytes(1000);
    sc.at(tcp(s6, 443, c6a, 40002, ACK | PSH, 21, 311, &body), 400);
    sc.at(tcp(c6a, 40002, s6, 443, RST, 311, 0, &[]), 90);

    // 10. IPv6 NTP, same port on both sides.
    let ntp = v6(123);
    let body = sc.bytes(48);
    sc.at(udp(c6a, 123, ntp, 123, &body), 2_000);
    let body = sc.bytes(48);
    sc.at(udp(ntp, 123, c6a, 123, &body), 5_000);

    // 11. IPv6 UDP to a closed port, refused by ICMPv6.
    let probe6 = udp(c6a, 42000, s6, 7777, b"probe6");
    sc.at(probe6.clone(), 300);
    sc.at(port_unreachable(s6, &probe6), 40);
}

pub const SEED: u64 = 0x706f_7274_666c_6f77;

/// IPv4 options and IPv6 extension headers on otherwise plain packets.
fn options_and_extensions() -> Vec<(u64, Vec<u8>)> {
    let (c, s) = (v4(10, 1, 0, 2), v4(10, 1, 0, 1));
    let Ip::V4(cs) = c else { unreachable!() };
    let Ip::V4(ss) = s else { unreachable!() };
    let opts = V4Opts {
        id: 7,
        options: vec![0x94, 0x04, 0, 0, 0x01, 0x01, 0x01, 0x00],
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut t = T0;
    for (i, (src, sp, dst, dp, fl)) in [
        (cs, 40100, ss, 25, SYN),
        (ss, 25, cs, 40100, SYN | ACK),
        (cs, 40100, ss, 25, ACK),
    ]
    .into_iter()
    .enumerate()
    {
        let seg = tcp_segment(
            Ip::V4(src),
            sp,
            Ip::V4(dst),
            dp,
            fl,
            i as u32,
            i as u32,
            &[],
        );
        t += 1_000_000;
        out.push((t, ipv4_with(src, dst, 6, &opts, &seg)));
    }
    let (Ip::V6(a), Ip::V6(b)) = (v6(20), v6(21)) else {
        unreachable!()
    };
    let hop = (0u8, vec![5, 2, 0, 0, 1, 0]); // router alert + PadN
    let dst_opts = (60u8, vec![1, 4, 0, 0, 0, 0]); // PadN
    let routing = (43u8, vec![0, 0, 0, 0, 0, 0]); // type 0, segments left 0, no addresses
    for (i, ext) in [
        vec![hop.clone()],
        vec![hop, dst_opts.clone()],
        vec![routing, dst_opts],
    ]
    .into_iter()
    .enumerate()
    {
        let d = udp_datagram(Ip::V6(a), 5353 + i as u16, Ip::V6(b), 5353, b"ext");
        t += 1_000_000;
        out.push((t, ipv6_with(a, b, &ext, 17, &d)));
    }
    out
}

/// A UDP datagram in three IPv4 fragments, an IPv6 datagram in two, and one
/// later fragment whose first fragment never appears.
fn fragments() -> Vec<(u64, Vec<u8>)> {
    let mut rng = Rng::new(SEED ^ 1);
    let (c, s) = ([10, 2, 0, 2], [10, 2, 0, 1]);
    let d = udp_datagram(Ip::V4(c), 5000, Ip::V4(s), 5001, &rng.bytes(3000));
    let mut out = Vec::new();
    let mut t = T0;
    let pieces = [
        (0usize, 1480usize, true),
        (1480, 2960, true),
        (2960, d.len(), false),
    ];
    for (a, b, more) in pieces {
        let o = V4Opts {
            id: 0x4242,
            frag_offset: (a / 8) as u16,
            more_fragments: more,
            options: vec![],
        };
        t += 100_000;
        out.push((t, ipv4_with(c, s, 17, &o, &d[a..b])));
    }
    // Orphan: offset 185 (1480 bytes), id never seen.
    let o = V4Opts {
        id: 0x9999,
        frag_offset: 185,
        more_fragments: false,
        options: vec![],
    };
    t += 100_000;
    out.push((t, ipv4_with(c, s, 17, &o, &rng.bytes(100))));
    // A reply so the flow has both directions.
    t += 100_000;
    out.push((t, udp(Ip::V4(s), 5001, Ip::V4(c), 5000, b"ok")));

    let (Ip::V6(a6), Ip::V6(b6)) = (v6(30), v6(31)) else {
        unreachable!()
    };
    let d6 = udp_datagram(Ip::V6(a6), 6000, Ip::V6(b6), 6001, &rng.bytes(2000));
    let frag = |off: usize, more: bool| -> Vec<u8> {
        let mut body = vec![0u8; 6];
        let v = ((off / 8) as u16) << 3 | more as u16;
        body[0..2].copy_from_slice(&v.to_be_bytes());
        body[2..6].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        body
    };
    t += 100_000;
    out.push((
        t,
        ipv6_with(a6, b6, &[(44, frag(0, true))], 17, &d6[..1232]),
    ));
    t += 100_000;
    out.push((
        t,
        ipv6_with(a6, b6, &[(44, frag(1232, false))], 17, &d6[1232..]),
    ));
    out
}

/// A scanner at work beside a busy server: a SYN scan of 100 ports (two open),
/// a sweep of 30 hosts on 445, NULL/FIN/Xmas probes, and 200 clients completing
/// handshakes with one HTTPS server (which must not look like a scan).
pub fn scan_traffic() -> Vec<(u64, Vec<u8>)> {
    let mut sc = Script {
        out: Vec::new(),
        t: T0,
        rng: Rng::new(1),
    };
    let (scanner, target) = (v4(10, 9, 9, 9), v4(10, 0, 0, 1));
    for port in 1..=100u16 {
        sc.at(tcp(scanner, 40000, target, port, SYN, 7, 0, &[]), 200);
        if port == 22 || port == 80 {
            sc.at(tcp(target, port, scanner, 40000, SYN | ACK, 9, 8, &[]), 100);
            sc.at(tcp(scanner, 40000, target, port, RST, 8, 0, &[]), 50);
        } else {
            sc.at(tcp(target, port, scanner, 40000, RST | ACK, 0, 8, &[]), 100);
        }
    }
    for h in 1..=30u8 {
        sc.at(
            tcp(scanner, 40001, v4(10, 0, 2, h), 445, SYN, 1, 0, &[]),
            300,
        );
    }
    for (port, flags) in [(22u16, 0u8), (23, FIN), (25, FIN | PSH | URG)] {
        sc.at(tcp(scanner, 40002, target, port, flags, 1, 0, &[]), 400);
    }
    let web = v4(10, 0, 0, 80);
    for c in 0..200u16 {
        let client = v4(10, 1, (c >> 8) as u8, c as u8);
        let cp = 30000 + c;
        sc.at(tcp(client, cp, web, 443, SYN, 1, 0, &[]), 100);
        sc.at(tcp(web, 443, client, cp, SYN | ACK, 5, 2, &[]), 100);
        sc.at(tcp(client, cp, web, 443, ACK, 2, 6, &[]), 50);
    }
    sc.out
}

/// A named fixture file and its bytes.
pub struct Fixture {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub note: &'static str,
}

fn pcap_of(
    link: u32,
    snaplen: u32,
    be: bool,
    ns: bool,
    pkts: &[(u64, Vec<u8>)],
    f: impl Fn(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let mut w = Pcap::new(link, snaplen, be, ns);
    for (t, p) in pkts {
        w.packet(*t, &f(p));
    }
    w.buf
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("in memory");
    e.finish().expect("in memory")
}

/// Every generated fixture.
pub fn all() -> Vec<Fixture> {
    let base = conversations(SEED);
    let eth = pcap_of(1, 65535, false, false, &base, eth_ip);
    let mut out = link_types(&base, &eth);
    out.extend(encapsulations(&base));
    out.extend(broken(&eth));
    out
}

/// The base conversations under every link type (and compressed).
fn link_types(base: &[(u64, Vec<u8>)], eth: &[u8]) -> Vec<Fixture> {
    let mut out = Vec::new();
    out.push(Fixture {
        name: "eth.pcap",
        bytes: eth.to_vec(),
        note: "Ethernet, little-endian, microseconds",
    });
    out.push(Fixture {
        name: "eth-be-ns.pcap",
        bytes: pcap_of(1, 65535, true, true, base, eth_ip),
        note: "Ethernet, big-endian, nanoseconds",
    });
    out.push(Fixture {
        name: "eth.pcap.gz",
        bytes: gzip(eth),
        note: "eth.pcap, gzip-compressed",
    });
    let vlan = |p: &[u8]| {
        if p.len().is_multiple_of(2) {
            ethernet(ethertype_of(p), &[(0x8100, 100)], p)
        } else {
            ethernet(ethertype_of(p), &[(0x88a8, 200), (0x8100, 100)], p)
        }
    };
    out.push(Fixture {
        name: "vlan.pcap",
        bytes: pcap_of(1, 65535, false, false, base, vlan),
        note: "802.1Q tags, and stacked 802.1ad + 802.1Q tags on odd-length packets",
    });
    out.push(Fixture {
        name: "sll.pcap",
        bytes: pcap_of(113, 65535, false, false, base, sll),
        note: "Linux SLL",
    });
    out.push(Fixture {
        name: "sll2.pcap",
        bytes: pcap_of(276, 65535, false, false, base, sll2),
        note: "Linux SLL2",
    });
    out.push(Fixture {
        name: "null-le.pcap",
        bytes: pcap_of(0, 65535, false, false, base, |p| null(p, false)),
        note: "BSD null, family in little-endian order",
    });
    out.push(Fixture {
        name: "null-be.pcap",
        bytes: pcap_of(0, 65535, true, false, base, |p| null(p, true)),
        note: "BSD null from a big-endian host",
    });
    out.push(Fixture {
        name: "loop.pcap",
        bytes: pcap_of(108, 65535, false, false, base, |p| null(p, true)),
        note: "OpenBSD loop (family in network order)",
    });
    out.push(Fixture {
        name: "raw.pcap",
        bytes: pcap_of(101, 65535, false, false, base, |p| p.to_vec()),
        note: "raw IP",
    });
    out.push(Fixture {
        name: "pppoe.pcap",
        bytes: pcap_of(1, 65535, false, false, base, pppoe),
        note: "PPPoE sessions",
    });
    out.push(Fixture {
        name: "snaplen64.pcap",
        bytes: pcap_of(1, 64, false, false, base, eth_ip),
        note: "Ethernet cut to 64 bytes per packet",
    });
    out
}

/// The base conversations in tunnels and in pcapng; IP options and
/// extension headers, fragments, and scan traffic.
fn encapsulations(base: &[(u64, Vec<u8>)]) -> Vec<Fixture> {
    let mut out = Vec::new();
    let mut tun = Pcap::new(1, 65535, false, false);
    for (i, (t, p)) in base.iter().enumerate() {
        let v6 = p[0] >> 4 == 6;
        let kind = if v6 && i % 3 == 0 {
            Tunnel::Teredo
        } else {
            Tunnel::ALL[i % 7]
        };
        tun.packet(*t, &tunnel(kind, p));
    }
    out.push(Fixture {
        name: "tunnels.pcap",
        bytes: tun.buf,
        note: "each packet in a tunnel, cycling GRE, ERSPAN II, ERSPAN III, VXLAN, Geneve, GTP-U, IP-in-IP/6in4, Teredo",
    });
    let mut ng = Pcapng::new();
    let ifs = [
        ng.interface(1, 65535, 6),
        ng.interface(101, 1500, 9),
        ng.interface(276, portflow::source::MAX_SNAPLEN, 6),
    ];
    for (i, (t, p)) in base.iter().enumerate() {
        let which = i % 3;
        let frame = match which {
            0 => eth_ip(p),
            1 => p.clone(),
            _ => sll2(p),
        };
        ng.packet(ifs[which], *t, &frame);
    }
    out.push(Fixture {
        name: "mixed-link.pcapng",
        bytes: ng.buf,
        note: "pcapng, three interfaces: Ethernet (us), raw IP (ns, snaplen 1500), SLL2 (us)",
    });
    out.push(Fixture {
        name: "options-ext.pcap",
        bytes: pcap_of(1, 65535, false, false, &options_and_extensions(), eth_ip),
        note: "IPv4 options; IPv6 hop-by-hop, destination-options and routing headers",
    });
    out.push(Fixture {
        name: "fragments.pcap",
        bytes: pcap_of(1, 65535, false, false, &fragments(), eth_ip),
        note: "IPv4 UDP in 3 fragments, an orphan later fragment, IPv6 UDP in 2 fragments",
    });
    out.push(Fixture {
        name: "scan.pcap",
        bytes: pcap_of(1, 65535, false, false, &scan_traffic(), eth_ip),
        note: "a SYN scan of 100 ports (22 and 80 open), a 30-host sweep on 445, NULL/FIN/Xmas probes, and a busy HTTPS server with 200 clients",
    });
    out
}

/// Broken files, made from `eth` (eth.pcap).
fn broken(eth: &[u8]) -> Vec<Fixture> {
    let mut out = Vec::new();
    let cut = eth.len() - 700;
    out.push(Fixture {
        name: "bad-truncated.pcap",
        bytes: eth[..cut].to_vec(),
        note: "eth.pcap cut inside a record",
    });
    let mut bad = eth.to_vec();
    bad[0..4].copy_from_slice(b"NOPE");
    out.push(Fixture {
        name: "bad-magic.pcap",
        bytes: bad,
        note: "eth.pcap with a wrong magic number",
    });
    let first_len = u32::from_le_bytes(eth[24 + 8..24 + 12].try_into().expect("4")) as usize;
    let mut huge = eth[..24 + 16 + first_len].to_vec();
    let rec2 = huge.len();
    huge.extend_from_slice(&eth[rec2..rec2 + 16]);
    huge[rec2 + 8..rec2 + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    huge.extend_from_slice(&[0u8; 64]);
    out.push(Fixture {
        name: "bad-huge-record.pcap",
        bytes: huge,
        note: "first record intact, second claims a 2 GiB captured length",
    });
    out
}
