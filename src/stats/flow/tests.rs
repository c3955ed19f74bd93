//! The flow table against hand-made packet sequences: who the server is,
//! Zeek's states, timeouts, the cap and eviction, ending on two threads.
use super::ending::PARALLEL_END_MIN;
use super::state::{DirCount, Flow, PACKETS_MAX};
use super::*;
use crate::decode::{tcp_flags as F, v4_mapped};
use crate::inspect::{FlowInspect, Protocol};
use crate::services::{Services, Transport};
use crate::stats::flowmap::FlowMap;
use crate::stats::Count;
use std::sync::Arc;

fn pkt(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, flags: u8, ts: u64) -> FlowPacket {
    let (key, from_lo) = FlowKey::new(Transport::Tcp, v4_mapped(&src), sp, v4_mapped(&dst), dp);
    FlowPacket::new(key, from_lo, ts, 60, flags)
}

fn table() -> FlowTable {
    FlowTable::new(Arc::new(Services::iana()), Timeouts::default(), 1000, true)
}

#[test]
fn syn_names_the_server_even_on_a_high_port() {
    let mut t = table();
    t.account(
        &pkt([10, 0, 0, 1], 80, [10, 0, 0, 2], 40000, F::SYN, 1_000),
        &[],
    );
    t.account(
        &pkt(
            [10, 0, 0, 2],
            40000,
            [10, 0, 0, 1],
            80,
            F::SYN | F::ACK,
            3_000_000,
        ),
        &[],
    );
    let ps = t.ports.iter().map(|(k, _)| k.port).collect::<Vec<_>>();
    assert_eq!(ps, vec![40000]);
    let (_, p) = t.ports.iter().next().unwrap();
    assert_eq!(p.rtt_us.summary().unwrap().max, 2999);
}

#[test]
fn midstream_falls_back_to_the_well_known_port() {
    let mut t = table();
    t.account(
        &pkt([10, 0, 0, 9], 51000, [10, 0, 0, 1], 443, F::ACK, 1),
        &[],
    );
    t.account(
        &pkt([10, 0, 0, 1], 443, [10, 0, 0, 9], 51000, F::ACK, 2),
        &[],
    );
    let (k, p) = t.ports.iter().next().unwrap();
    assert_eq!(k.port, 443);
    assert_eq!((p.to_server.packets, p.to_client.packets), (1, 1));
}

#[test]
fn a_known_server_beats_the_score() {
    // 10.0.0.1:50123 answered a handshake in a flow another worker owns;
    // a later flow that starts mid-connection is served from there.
    let mut t = table();
    let learned = FlowPacket::server(v4_mapped(&[10, 0, 0, 1]), 50123);
    t.account(&learned, &[]);
    t.account(
        &pkt([10, 0, 0, 1], 50123, [10, 0, 0, 2], 80, F::ACK, 2),
        &[],
    );
    assert_eq!(t.ports.iter().next().unwrap().0.port, 50123);
    // Its own SYN-ACKs teach a table too.
    let mut t = table();
    t.account(
        &pkt(
            [10, 0, 0, 3],
            40000,
            [10, 0, 0, 4],
            5555,
            F::SYN | F::ACK,
            1,
        ),
        &[],
    );
    t.account(
        &pkt([10, 0, 0, 4], 6666, [10, 0, 0, 3], 40000, F::ACK, 2),
        &[],
    );
    let ports: Vec<u16> = t.ports.iter().map(|(k, _)| k.port).collect();
    assert!(ports.contains(&40000), "{ports:?}");
    assert!(!ports.contains(&6666), "{ports:?}");
}

#[test]
fn states_follow_zeek() {
    let mut t = table();
    let c = [10, 0, 0, 1];
    let s = [10, 0, 0, 2];
    t.account(&pkt(c, 1111, s, 22, F::SYN, 1), &[]);
    t.account(&pkt(s, 22, c, 1111, F::RST | F::ACK, 2), &[]);
    t.account(&pkt(c, 2222, s, 22, F::SYN, 3), &[]);
    t.account(&pkt(s, 22, c, 2222, F::SYN | F::ACK, 4), &[]);
    t.account(&pkt(c, 2222, s, 22, F::ACK | F::FIN, 5), &[]);
    t.account(&pkt(s, 22, c, 2222, F::ACK | F::FIN, 6), &[]);
    t.account(&pkt(c, 3333, s, 22, F::SYN, 7), &[]);
    t.finish_all();
    let mut states: Vec<_> = t
        .records
        .iter()
        .map(|r| (r.client().1, r.state.name()))
        .collect();
    states.sort();
    assert_eq!(states, vec![(1111, "REJ"), (2222, "SF"), (3333, "S0")]);
}

#[test]
fn new_syn_after_close_starts_a_new_flow() {
    let mut t = table();
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    for base in [0u64, 100] {
        t.account(&pkt(c, 1111, s, 22, F::SYN, base + 1), &[]);
        t.account(&pkt(s, 22, c, 1111, F::RST | F::ACK, base + 2), &[]);
    }
    t.finish_all();
    assert_eq!(t.records.len(), 2);
    assert_eq!(t.ports.iter().next().unwrap().1.flows, 2);
}

#[test]
fn idle_timeout_is_on_packet_time() {
    let mut t = table();
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    t.account(&pkt(c, 1111, s, 22, F::ACK, 1), &[]);
    t.account(&pkt(c, 1111, s, 22, F::ACK, 1 + 301_000_000_000), &[]);
    t.finish_all();
    assert_eq!(t.records.len(), 2);
}

#[test]
fn cap_evicts_and_counts() {
    let mut t = FlowTable::new(Arc::new(Services::iana()), Timeouts::default(), 100, false);
    for i in 0..1000u16 {
        t.account(
            &pkt(
                [10, 0, (i >> 8) as u8, i as u8],
                1024 + i,
                [10, 1, 0, 1],
                80,
                F::SYN,
                1 + i as u64,
            ),
            &[],
        );
    }
    assert!(t.len() <= 100);
    assert_eq!(t.evicted as usize + t.len(), 1000);
}

#[test]
fn an_evicted_connection_keeps_what_inspection_found() {
    // A flow cap of 16: an HTTP connection is inspected, then evicted by
    // newer flows while still open; the rest of it is a new flow, whose
    // packets the reader sends without payload (past the first ones).
    let mut t = FlowTable::new(Arc::new(Services::iana()), Timeouts::default(), 16, true);
    let (c, s) = ([10, 0, 0, 9], [10, 0, 0, 1]);
    t.account(&pkt(c, 40000, s, 8080, F::SYN, 1), &[]);
    t.account(&pkt(s, 8080, c, 40000, F::SYN | F::ACK, 2), &[]);
    t.account(
        &pkt(c, 40000, s, 8080, F::ACK | F::PSH, 3),
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    t.account(
        &pkt(s, 8080, c, 40000, F::ACK | F::PSH, 4),
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    // Another connection from the same client port to another server is
    // evicted too, with nothing found: it carries nothing over.
    t.account(&pkt(c, 40000, [10, 0, 0, 2], 8080, F::ACK, 5), &[]);
    for i in 0..40u8 {
        t.account(&pkt([10, 1, 0, i], 1024, s, 22, F::SYN, 10 + i as u64), &[]);
    }
    assert!(t.evicted >= 2);
    t.account(&pkt(c, 40000, s, 8080, F::ACK, 100), &[]);
    // A new connection on the same ports (a SYN) starts afresh.
    t.account(&pkt(c, 40000, [10, 0, 0, 2], 8080, F::SYN, 101), &[]);
    t.finish_all();
    let mut http: Vec<_> = t
        .records
        .iter()
        .filter(|r| r.key.hi_port == 8080 || r.key.lo_port == 8080)
        .map(|r| (r.first_ns, r.detected))
        .collect();
    http.sort();
    assert_eq!(
        http,
        vec![
            (1, Some(Protocol::Http)),
            (5, None),
            (100, Some(Protocol::Http)),
            (101, None)
        ]
    );
}

#[test]
fn a_full_table_ends_idle_flows_before_it_evicts() {
    let mut t = FlowTable::new(Arc::new(Services::iana()), Timeouts::default(), 100, false);
    let at = |i: u16, ts: u64| {
        pkt(
            [10, 0, (i >> 8) as u8, i as u8],
            1024 + i,
            [10, 1, 0, 1],
            80,
            F::ACK,
            ts,
        )
    };
    // When the 101st flow arrives, 20 flows closed by a RST 10 s ago are
    // idle (closed TCP: 5 s); the other 80 were last seen earlier but are
    // open (5 min). Ending the idle ones frees enough: nothing is evicted,
    // although the open flows are the least recently seen.
    for i in 0..80u16 {
        t.account(&at(i, 50_000_000_000 + i as u64), &[]);
    }
    for i in 80..100u16 {
        let mut p = at(i, 100_000_000_000 + i as u64);
        p.tcp_flags = F::RST;
        t.account(&p, &[]);
    }
    t.account(&at(100, 110_000_000_000), &[]);
    assert_eq!(t.evicted, 0);
    assert_eq!(t.len(), 81);
}

#[test]
fn a_clients_ephemeral_port_is_never_an_open_service() {
    let mut t = table();
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    // The client's port (5000, registered and named) outranks the server's
    // unnamed dynamic port in the fallback; the handshake decides instead.
    t.account(&pkt(c, 5000, s, 50000, F::SYN, 1), &[]);
    t.account(&pkt(s, 50000, c, 5000, F::SYN | F::ACK, 2), &[]);
    t.account(&pkt(c, 5000, s, 50000, F::ACK, 3), &[]);
    t.finish_all();
    let open: Vec<u16> = t.inventory.open_ports().map(|(k, _)| k.port).collect();
    assert_eq!(open, vec![50000]);
}

#[test]
fn ending_the_last_flows_on_two_threads_changes_nothing() {
    // Handshakes, unanswered SYNs, refusals and answered UDP, spread over
    // server ports, some with earlier flows already in the inventory.
    let feed = |t: &mut FlowTable| {
        let n = PARALLEL_END_MIN as u32 + 4_000;
        for i in 0..n {
            let srv = [10, 0, (i % 50) as u8, 1];
            let cli = [192, 168, (i >> 8) as u8, i as u8];
            let (sp, cp) = (1 + (i % 300) as u16, 20_000 + (i % 30_000) as u16);
            let ts = 1_000_000 + i as u64 * 1_000;
            match i % 4 {
                0 => {
                    t.account(&pkt(cli, cp, srv, sp, F::SYN, ts), &[]);
                    t.account(&pkt(srv, sp, cli, cp, F::SYN | F::ACK, ts + 10), &[]);
                    t.account(&pkt(cli, cp, srv, sp, F::ACK, ts + 20), &[]);
                    if i % 8 == 0 {
                        // Closed before the end: in the inventory already.
                        t.account(&pkt(cli, cp, srv, sp, F::RST, ts + 30), &[]);
                    }
                }
                1 => t.account(&pkt(cli, cp, srv, sp, F::SYN, ts), &[]),
                2 => {
                    t.account(&pkt(cli, cp, srv, sp, F::SYN, ts), &[]);
                    t.account(&pkt(srv, sp, cli, cp, F::RST | F::ACK, ts + 10), &[]);
                }
                _ => {
                    let (k, lo) =
                        FlowKey::new(Transport::Udp, v4_mapped(&cli), cp, v4_mapped(&srv), sp);
                    t.account(&FlowPacket::new(k, lo, ts, 80, 0), &[]);
                    t.account(&FlowPacket::new(k, !lo, ts + 10, 120, 0), &[]);
                }
            }
        }
    };
    let (mut one, mut two) = (table(), table());
    for t in [&mut one, &mut two] {
        t.cap = 1 << 20;
        t.flows = FlowMap::with_capacity(t.cap);
        feed(t);
    }
    assert!(one.len() >= PARALLEL_END_MIN);
    one.finish_all_on(1);
    two.finish_all_on(2);
    assert_eq!(two.inventory.open_maps(), 2, "ended on two threads");
    let inventory = |t: &FlowTable| {
        let mut v: Vec<_> = t
            .inventory
            .open_ports()
            .map(|(k, o)| {
                let c = &o.clients;
                (
                    *k,
                    o.span,
                    c.len(),
                    c.lowest(),
                    o.to_server,
                    o.to_client,
                    o.evidence,
                )
            })
            .collect();
        v.sort_by_key(|e| e.0);
        let mut r: Vec<_> = t.inventory.rejected.iter().map(|(h, n)| (*h, *n)).collect();
        r.sort();
        (v, r)
    };
    assert_eq!(inventory(&one), inventory(&two));
    assert!(inventory(&one).0.len() > 100 && !inventory(&one).1.is_empty());
    let ports = |t: &FlowTable| {
        t.ports
            .iter()
            .map(|(k, p)| (k, p.states, p.flows))
            .collect::<Vec<_>>()
    };
    assert_eq!(ports(&one), ports(&two));
    assert_eq!(one.attempts.list, two.attempts.list);
    assert!(one.attempts.list.len() > 1000);
    assert_eq!(one.records, two.records);
}

#[test]
fn records_stay_small() {
    // A batch of 1,024 packets is 64 KiB; a flow's table slot 96 bytes.
    assert_eq!(std::mem::size_of::<FlowPacket>(), 64);
    assert_eq!(std::mem::size_of::<(FlowKey, Flow)>(), 96);
    // The verdicts of evicted flows: 42 bytes each, 2.6 MiB in all.
    assert_eq!(std::mem::size_of::<Option<(FlowKey, FlowInspect)>>(), 42);
}

#[test]
fn a_direction_counts_packets_and_bytes_past_32_bits() {
    let mut d = DirCount::default();
    for _ in 0..3 {
        d.add(262_144);
    }
    assert_eq!(
        d.count(),
        Count {
            packets: 3,
            bytes: 3 * 262_144
        }
    );
    // Bytes carry from the low word into the high one.
    let mut d = DirCount {
        lo: 5 | ((1 << 24) - 1) << 40,
        hi: 7,
    };
    d.add(1);
    let c = d.count();
    assert_eq!(c.packets, 6);
    assert_eq!(c.bytes, 8 << 24);
    d.add(1500);
    assert_eq!(d.count().bytes, (8 << 24) + 1500);
    // The most bytes it holds.
    let full = DirCount {
        lo: u64::MAX,
        hi: u32::MAX,
    }
    .count();
    assert_eq!(full.bytes, (1 << 56) - 1);
    // Packets stop at their maximum instead of spilling into the bytes.
    let mut d = DirCount {
        lo: PACKETS_MAX,
        hi: 0,
    };
    d.add(100);
    assert_eq!(
        d.count(),
        Count {
            packets: PACKETS_MAX,
            bytes: 100
        }
    );
}
