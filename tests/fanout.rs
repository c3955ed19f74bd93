//! Capture handles in one `PACKET_FANOUT` group (`source::live::fanout`), on
//! loopback: UDP flows from many source ports to an echo socket, both
//! directions, are each captured whole by exactly one of two handles, and
//! the flows are spread over both. Needs root (packet sockets); CI runs as
//! root.
mod support;

use portflow::source::live::{fanout, LiveOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use support::*;

/// Source and destination ports of a UDP packet captured on loopback (link
/// type null/loopback or Ethernet: the IPv4 header is found by its first
/// byte after the link header).
fn udp_ports(link: i32, data: &[u8]) -> Option<(u16, u16)> {
    let ip = match link {
        1 => 14,   // Ethernet (Linux's lo)
        0 => 4,    // BSD loopback
        113 => 16, // Linux cooked
        _ => return None,
    };
    let p = data.get(ip..)?;
    if p.first()? >> 4 != 4 || *p.get(9)? != 17 {
        return None;
    }
    let l4 = ((p[0] & 0x0f) as usize) * 4;
    let u = p.get(l4..l4 + 4)?;
    Some((
        u16::from_be_bytes([u[0], u[1]]),
        u16::from_be_bytes([u[2], u[3]]),
    ))
}

#[test]
fn fanout_gives_each_flow_to_one_handle_and_spreads_flows_needs_root() {
    require!(is_root(), "packet sockets need root");
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let opts = LiveOptions {
        interface: Some("lo".into()),
        filter: Some(format!("udp and port {port}")),
        buffer_kib: 4096,
        ..LiveOptions::default()
    };
    let mut handles = fanout::open_group(&opts, 2).expect("two handles in a fanout group");
    let link = handles[0].cap.get_datalink().0;
    // 40 flows, each 3 requests and 3 echoed answers.
    const FLOWS: usize = 40;
    server
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let clients: Vec<UdpSocket> = (0..FLOWS)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for round in 0..3u8 {
        for c in &clients {
            c.send_to(&[round; 32], ("127.0.0.1", port)).unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], from).unwrap();
        }
    }
    // Read both handles until every packet was seen (or 5 s), and 100 ms
    // more: a packet either handle sees twice would show.
    let want = FLOWS * 6;
    let mut seen: BTreeMap<u16, BTreeSet<usize>> = BTreeMap::new();
    let mut packets = 0;
    let mut deadline = Instant::now() + Duration::from_secs(5);
    let mut draining = false;
    while Instant::now() < deadline {
        if packets >= want && !draining {
            draining = true;
            deadline = Instant::now() + Duration::from_millis(100);
        }
        let mut got = false;
        for (h, live) in handles.iter_mut().enumerate() {
            while let Ok(p) = live.cap.next_packet() {
                let Some((sport, dport)) = udp_ports(link, p.data) else {
                    continue;
                };
                let client = if sport == port { dport } else { sport };
                seen.entry(client).or_default().insert(h);
                packets += 1;
                got = true;
            }
        }
        if !got {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert_eq!(packets, want, "every packet once over the two handles");
    assert_eq!(seen.len(), FLOWS);
    for (client, by) in &seen {
        assert_eq!(
            by.len(),
            1,
            "flow from port {client} went to handles {by:?}"
        );
    }
    let per_handle: Vec<usize> = (0..2)
        .map(|h| seen.values().filter(|by| by.contains(&h)).count())
        .collect();
    assert!(
        per_handle.iter().all(|&n| n > 0),
        "flows per handle: {per_handle:?}"
    );
}
