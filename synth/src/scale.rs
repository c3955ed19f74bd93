//! A seeded synthetic generator for scale: many flows over many ports.
//! Used by `benches/pipeline.rs` and `synth/src/bin/synth.rs` (scale curves, floods).
use super::build::*;
use super::write::Pcap;
use super::Rng;

/// Writes `packets` Ethernet packets over `flows` TCP/UDP flows (servers on
/// `ports` distinct ports) to a pcap in memory-bounded chunks through `sink`.
/// Each packet belongs to a flow picked at random, so with many flows most
/// packets early in the file open a new flow.
pub fn generate(seed: u64, packets: u64, flows: u32, ports: u16, sink: impl FnMut(&[u8])) {
    write_flows(seed, packets, flows, ports, false, sink)
}

/// [`generate`], except that the first `flows` packets open every flow in turn;
/// after them each packet belongs to a flow already open, picked at random.
/// The first N packets are the same whatever `packets` is, so two lengths of
/// one input differ only by packets on established flows: the difference in
/// time is the cost of those packets alone (`benches/scale.sh`).
pub fn generate_established(
    seed: u64,
    packets: u64,
    flows: u32,
    ports: u16,
    sink: impl FnMut(&[u8]),
) {
    write_flows(seed, packets, flows, ports, true, sink)
}

fn write_flows(
    seed: u64,
    packets: u64,
    flows: u32,
    ports: u16,
    open_first: bool,
    mut sink: impl FnMut(&[u8]),
) {
    let mut rng = Rng::new(seed);
    let mut w = Pcap::new(1, 65535, false, false);
    let mut t = super::fixtures::T0;
    for i in 0..packets {
        let f = if open_first && i < flows as u64 {
            i as u32
        } else {
            rng.range(0, flows as u64 - 1) as u32
        };
        let client = v4(10, (f >> 16) as u8, (f >> 8) as u8, f as u8);
        let server = v4(172, 16, (f % 7) as u8, 1);
        let sport = 1024 + (f % ports as u32) as u16;
        let cport = 32768 + (f % 28000) as u16;
        let to_server = rng.next_u64() & 1 == 0;
        let len = [0usize, 40, 200, 1200, 1448][rng.range(0, 4) as usize];
        let payload = vec![0u8; len];
        let pkt = if f % 5 == 0 {
            if to_server {
                udp(client, cport, server, sport, &payload)
            } else {
                udp(server, sport, client, cport, &payload)
            }
        } else if to_server {
            tcp(
                client,
                cport,
                server,
                sport,
                ACK | PSH,
                i as u32,
                1,
                &payload,
            )
        } else {
            tcp(
                server,
                sport,
                client,
                cport,
                ACK | PSH,
                i as u32,
                1,
                &payload,
            )
        };
        t += rng.range(1, 20_000);
        w.packet(t, &eth_ip(&pkt));
        if w.buf.len() > 1 << 20 {
            sink(&w.buf);
            w.buf.clear();
        }
    }
    sink(&w.buf);
}

/// A SYN flood: `flows` SYNs from random addresses and ports (10.0.0.0/8) to
/// one server port, every one a new flow, none answered; 10 us apart.
pub fn syn_flood(seed: u64, flows: u64, port: u16, sink: impl FnMut(&[u8])) {
    syn_flood_with(seed, flows, port, |_, _, _| {}, sink)
}

/// [`syn_flood`], calling `also(i, ts, writer)` after the `i`-th SYN (sent at
/// `ts`) so a caller can mix other packets into the flood.
pub fn syn_flood_with(
    seed: u64,
    flows: u64,
    port: u16,
    mut also: impl FnMut(u64, u64, &mut Pcap),
    mut sink: impl FnMut(&[u8]),
) {
    let mut rng = Rng::new(seed);
    let mut w = Pcap::new(1, 65535, false, false);
    let mut t = super::fixtures::T0;
    let server = v4(172, 16, 0, 1);
    for i in 0..flows {
        let r = rng.next_u64();
        let client = v4(10, (r >> 8) as u8, (r >> 16) as u8, (r >> 24) as u8);
        let cport = 1024 + ((r >> 32) as u16 % 64_000);
        t += 10_000;
        w.packet(
            t,
            &eth_ip(&tcp(client, cport, server, port, SYN, r as u32, 0, &[])),
        );
        also(i, t, &mut w);
        if w.buf.len() > 1 << 20 {
            sink(&w.buf);
            w.buf.clear();
        }
    }
    sink(&w.buf);
}
