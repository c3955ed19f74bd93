//! Decoder tests over small byte arrays, each named for what it checks.
use super::*;
use portflow_synth::build::*;

fn dec(link: LinkType, data: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    decode(link, data, &mut d);
    d
}

fn err(d: &Decoded) -> Option<(Layer, Reason)> {
    d.error.map(|e| (e.layer, e.reason))
}

fn http_syn() -> Vec<u8> {
    tcp(v4(10, 0, 0, 2), 40001, v4(10, 0, 0, 1), 80, SYN, 1, 0, &[])
}

#[test]
fn ethernet_ipv4_tcp() {
    let d = dec(LinkType::ETHERNET, &eth_ip(&http_syn()));
    assert_eq!(d.kind, Kind::Transport);
    assert_eq!((d.sport, d.dport, d.proto, d.ip_version), (40001, 80, 6, 4));
    assert_eq!(d.tcp_flags, SYN);
    assert_eq!(to_ip(&d.src).to_string(), "10.0.0.2");
    assert_eq!(d.error, None);
}

#[test]
fn every_link_type_reaches_the_same_ports() {
    let p = udp(v6(2), 5353, v6(1), 53, b"q");
    let frames = [
        (LinkType::ETHERNET, eth_ip(&p)),
        (
            LinkType::ETHERNET,
            ethernet(0x86dd, &[(0x88a8, 1), (0x8100, 2)], &p),
        ),
        (LinkType::LINUX_SLL, sll(&p)),
        (LinkType::LINUX_SLL2, sll2(&p)),
        (LinkType::NULL, null(&p, false)),
        (LinkType::NULL, null(&p, true)),
        (LinkType::LOOP, null(&p, true)),
        (LinkType::RAW, p.clone()),
        (LinkType::IPV6, p.clone()),
        (LinkType::ETHERNET, pppoe(&p)),
    ];
    for (link, f) in frames {
        let d = dec(link, &f);
        assert_eq!(
            (d.kind, d.sport, d.dport, d.error),
            (Kind::Transport, 5353, 53, None),
            "{link:?}"
        );
    }
}

#[test]
fn every_tunnel_reaches_the_inner_transport() {
    let inner4 = tcp(v4(10, 9, 0, 1), 1234, v4(10, 9, 0, 2), 443, ACK, 1, 1, b"x");
    let inner6 = tcp(v6(7), 1234, v6(8), 443, ACK, 1, 1, b"x");
    for kind in Tunnel::ALL {
        let inner = if kind == Tunnel::Teredo {
            &inner6
        } else {
            &inner4
        };
        let d = dec(LinkType::ETHERNET, &tunnel(kind, inner));
        assert_eq!(
            (d.kind, d.sport, d.dport, d.error),
            (Kind::Transport, 1234, 443, None),
            "{kind:?}"
        );
        assert!(d.tunnel.is_some(), "{kind:?} counted");
    }
    let d = dec(LinkType::ETHERNET, &tunnel(Tunnel::IpInIp, &inner6));
    assert_eq!(d.tunnel, Some(TunnelKind::SixInFour));
}

#[test]
fn truncated_at_every_length_never_panics_and_says_so() {
    let frame = eth_ip(&tcp(
        v4(1, 2, 3, 4),
        1,
        v4(5, 6, 7, 8),
        2,
        SYN,
        0,
        0,
        b"payload",
    ));
    for n in 0..frame.len() {
        let d = dec(LinkType::ETHERNET, &frame[..n]);
        if n < 14 + 20 + 4 {
            assert_ne!(d.kind, Kind::Transport, "no ports before byte {n}");
            assert_eq!(
                d.error.map(|e| e.reason),
                Some(Reason::Truncated),
                "cut at {n}"
            );
        } else {
            assert_eq!((d.sport, d.dport), (1, 2), "ports known from byte {n}");
        }
    }
}

#[test]
fn truncated_tunnels_never_panic() {
    let inner = udp(v6(1), 1, v6(2), 2, b"0123456789");
    for kind in Tunnel::ALL {
        let f = tunnel(kind, &inner);
        for n in 0..f.len() {
            let _ = dec(LinkType::ETHERNET, &f[..n]);
        }
    }
}

#[test]
fn ipv4_ihl_below_five() {
    let mut p = http_syn();
    p[0] = 0x44;
    assert_eq!(
        err(&dec(LinkType::RAW, &p)),
        Some((Layer::Ipv4, Reason::BadHeaderLength))
    );
}

#[test]
fn ipv4_ihl_past_the_end() {
    let mut p = http_syn();
    p[0] = 0x4f;
    p.truncate(40);
    assert_eq!(
        err(&dec(LinkType::RAW, &p)),
        Some((Layer::Ipv4, Reason::Truncated))
    );
}

#[test]
fn ipv4_total_length_below_header() {
    let mut p = http_syn();
    p[2] = 0;
    p[3] = 10;
    assert_eq!(
        err(&dec(LinkType::RAW, &p)),
        Some((Layer::Ipv4, Reason::BadLength))
    );
}

#[test]
fn ipv4_total_length_past_capture_is_snaplen_not_error() {
    let mut p = http_syn();
    p[2] = 0x05;
    let d = dec(LinkType::RAW, &p);
    assert_eq!((d.kind, d.error), (Kind::Transport, None));
}

#[test]
fn ipv4_bad_version_behind_ethertype() {
    let mut p = http_syn();
    p[0] = 0x65;
    assert_eq!(
        err(&dec(LinkType::ETHERNET, &ethernet(0x0800, &[], &p))),
        Some((Layer::Ipv4, Reason::BadVersion))
    );
}

#[test]
fn tcp_data_offset_below_five() {
    let mut p = http_syn();
    p[20 + 12] = 0x40;
    let d = dec(LinkType::RAW, &p);
    assert_eq!(err(&d), Some((Layer::Tcp, Reason::BadHeaderLength)));
    assert_eq!(d.dport, 80, "ports still count");
}

#[test]
fn tcp_data_offset_past_the_end() {
    // The whole datagram is there and its TCP header claims 60 bytes: a lie.
    let mut p = http_syn();
    p[20 + 12] = 0xf0;
    let d = dec(LinkType::RAW, &p);
    assert_eq!(d.kind, Kind::Transport);
    assert_eq!(err(&d), Some((Layer::Tcp, Reason::BadHeaderLength)));
    assert_eq!(d.dport, 80, "ports still count");
    // The IP header says 60 more bytes follow and the capture stopped inside
    // the options: a snaplen cut, not an error.
    let mut p = http_syn();
    p[20 + 12] = 0xf0;
    let total = (p.len() + 40) as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    let d = dec(LinkType::RAW, &p);
    assert_eq!((d.kind, d.error), (Kind::Transport, None));
}

#[test]
fn ipv6_extension_chain_that_does_not_end() {
    let (Ip::V6(a), Ip::V6(b)) = (v6(1), v6(2)) else {
        unreachable!()
    };
    let ext: Vec<(u8, Vec<u8>)> = (0..1100).map(|_| (60u8, vec![0; 6])).collect();
    let p = ipv6_with(a, b, &ext, 17, &udp_datagram(v6(1), 1, v6(2), 2, b""));
    assert_eq!(
        err(&dec(LinkType::RAW, &p)),
        Some((Layer::Ipv6, Reason::TooDeep))
    );
}

#[test]
fn ipv6_extension_length_past_the_end() {
    let (Ip::V6(a), Ip::V6(b)) = (v6(1), v6(2)) else {
        unreachable!()
    };
    let mut p = ipv6_with(a, b, &[(0, vec![0; 6])], 17, &[]);
    p[41] = 200;
    assert_eq!(
        err(&dec(LinkType::RAW, &p)),
        Some((Layer::Ipv6, Reason::Truncated))
    );
}

#[test]
fn vlan_tags_without_end() {
    let tags: Vec<(u16, u16)> = (0..20).map(|_| (0x8100, 1)).collect();
    let f = ethernet(0x0800, &tags, &http_syn());
    assert_eq!(
        err(&dec(LinkType::ETHERNET, &f)),
        Some((Layer::Vlan, Reason::TooDeep))
    );
}

#[test]
fn tunnel_in_tunnel_is_bounded() {
    let mut p = udp(v4(1, 1, 1, 1), 1, v4(2, 2, 2, 2), 2, b"x");
    for _ in 0..10 {
        p = ip(v4(3, 3, 3, 3), v4(4, 4, 4, 4), 4, &p);
    }
    assert_eq!(
        err(&dec(LinkType::RAW, &p)),
        Some((Layer::Tunnel, Reason::TooDeep))
    );
}

#[test]
fn fragments_first_has_ports_later_has_id() {
    let d = udp_datagram(v4(1, 1, 1, 1), 7, v4(2, 2, 2, 2), 9, &[0; 100]);
    let first = ipv4_with(
        [1, 1, 1, 1],
        [2, 2, 2, 2],
        17,
        &V4Opts {
            id: 5,
            more_fragments: true,
            ..Default::default()
        },
        &d[..64],
    );
    let later = ipv4_with(
        [1, 1, 1, 1],
        [2, 2, 2, 2],
        17,
        &V4Opts {
            id: 5,
            frag_offset: 8,
            ..Default::default()
        },
        &d[64..],
    );
    let a = dec(LinkType::RAW, &first);
    assert_eq!(
        (a.kind, a.frag.is_fragment, a.frag.first, a.dport),
        (Kind::Transport, true, true, 9)
    );
    let b = dec(LinkType::RAW, &later);
    assert_eq!((b.kind, b.frag.id, b.proto), (Kind::Fragment, 5, 17));
}

#[test]
fn icmp_port_unreachable_quotes_the_refused_port() {
    let probe = udp(v4(10, 0, 0, 2), 41000, v4(10, 0, 0, 1), 9999, b"p");
    let d = dec(LinkType::RAW, &port_unreachable(v4(10, 0, 0, 1), &probe));
    assert_eq!(d.kind, Kind::Icmp);
    assert!(d.unreachable.valid);
    assert_eq!((d.unreachable.proto, d.unreachable.port), (17, 9999));
    assert_eq!(to_ip(&d.unreachable.host).to_string(), "10.0.0.1");
    let probe6 = udp(v6(2), 41000, v6(1), 7777, b"p");
    let d6 = dec(LinkType::RAW, &port_unreachable(v6(1), &probe6));
    assert_eq!((d6.unreachable.valid, d6.unreachable.port), (true, 7777));
}

#[test]
fn non_ip_frames_are_counted_as_such() {
    let arp = ethernet(0x0806, &[], &[0; 28]);
    let d = dec(LinkType::ETHERNET, &arp);
    assert_eq!((d.kind, d.ethertype, d.error), (Kind::NonIp, 0x0806, None));
    let stp = {
        let mut f = ethernet(0x0026, &[], &[0x42, 0x42, 0x03]);
        f.resize(60, 0);
        f
    };
    assert_eq!(dec(LinkType::ETHERNET, &stp).kind, Kind::NonIp);
}

#[test]
fn unknown_link_type_is_an_error_not_a_guess() {
    let d = dec(LinkType(147), &eth_ip(&http_syn()));
    assert_eq!(err(&d), Some((Layer::Link, Reason::UnsupportedLinkType)));
}

#[test]
fn payload_offset_points_at_the_data() {
    let f = eth_ip(&tcp(
        v4(1, 1, 1, 1),
        1,
        v4(2, 2, 2, 2),
        2,
        PSH | ACK,
        0,
        0,
        b"GET /",
    ));
    let d = dec(LinkType::ETHERNET, &f);
    let o = d.payload_offset as usize;
    assert_eq!(&f[o..o + d.payload_len as usize], b"GET /");
}

/// Found by fuzzing (fuzz/fuzz_targets/decode.rs): GRE-in-UDP carrying an IPv4
/// TCP header cut inside its options. The decoder pointed at the frame's end
/// with the outer UDP payload's length (110..178 of a 110-byte frame).
#[test]
fn gre_in_udp_with_cut_inner_tcp_options_keeps_the_payload_in_the_frame() {
    let hex = "000000000000000000000000080045000090b288400040110118c0a8006bc0a80501a01b1292\
               007c000000000800450000702ba6400040065438ac110002c0ffffffffffffffffffffffff\
               ffffffffffffffffffffffffffffffffffffffffffffffffffffff3a202a2f2a0d0a0d0a";
    let f: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let d = dec(LinkType::ETHERNET, &f);
    let end = d.payload_offset as usize + d.payload_len as usize;
    assert!(end <= f.len(), "payload ends at {end} of {}", f.len());
    assert_eq!(d.payload_len, 0, "no inner payload was captured");
}

#[test]
fn agrees_with_etherparse_on_plain_packets() {
    let mut rng = portflow_synth::Rng::new(7);
    for _ in 0..500 {
        let (sp, dp) = (rng.range(1, 65535) as u16, rng.range(1, 65535) as u16);
        let n = rng.range(0, 300) as usize;
        let payload = rng.bytes(n);
        let p = match rng.range(0, 3) {
            0 => tcp(
                v4(10, 0, 0, 1),
                sp,
                v4(10, 0, 0, 2),
                dp,
                ACK,
                1,
                1,
                &payload,
            ),
            1 => udp(v4(10, 0, 0, 1), sp, v4(10, 0, 0, 2), dp, &payload),
            2 => tcp(v6(1), sp, v6(2), dp, SYN, 1, 1, &payload),
            _ => udp(v6(1), sp, v6(2), dp, &payload),
        };
        let f = eth_ip(&p);
        let theirs = etherparse::SlicedPacket::from_ethernet(&f).expect("valid");
        let (tsp, tdp) = match theirs.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
            Some(etherparse::TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
            _ => panic!("transport"),
        };
        let d = dec(LinkType::ETHERNET, &f);
        assert_eq!((d.sport, d.dport), (tsp, tdp));
        if sp == 4789
            || dp == 4789
            || sp == 6081
            || dp == 6081
            || sp == 2152
            || dp == 2152
            || sp == 3544
            || dp == 3544
        {
            continue; // may be taken for a tunnel
        }
        assert_eq!(d.payload_len as usize, payload.len());
    }
}

#[test]
fn ip_order_sorts_as_std_addresses_do() {
    let addrs: Vec<Addr> = [
        "::",
        "::1",
        "::ffff:0.0.0.0",
        "::ffff:10.0.0.1",
        "::ffff:255.255.255.255",
        "::fffe:1.2.3.4",
        "::1:ffff:1.2.3.4",
        "fe80::1",
        "ffff::",
    ]
    .iter()
    .map(|s| s.parse::<std::net::Ipv6Addr>().unwrap().octets())
    .collect();
    for a in &addrs {
        for b in &addrs {
            assert_eq!(
                ip_order(a).cmp(&ip_order(b)),
                to_ip(a).cmp(&to_ip(b)),
                "{} vs {}",
                to_ip(a),
                to_ip(b)
            );
        }
    }
}

#[test]
fn ip_text_matches_std_formatting() {
    for s in [
        "::ffff:0.0.0.0",
        "::ffff:10.0.0.1",
        "::ffff:100.20.3.255",
        "::ffff:255.255.255.255",
        "::1",
        "fe80::1",
        "::fffe:1.2.3.4",
    ] {
        let a = s.parse::<std::net::Ipv6Addr>().unwrap().octets();
        assert_eq!(ip_text(&a), to_ip(&a).to_string());
    }
}

#[test]
fn ipv4_addresses_are_stored_ipv4_mapped_byte_for_byte() {
    for a in [[0, 0, 0, 0], [10, 0, 0, 2], [192, 168, 255, 1], [255; 4]] {
        let want = std::net::Ipv4Addr::from(a).to_ipv6_mapped().octets();
        assert_eq!(v4_mapped(&a), want);
        assert_eq!(
            v4_mapped(&[a[0], a[1], a[2], a[3], 9, 9]),
            want,
            "reads 4 bytes"
        );
    }
}
