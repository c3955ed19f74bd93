//! One flow's state: its counters, its TCP history, Zeek's connection state
//! when it ends, and the idle timeouts that end it.
use super::FlowPacket;
use crate::decode::tcp_flags as F;
use crate::inspect::names;
use crate::inspect::FlowInspect;
use crate::services::Transport;
use crate::stats::names::{Names, Source};
use crate::stats::{Count, PortStats, PortTable};

// Flow history bits (orig = client, resp = server).
pub(super) const ORIG_SYN: u16 = 1;
pub(super) const RESP_SYNACK: u16 = 2;
pub(super) const ORIG_FIN: u16 = 4;
pub(super) const RESP_FIN: u16 = 8;
pub(super) const ORIG_RST: u16 = 16;
pub(super) const RESP_RST: u16 = 32;
pub(super) const RTT_DONE: u16 = 64;
pub(super) const ORIG_SEEN: u16 = 128;
pub(super) const RESP_SEEN: u16 = 256;

/// One direction's packets and bytes in a flow, in 12 bytes: 40 bits of
/// packets (10^12, more than any one flow carries; they stop counting there
/// rather than spill into the bytes) and 56 of bytes (72 PB). Packed so that a
/// flow's table slot is 96 bytes and always spans exactly two cache lines.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, packed(4))]
pub(super) struct DirCount {
    /// Packets in bits 0-39, the low 24 bits of bytes in 40-63.
    pub(super) lo: u64,
    /// The high 32 bits of bytes.
    pub(super) hi: u32,
}

pub(super) const PACKETS_MAX: u64 = (1 << 40) - 1;

impl DirCount {
    #[inline]
    pub(super) fn add(&mut self, bytes: u32) {
        let packet = (self.lo & PACKETS_MAX != PACKETS_MAX) as u64;
        let (lo, carry) = self.lo.overflowing_add(packet | (bytes as u64) << 40);
        self.lo = lo;
        self.hi += carry as u32;
    }

    pub(super) fn count(self) -> Count {
        Count {
            packets: self.lo & PACKETS_MAX,
            bytes: (self.hi as u64) << 24 | self.lo >> 40,
        }
    }
}

/// One open flow, as its worker's table holds it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Flow {
    /// Packet times of its first and latest packet, and of the client's SYN.
    pub(super) first: u64,
    pub(super) last: u64,
    pub(super) syn_ts: u64,
    /// [to_server, to_client].
    pub(super) dir: [DirCount; 2],
    /// `ORIG_*`, `RESP_*` and `RTT_DONE` bits.
    pub(super) history: u16,
    pub(super) server_is_lo: bool,
    /// TCP flags of the flow's first packet (to tell NULL/FIN/Xmas probes).
    pub(super) first_flags: u8,
    /// Payload protocol detection on the first packets.
    pub(super) inspect: FlowInspect,
}

impl Flow {
    /// A new flow whose first packet is `p`, served from the `lo` side when
    /// `server_is_lo` (the packet itself is not accounted yet).
    pub(super) fn starting(p: &FlowPacket, server_is_lo: bool) -> Flow {
        Flow {
            first: p.ts,
            last: p.ts,
            syn_ts: 0,
            dir: [DirCount::default(); 2],
            history: 0,
            server_is_lo,
            first_flags: p.tcp_flags,
            inspect: FlowInspect::default(),
        }
    }

    /// Both sides closed it (FIN each way), or either reset it.
    pub(super) fn closed(&self) -> bool {
        let h = self.history;
        (h & ORIG_FIN != 0 && h & RESP_FIN != 0) || h & (ORIG_RST | RESP_RST) != 0
    }
}

/// Zeek's `conn_state` values, in name order.
pub const CONN_STATES: [&str; 13] = [
    "OTH", "REJ", "RSTO", "RSTOS0", "RSTR", "RSTRH", "S0", "S1", "S2", "S3", "SF", "SH", "SHR",
];

/// A flow's state: an index into [`CONN_STATES`], so per-port counts are an
/// array and not a map keyed by strings; states order as their names do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnState(u8);

impl ConnState {
    pub const OTH: ConnState = ConnState(0);
    pub const REJ: ConnState = ConnState(1);
    pub const RSTO: ConnState = ConnState(2);
    pub const RSTOS0: ConnState = ConnState(3);
    pub const RSTR: ConnState = ConnState(4);
    pub const RSTRH: ConnState = ConnState(5);
    pub const S0: ConnState = ConnState(6);
    pub const S1: ConnState = ConnState(7);
    pub const S2: ConnState = ConnState(8);
    pub const S3: ConnState = ConnState(9);
    pub const SF: ConnState = ConnState(10);
    pub const SH: ConnState = ConnState(11);
    pub const SHR: ConnState = ConnState(12);

    pub fn index(self) -> usize {
        self.0 as usize
    }

    pub fn name(self) -> &'static str {
        CONN_STATES[self.0 as usize]
    }
}

/// The flow's state in Zeek's `conn_state` vocabulary.
pub(super) fn conn_state(t: Transport, h: u16) -> ConnState {
    if t != Transport::Tcp {
        return match (h & ORIG_SEEN != 0, h & RESP_SEEN != 0) {
            (true, true) => ConnState::SF,
            (true, false) => ConnState::S0,
            _ => ConnState::OTH,
        };
    }
    let (syn, synack) = (h & ORIG_SYN != 0, h & RESP_SYNACK != 0);
    let (ofin, rfin, orst, rrst) = (
        h & ORIG_FIN != 0,
        h & RESP_FIN != 0,
        h & ORIG_RST != 0,
        h & RESP_RST != 0,
    );
    match (syn, synack) {
        (true, false) => {
            if rrst {
                ConnState::REJ
            } else if orst {
                ConnState::RSTOS0
            } else if ofin {
                ConnState::SH
            } else {
                ConnState::S0
            }
        }
        (false, true) => {
            if rrst {
                ConnState::RSTRH
            } else if rfin {
                ConnState::SHR
            } else {
                ConnState::OTH
            }
        }
        (true, true) => {
            if orst {
                ConnState::RSTO
            } else if rrst {
                ConnState::RSTR
            } else if ofin && rfin {
                ConnState::SF
            } else if ofin {
                ConnState::S2
            } else if rfin {
                ConnState::S3
            } else {
                ConnState::S1
            }
        }
        (false, false) => ConnState::OTH,
    }
}

/// Idle timeouts on packet time, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub tcp: u64,
    pub tcp_closed: u64,
    pub udp: u64,
}

impl Default for Timeouts {
    /// Zeek's defaults: 5 min TCP inactivity, 1 min UDP, 5 s after close.
    fn default() -> Self {
        Timeouts {
            tcp: 300_000_000_000,
            tcp_closed: 5_000_000_000,
            udp: 60_000_000_000,
        }
    }
}

impl Timeouts {
    fn of(&self, t: Transport, f: &Flow) -> u64 {
        match t {
            Transport::Tcp if f.closed() => self.tcp_closed,
            Transport::Tcp => self.tcp,
            _ => self.udp,
        }
    }

    /// Whether flow `f` of transport `t` is idle at packet time `now`.
    #[inline]
    pub(super) fn expired(&self, t: Transport, f: &Flow, now: u64) -> bool {
        now.saturating_sub(f.last) > self.of(t, f)
    }
}

/// Accounts packet `p` (with its payload prefix, if it has one; the flow
/// decides whether to look at it) to its flow `f` and to the service port's statistics. Always inlined: it
/// runs for every packet, at two call sites, and a call costs more than a
/// tenth of it.
#[inline(always)]
pub(super) fn update(
    f: &mut Flow,
    ports: &mut PortTable,
    names: &mut Names,
    p: &FlowPacket,
    payload: &[u8],
) {
    let (now, t) = (p.ts, p.key.transport);
    let to_server = p.from_lo != f.server_is_lo;
    if !payload.is_empty() {
        if let Some(nth) = f.inspect.next_payload(to_server) {
            if FlowInspect::worth_a_look(nth, payload) {
                f.inspect.inspect(t, to_server, payload);
            }
            name_from(names, p, f.server_is_lo, to_server, payload);
        }
    }
    let sport = p.key.sides(f.server_is_lo).0 .1;
    f.last = f.last.max(now);
    f.dir[!to_server as usize].add(p.wire_len);
    f.history |= if to_server { ORIG_SEEN } else { RESP_SEEN };
    let bucket_ns = ports.bucket_ns();
    let ps: &mut PortStats = ports.get_mut(t, sport);
    ps.seen(now);
    if to_server {
        ps.to_server.add(p.wire_len);
    } else {
        ps.to_client.add(p.wire_len);
    }
    ps.sizes.record(p.wire_len as u64);
    let new_bucket = ps.on_timeline(now, p.wire_len, bucket_ns);
    if t == Transport::Tcp {
        let fl = p.tcp_flags;
        if fl & F::SYN != 0 {
            if fl & F::ACK == 0 {
                ps.syn += 1;
                if to_server {
                    f.history |= ORIG_SYN;
                    f.syn_ts = now;
                }
            } else {
                ps.syn_ack += 1;
                if !to_server {
                    f.history |= RESP_SYNACK;
                    if f.syn_ts != 0 && f.history & RTT_DONE == 0 && now >= f.syn_ts {
                        f.history |= RTT_DONE;
                        ps.rtt_us.record((now - f.syn_ts) / 1000);
                    }
                }
            }
        }
        if fl & F::RST != 0 {
            ps.rst += 1;
            f.history |= if to_server { ORIG_RST } else { RESP_RST };
        }
        if fl & F::FIN != 0 {
            f.history |= if to_server { ORIG_FIN } else { RESP_FIN };
        }
    }
    if new_bucket {
        ports.timeline_grew(t, sport);
    }
}

/// Names in a flow's first payload packets (those inspected): what a TLS
/// or HTTP client calls its server (a ClientHello may follow a STARTTLS
/// request), and the addresses a DNS server's answer gives.
#[inline(never)]
fn name_from(out: &mut Names, p: &FlowPacket, server_is_lo: bool, to_server: bool, payload: &[u8]) {
    let ((server, _), _) = p.key.sides(server_is_lo);
    match (p.key.transport, to_server) {
        (Transport::Tcp, true) => {
            let found = match payload[0] {
                22 => names::tls_sni(payload).map(|n| (n, Source::TlsSni)),
                b'A'..=b'Z' => names::http_host(payload).map(|n| (n, Source::HttpHost)),
                _ => None,
            };
            if let Some((name, source)) = found {
                out.add(server, name, source);
            }
        }
        // From a DNS port, whichever side the flow took it for (53 to 53 happens).
        (Transport::Udp, _) if matches!(p.key.source(p.from_lo).1, 53 | 5353 | 5355) => {
            names::dns_answers(payload, |ip, name| {
                out.add(crate::decode::from_ip(ip), name, Source::Dns);
            });
        }
        _ => {}
    }
}
