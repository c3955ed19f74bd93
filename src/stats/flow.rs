//! Flows: which side is the service, per-flow state, idle timeouts and a cap.
//!
//! A worker owns one [`FlowTable`] and one [`PortTable`]; the reader shards
//! packets by a symmetric flow hash, so both directions of a flow meet here.
//!
//! Which port is the service (the door), decided when a flow is first seen:
//! 1. TCP SYN without ACK: its destination. SYN-ACK: its source.
//! 2. An endpoint the reader has seen answering a handshake (SYN-ACK) before.
//! 3. The scored fallback ([`server_score`]): well-known beats registered beats
//!    dynamic; then an IANA-assigned (or `--services`) name beats none; then the
//!    lower port; then the destination of the first packet.
use super::flowmap::FlowMap;
use super::inventory::{FlowOutcome, Inventory, OpenPortKey, ANSWERED, HANDSHAKE, MIDSTREAM};
use super::{Count, PortStats, PortTable};
use crate::decode::{tcp_flags as F, Addr};
use crate::detect::protocol::{FlowInspect, Protocol, INSPECT_BYTES};
use crate::detect::scan::{Attempt, Attempts, ATTEMPTS_CAP};
use crate::hint::prefetch;
use crate::services::{PortClass, Services, Transport};

/// Canonical flow key: the lower (address, port) endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub lo: Addr,
    pub hi: Addr,
    pub lo_port: u16,
    pub hi_port: u16,
    pub transport: Transport,
}

impl Default for FlowKey {
    fn default() -> Self {
        FlowKey {
            lo: [0; 16],
            hi: [0; 16],
            lo_port: 0,
            hi_port: 0,
            transport: Transport::Tcp,
        }
    }
}

impl FlowKey {
    /// Builds the canonical key; the bool is true when `src` is the `lo` side.
    #[inline]
    pub fn new(
        transport: Transport,
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
    ) -> (FlowKey, bool) {
        // Big-endian integers order as the bytes do, without a memcmp call.
        let (a, b) = (u128::from_be_bytes(src), u128::from_be_bytes(dst));
        if (a, sport) <= (b, dport) {
            (
                FlowKey {
                    lo: src,
                    hi: dst,
                    lo_port: sport,
                    hi_port: dport,
                    transport,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    lo: dst,
                    hi: src,
                    lo_port: dport,
                    hi_port: sport,
                    transport,
                },
                false,
            )
        }
    }

    /// The server's and then the client's (address, port), given which side serves.
    #[inline]
    pub fn sides(&self, server_is_lo: bool) -> ((Addr, u16), (Addr, u16)) {
        let (lo, hi) = ((self.lo, self.lo_port), (self.hi, self.hi_port));
        if server_is_lo {
            (lo, hi)
        } else {
            (hi, lo)
        }
    }

    /// A hash that is the same for both directions (the key is canonical) and
    /// independent of the process, for sharding.
    #[inline]
    pub fn shard_hash(&self) -> u64 {
        let mix = |h: u64, v: u64| (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        let word =
            |a: &Addr, i: usize| u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        // Two independent chains, one per address, joined with the ports: the
        // reader computes this for every packet, and one chain of five
        // dependent multiplications was on its critical path.
        let a = mix(
            mix(
                0xcbf2_9ce4_8422_2325 ^ self.transport as u64,
                word(&self.lo, 0),
            ),
            word(&self.lo, 8),
        );
        let b = mix(
            mix(0x8422_2325_cbf2_9ce4, word(&self.hi, 0)),
            word(&self.hi, 8),
        );
        let h = mix(
            a ^ b.rotate_left(32),
            (self.lo_port as u64) << 16 | self.hi_port as u64,
        );
        h ^ (h >> 32)
    }
}

/// One packet as the reader hands it to a worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowPacket {
    pub key: FlowKey,
    pub ts: u64,
    pub wire_len: u32,
    /// The packet travels from `key.lo` to `key.hi`.
    pub from_lo: bool,
    pub tcp_flags: u8,
    /// [`HINT_LO_SERVER`] / [`HINT_HI_SERVER`]: known-server evidence from the reader.
    pub hints: u8,
    /// Where the payload prefix the reader attached is in the batch's bytes,
    /// and its length (0: none; only the first packets of a flow carry one).
    pub payload_at: u32,
    pub payload_len: u16,
    /// The low half of `key.shard_hash()` ([`super::flowmap::key_hash`]), computed
    /// once by the reader; the worker's table is keyed by it.
    pub hash: u32,
}

/// A batch of packets with the payload prefixes some of them carry.
#[derive(Debug, Default)]
pub struct Batch {
    pub pkts: Vec<FlowPacket>,
    pub bytes: Vec<u8>,
}

impl Batch {
    /// Room for `n` packets and the most payload bytes they can carry
    /// ([`INSPECT_BYTES`] each): reserved, not touched, so only the bytes a
    /// batch really carries become resident, and it never grows.
    pub fn with_capacity(n: usize) -> Batch {
        Batch {
            pkts: Vec::with_capacity(n),
            bytes: Vec::with_capacity(n * INSPECT_BYTES),
        }
    }

    /// The payload prefix attached to `p` (empty for most packets).
    #[inline]
    pub fn payload(&self, p: &FlowPacket) -> &[u8] {
        let at = p.payload_at as usize;
        self.bytes
            .get(at..at + p.payload_len as usize)
            .unwrap_or(&[])
    }

    pub fn clear(&mut self) {
        self.pkts.clear();
        self.bytes.clear();
    }

    pub fn len(&self) -> usize {
        self.pkts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pkts.is_empty()
    }
}

pub const HINT_LO_SERVER: u8 = 1;
pub const HINT_HI_SERVER: u8 = 2;
/// The reader saw the flow's first packet (or one that took the flow's slot in
/// its first-packets table): the flow is most likely new to the worker, which
/// then fetches the per-flow part of both ports' statistics early. Only speed
/// depends on it.
pub const HINT_FRESH: u8 = 4;
/// Not a packet: end the flows idle at `ts` (sent by the reader to every
/// worker at the same point of the packet sequence, so which flows end does
/// not depend on how flows are spread over workers).
pub const SWEEP: u8 = 0x80;

impl FlowPacket {
    /// A packet record with its hash filled in (for tests and benchmarks; the
    /// reader fills the fields itself).
    pub fn new(key: FlowKey, from_lo: bool, ts: u64, wire_len: u32, tcp_flags: u8) -> FlowPacket {
        FlowPacket {
            key,
            ts,
            wire_len,
            from_lo,
            tcp_flags,
            hash: super::flowmap::key_hash(&key),
            ..FlowPacket::default()
        }
    }

    pub fn sweep_marker(ts: u64) -> FlowPacket {
        FlowPacket {
            ts,
            hints: SWEEP,
            ..FlowPacket::default()
        }
    }
}

/// Score of a port as a candidate service (higher wins).
#[inline]
pub fn server_score(services: &Services, t: Transport, port: u16) -> u8 {
    let class = match PortClass::of(port) {
        PortClass::WellKnown => 2,
        PortClass::Registered => 1,
        PortClass::Dynamic => 0,
    };
    class * 2 + services.is_assigned(t, port) as u8
}

/// Whether `key.lo` is the server, for a flow first seen with packet `p`.
pub fn lo_is_server(services: &Services, p: &FlowPacket) -> bool {
    let k = &p.key;
    if k.transport == Transport::Tcp {
        let syn = p.tcp_flags & F::SYN != 0;
        let ack = p.tcp_flags & F::ACK != 0;
        if syn && !ack {
            return !p.from_lo; // the destination
        }
        if syn && ack {
            return p.from_lo; // the source
        }
    }
    match (p.hints & HINT_LO_SERVER != 0, p.hints & HINT_HI_SERVER != 0) {
        (true, false) => return true,
        (false, true) => return false,
        _ => {}
    }
    let (sl, sh) = (
        server_score(services, k.transport, k.lo_port),
        server_score(services, k.transport, k.hi_port),
    );
    if sl != sh {
        return sl > sh;
    }
    if k.lo_port != k.hi_port {
        return k.lo_port < k.hi_port;
    }
    !p.from_lo
}

// Flow history bits (orig = client, resp = server).
const ORIG_SYN: u16 = 1;
const RESP_SYNACK: u16 = 2;
const ORIG_FIN: u16 = 4;
const RESP_FIN: u16 = 8;
const ORIG_RST: u16 = 16;
const RESP_RST: u16 = 32;
const RTT_DONE: u16 = 64;
const ORIG_SEEN: u16 = 128;
const RESP_SEEN: u16 = 256;

/// One direction's packets and bytes in a flow, in 12 bytes: 40 bits of
/// packets (10^12, more than any one flow carries; they stop counting there
/// rather than spill into the bytes) and 56 of bytes (72 PB). Two plain
/// counters took 32 bytes; these 24 make a flow's table slot 96 bytes, which
/// always spans two cache lines (104-byte slots spanned three in half the
/// slots) and are 8% less flow-table memory.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, packed(4))]
struct DirCount {
    /// Packets in bits 0-39, the low 24 bits of bytes in 40-63.
    lo: u64,
    /// The high 32 bits of bytes.
    hi: u32,
}

const PACKETS_MAX: u64 = (1 << 40) - 1;

impl DirCount {
    #[inline]
    fn add(&mut self, bytes: u32) {
        let packet = (self.lo & PACKETS_MAX != PACKETS_MAX) as u64;
        let (lo, carry) = self.lo.overflowing_add(packet | (bytes as u64) << 40);
        self.lo = lo;
        self.hi += carry as u32;
    }

    fn count(self) -> Count {
        Count {
            packets: self.lo & PACKETS_MAX,
            bytes: (self.hi as u64) << 24 | self.lo >> 40,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    first: u64,
    last: u64,
    syn_ts: u64,
    /// [to_server, to_client].
    dir: [DirCount; 2],
    history: u16,
    server_is_lo: bool,
    /// TCP flags of the flow's first packet (to tell NULL/FIN/Xmas probes).
    first_flags: u8,
    /// Payload protocol detection on the first packets.
    inspect: FlowInspect,
}

impl Flow {
    fn closed(&self) -> bool {
        let h = self.history;
        (h & ORIG_FIN != 0 && h & RESP_FIN != 0) || h & (ORIG_RST | RESP_RST) != 0
    }
}

/// A finished flow, as written by `--flows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    pub key: FlowKey,
    pub server_is_lo: bool,
    pub first_ns: u64,
    pub last_ns: u64,
    pub to_server: Count,
    pub to_client: Count,
    pub state: &'static str,
    /// The application protocol detected from payload.
    pub detected: Option<Protocol>,
    /// [`crate::detect::protocol::clear`] bits.
    pub cleartext: u8,
}

impl FlowRecord {
    pub fn client(&self) -> (Addr, u16) {
        self.key.sides(self.server_is_lo).1
    }

    pub fn server(&self) -> (Addr, u16) {
        self.key.sides(self.server_is_lo).0
    }
}

/// Zeek's `conn_state` values, in name order.
pub const CONN_STATES: [&str; 13] = [
    "OTH", "REJ", "RSTO", "RSTOS0", "RSTR", "RSTRH", "S0", "S1", "S2", "S3", "SF", "SH", "SHR",
];

/// A flow's state: an index into [`CONN_STATES`], so per-port counts are an
/// array and not a map keyed by strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
fn conn_state(t: Transport, h: u16) -> ConnState {
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
    fn expired(&self, t: Transport, f: &Flow, now: u64) -> bool {
        now.saturating_sub(f.last) > self.of(t, f)
    }
}

/// Accounts packet `p` (with the payload prefix the reader attached, if any)
/// to its flow `f` and to the service port's statistics. Always inlined (at
/// its two call sites): the call was 33 of the worker's 381 instructions a
/// packet on the real captures of the benchmark input (callgrind).
#[inline(always)]
fn update(f: &mut Flow, ports: &mut PortTable, p: &FlowPacket, payload: &[u8]) {
    let (now, t) = (p.ts, p.key.transport);
    let to_server = p.from_lo != f.server_is_lo;
    if !payload.is_empty() {
        f.inspect.inspect(t, to_server, payload);
    }
    let sport = p.key.sides(f.server_is_lo).0 .1;
    f.last = f.last.max(now);
    f.dir[!to_server as usize].add(p.wire_len);
    f.history |= if to_server { ORIG_SEEN } else { RESP_SEEN };
    let ps: &mut PortStats = ports.get_mut(t, sport);
    ps.seen(now);
    if to_server {
        ps.to_server.add(p.wire_len);
    } else {
        ps.to_client.add(p.wire_len);
    }
    ps.sizes.record(p.wire_len as u64);
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
}

/// What ending one flow contributes, from the flow alone.
struct Ending {
    state: ConnState,
    outcome: FlowOutcome,
    /// A failed or unanswered attempt, or an odd-flag probe.
    attempt: Option<Attempt>,
}

/// The server port flow `f` counts on in the inventory.
fn open_port_key(key: &FlowKey, f: &Flow) -> OpenPortKey {
    let (host, port) = key.sides(f.server_is_lo).0;
    OpenPortKey {
        host,
        transport: key.transport,
        port,
    }
}

fn ending(key: FlowKey, f: &Flow) -> Ending {
    let state = conn_state(key.transport, f.history);
    let open = open_port_key(&key, f);
    let client = key.sides(f.server_is_lo).1 .0;
    let h = f.history;
    let both_ways = h & ORIG_SEEN != 0 && h & RESP_SEEN != 0;
    let evidence = match key.transport {
        Transport::Tcp if h & RESP_SYNACK != 0 => HANDSHAKE,
        Transport::Tcp if h & (ORIG_SYN | RESP_SYNACK) == 0 && both_ways => MIDSTREAM,
        Transport::Tcp => 0,
        _ if h & RESP_SEEN != 0 => ANSWERED,
        _ => 0,
    };
    let probe = match key.transport {
        Transport::Tcp if h & RESP_SYNACK == 0 => match state {
            ConnState::S0 | ConnState::REJ | ConnState::RSTOS0 | ConnState::SH => Some(0),
            ConnState::OTH if h & ORIG_SEEN != 0 => crate::detect::scan::odd_probe(f.first_flags),
            _ => None,
        },
        Transport::Tcp => None,
        _ if h & RESP_SEEN == 0 => Some(0),
        _ => None,
    };
    Ending {
        state,
        attempt: probe.map(|odd| Attempt {
            src: client,
            dst: open.host,
            ts: f.first,
            port: open.port,
            transport: key.transport,
            odd,
            refused: state == ConnState::REJ,
        }),
        outcome: FlowOutcome {
            key: open,
            client,
            first_ns: f.first,
            last_ns: f.last,
            to_server: f.dir[0].count(),
            to_client: f.dir[1].count(),
            evidence,
            rejected: state == ConnState::REJ,
            detected: f.inspect.protocol(),
            cleartext: f.inspect.clear,
            confirmed: f.inspect.server_confirms(),
        },
    }
}

/// Sweeps for idle flows run every this much packet time.
pub const SWEEP_EVERY_NS: u64 = 10_000_000_000;

/// The part of the inventory (by key hash, out of 2^64) the second ending
/// thread observes: 70%, since this one also ends every flow and adds its port
/// counters, attempts and records. With half, the second thread idled for
/// 40% of the phase (100,000 flows: 12 against 21 ms).
const ENDING_SHARE: u64 = (u64::MAX / 10) * 7;

/// Open flows at the end of input from which they are ended on two threads.
const PARALLEL_END_MIN: usize = 16_384;

/// Flows sampled to estimate how many of a full table's flows are idle and
/// which tenth to evict (about 0.5% error on the share evicted).
const EVICTION_SAMPLE: usize = 4096;

/// One worker's flows and ports.
pub struct FlowTable {
    flows: FlowMap<Flow>,
    pub ports: PortTable,
    services: std::sync::Arc<Services>,
    timeouts: Timeouts,
    cap: usize,
    /// Finished flows, kept only when `keep_records`.
    pub records: Vec<FlowRecord>,
    keep_records: bool,
    /// Flows removed because the table was full (not idle).
    pub evicted: u64,
    /// Most flows held at once.
    pub peak_flows: usize,
    /// Open ports and refused attempts, from finished flows.
    pub inventory: Inventory,
    /// Connection attempts that failed or got no answer, and odd-flag probes (for scan findings).
    pub attempts: Attempts,
    /// What payload inspection found in flows evicted while still open, for
    /// their continuation (made when the first eviction happens).
    carried: Option<Carried>,
}

/// What payload inspection found in flows evicted while still open, by flow
/// (direct-mapped by the flow hash, the full key compared). The reader sends a
/// flow's first payload packets only, so the rest of an evicted connection,
/// which the table then starts as a new flow, would carry no detected
/// protocol and no cleartext finding: its continuation (a packet that is not a
/// SYN) takes them over from here.
struct Carried {
    slots: Vec<Option<(FlowKey, FlowInspect)>>,
}

/// Evicted flows remembered at once (per worker): 2.6 MiB, made only once the
/// flow cap is reached.
const CARRIED_SLOTS: usize = 1 << 16;

impl Carried {
    fn new() -> Self {
        Carried {
            slots: vec![None; CARRIED_SLOTS],
        }
    }

    #[inline]
    fn slot(hash: u32) -> usize {
        hash as usize & (CARRIED_SLOTS - 1)
    }

    fn keep(&mut self, key: FlowKey, inspect: FlowInspect) {
        self.slots[Self::slot(super::flowmap::key_hash(&key))] = Some((key, inspect));
    }

    /// The inspection state of an evicted flow with this key, taken out.
    fn take(&mut self, key: &FlowKey, hash: u32) -> Option<FlowInspect> {
        self.slots[Self::slot(hash)]
            .take_if(|(k, _)| k == key)
            .map(|(_, i)| i)
    }
}

impl FlowTable {
    pub fn new(
        services: std::sync::Arc<Services>,
        timeouts: Timeouts,
        cap: usize,
        keep_records: bool,
    ) -> Self {
        let cap = cap.max(16);
        FlowTable {
            flows: FlowMap::with_capacity(cap),
            ports: PortTable::default(),
            services,
            timeouts,
            cap,
            records: Vec::new(),
            keep_records,
            evicted: 0,
            peak_flows: 0,
            inventory: Inventory::default(),
            attempts: Attempts::with_cap(ATTEMPTS_CAP),
            carried: None,
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Accounts a batch of packets, prefetching what they will touch a few
    /// packets ahead: 16 ahead the packet record itself (written on the
    /// reader's core); 8 ahead the flow table's control bytes and the port
    /// table's entries for both ports (which one is the service is known only
    /// from the flow); 4 ahead, those being in cache, the slot the flow's
    /// probe ends at, the per-port counters the entries point to, the payload
    /// prefix the packet carries and, for a packet the reader marked
    /// [`HINT_FRESH`], the per-flow fields of both ports' statistics.
    /// With a hundred thousand flows and tens of thousands of ports these
    /// were dependent cache misses on every packet.
    pub fn account_batch(&mut self, b: &Batch) {
        const AHEAD: usize = 4;
        let pkts = &b.pkts;
        let first = |me: &Self, p: &FlowPacket| {
            me.flows.prefetch_ctrl(p.hash);
            me.ports.prefetch_entry(p.key.transport, p.key.lo_port);
            me.ports.prefetch_entry(p.key.transport, p.key.hi_port);
        };
        let second = |me: &Self, p: &FlowPacket| {
            me.flows.prefetch_slot(p.hash);
            if p.payload_len > 0 {
                // The reader wrote it on its own core.
                prefetch(b.bytes.as_ptr().wrapping_add(p.payload_at as usize));
            }
            if p.hints & HINT_FRESH != 0 {
                me.ports.prefetch_per_flow(p.key.transport, p.key.lo_port);
                me.ports.prefetch_per_flow(p.key.transport, p.key.hi_port);
            }
            me.ports.prefetch(p.key.transport, p.key.lo_port);
            me.ports.prefetch(p.key.transport, p.key.hi_port);
        };
        for p in pkts.iter().take(2 * AHEAD) {
            first(self, p);
        }
        for p in pkts.iter().take(AHEAD) {
            second(self, p);
        }
        for (i, p) in pkts.iter().enumerate() {
            // The packet records themselves, written on the reader's core: the
            // first stage's read of them was a cross-core miss.
            if let Some(next) = pkts.get(i + 4 * AHEAD) {
                prefetch((next as *const FlowPacket).cast());
            }
            if let Some(next) = pkts.get(i + 2 * AHEAD) {
                first(self, next);
            }
            if let Some(next) = pkts.get(i + AHEAD) {
                second(self, next);
            }
            self.account(p, b.payload(p));
        }
    }

    /// Accounts one packet (or runs a sweep marker); `payload` is the prefix
    /// the reader attached to it ([`Batch::payload`]), usually empty.
    #[inline]
    pub fn account(&mut self, p: &FlowPacket, payload: &[u8]) {
        let now = p.ts;
        if p.hints & SWEEP != 0 {
            return self.sweep(now);
        }
        let t = p.key.transport;
        let syn_only = p.tcp_flags & (F::SYN | F::ACK) == F::SYN && t == Transport::Tcp;
        // Fast path, one hash look-up: a packet of a live flow.
        let timeouts = self.timeouts;
        let restart = match self.flows.get_mut(&p.key, p.hash) {
            Some(f) => {
                let idle = timeouts.expired(t, f, now);
                if !(idle || (syn_only && f.closed())) {
                    update(f, &mut self.ports, p, payload);
                    return;
                }
                true
            }
            None => false,
        };
        if restart {
            let f = self.flows.remove(&p.key, p.hash).expect("present");
            self.finish(p.key, f);
        }
        if self.flows.len() >= self.cap {
            self.make_room(now);
        }
        let server_is_lo = lo_is_server(&self.services, p);
        let mut f = Flow {
            first: now,
            last: now,
            syn_ts: 0,
            dir: [DirCount::default(); 2],
            history: 0,
            server_is_lo,
            first_flags: p.tcp_flags,
            inspect: FlowInspect::default(),
        };
        if !syn_only {
            if let Some(c) = self.carried.as_mut() {
                f.inspect = c.take(&p.key, p.hash).unwrap_or_default();
            }
        }
        let ((server, sport), (client, _)) = p.key.sides(server_is_lo);
        let ps = self.ports.get_mut(t, sport);
        ps.flows += 1;
        ps.clients.insert(client);
        ps.servers.insert(server);
        update(&mut f, &mut self.ports, p, payload);
        self.flows.insert_new(p.key, p.hash, f);
        self.peak_flows = self.peak_flows.max(self.flows.len());
    }

    fn finish(&mut self, key: FlowKey, f: Flow) {
        let e = ending(key, &f);
        self.apply(key, &f, e, true);
    }

    /// Adds what ending flow `f` contributes to the port counters, the scan
    /// attempts, the flow records and (when `observe`) the inventory.
    fn apply(&mut self, key: FlowKey, f: &Flow, e: Ending, observe: bool) {
        if key.transport == Transport::Tcp {
            self.ports.get_mut(key.transport, e.outcome.key.port).states[e.state.index()] += 1;
        }
        if let Some(a) = e.attempt {
            self.attempts.push(a);
        }
        if self.keep_records {
            self.records.push(FlowRecord {
                key,
                server_is_lo: f.server_is_lo,
                first_ns: f.first,
                last_ns: f.last,
                to_server: f.dir[0].count(),
                to_client: f.dir[1].count(),
                state: e.state.name(),
                detected: e.outcome.detected,
                cleartext: e.outcome.cleartext,
            });
        }
        if observe {
            self.inventory.observe(e.outcome);
        }
    }

    /// Ends flows idle at packet time `now`.
    pub fn sweep(&mut self, now: u64) {
        self.end_idle_and_evict(now, 0, None);
    }

    /// The table is full: make room for a tenth of the cap, usually in one pass
    /// over the table. Every idle flow ends (as a sweep would end it; not
    /// counted as evicted); when idle flows alone will not free a tenth, the
    /// least recently seen flows make up the rest (evicted and counted). Both
    /// are estimated from a sample of [`EVICTION_SAMPLE`] flows; should the
    /// sample have seen more idle flows than there were, a second pass evicts.
    /// (Ending idle flows, collecting every last-seen time and then evicting
    /// took three passes over the table for every tenth of the cap that
    /// arrived: half of a SYN flood's time.)
    fn make_room(&mut self, now: u64) {
        let n = (self.cap / 10).max(1);
        let cutoff = self.eviction_cutoff(now, n);
        self.end_idle_and_evict(now, n, cutoff);
        if self.flows.len() >= self.cap {
            let cutoff = self.eviction_cutoff(now, n);
            self.end_idle_and_evict(now, n, cutoff);
        }
    }

    /// Ends every idle flow and, while fewer than `n` flows are freed, evicts
    /// flows last seen at or before `cutoff` (none without one).
    fn end_idle_and_evict(&mut self, now: u64, n: usize, cutoff: Option<u64>) {
        let timeouts = self.timeouts;
        let (mut ended, mut evicted) = (Vec::new(), Vec::new());
        self.flows.retain(
            |k, f| {
                let end = if timeouts.expired(k.transport, f, now) {
                    &mut ended
                } else if cutoff.is_some_and(|c| f.last <= c) && ended.len() + evicted.len() < n {
                    &mut evicted
                } else {
                    return true;
                };
                end.push((*k, *f));
                false
            },
            |_, _| {},
        );
        self.evicted += evicted.len() as u64;
        for (k, f) in &evicted {
            if f.inspect != FlowInspect::default() {
                self.carried
                    .get_or_insert_with(Carried::new)
                    .keep(*k, f.inspect);
            }
        }
        for (k, f) in ended.into_iter().chain(evicted) {
            self.finish(k, f);
        }
    }

    /// From a sample of the open flows (every flow when the table is small):
    /// `None` when the idle ones will free `n` slots, else the last-seen time
    /// at or before which about as many of the others were last seen as are
    /// still needed. Slots follow the key hash, so evenly spaced slots are a
    /// fair sample.
    fn eviction_cutoff(&self, now: u64, n: usize) -> Option<u64> {
        let timeouts = self.timeouts;
        let stride = (self.flows.slots() / EVICTION_SAMPLE).max(1);
        let (mut sampled, mut lasts) = (0usize, Vec::new());
        for (k, f) in self.flows.every_nth(stride) {
            sampled += 1;
            if !timeouts.expired(k.transport, f, now) {
                lasts.push(f.last);
            }
        }
        let per_sample = self.flows.len() as f64 / sampled.max(1) as f64;
        let idle = (sampled - lasts.len()) as f64 * per_sample;
        if idle >= n as f64 {
            return None;
        }
        if lasts.is_empty() {
            return Some(u64::MAX);
        }
        let q = (((n as f64 - idle) / per_sample).ceil() as usize).clamp(1, lasts.len());
        Some(*lasts.select_nth_unstable(q - 1).1)
    }

    /// Ends every flow (end of input).
    pub fn finish_all(&mut self) {
        self.finish_all_on(1);
    }

    /// Ends every flow (end of input), on two threads when `threads` allows
    /// and there are many. The flows still open when a capture ends are often
    /// most of its flows, and ending them is mostly inventory updates (hash
    /// look-ups and client sets, cache misses), with the reader's core idle by
    /// then. A second thread takes the inventory entries of most server ports
    /// ([`ENDING_SHARE`], split by a hash of the key, so each entry has one
    /// writer and nothing needs merging but two disjoint maps); this thread
    /// does the rest, in slot order as before, so counters, attempts and
    /// records come out the same.
    pub fn finish_all_on(&mut self, threads: usize) {
        let mut flows = std::mem::replace(&mut self.flows, FlowMap::with_capacity(1));
        if threads < 2 || flows.len() < PARALLEL_END_MIN {
            flows.drain(|k, f| self.finish(k, f));
            return;
        }
        let theirs = |k: &OpenPortKey| {
            use std::hash::BuildHasher;
            rustc_hash::FxBuildHasher.hash_one(k) < ENDING_SHARE
        };
        let mut part = self.inventory.split_off(theirs);
        let all = &flows;
        let apart = std::thread::scope(|s| {
            let other = std::thread::Builder::new()
                .name("portflow-ending".into())
                .spawn_scoped(s, || {
                    for (k, f) in all.iter() {
                        if theirs(&open_port_key(k, f)) {
                            part.observe(ending(*k, f).outcome);
                        }
                    }
                });
            // No thread (a process or memory limit): end them all here.
            let Ok(other) = other else {
                return false;
            };
            for (k, f) in all.iter() {
                let e = ending(*k, f);
                let mine = !theirs(&e.outcome.key);
                self.apply(*k, f, e, mine);
            }
            other.join().expect("flow-ending thread");
            true
        });
        if apart {
            self.inventory.join_apart(part);
        } else {
            self.inventory.merge(part);
            flows.drain(|k, f| self.finish(k, f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;
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
    fn known_server_hint_beats_score() {
        let mut t = table();
        let mut p = pkt([10, 0, 0, 1], 50123, [10, 0, 0, 2], 80, F::ACK, 1);
        p.hints = if p.key.lo_port == 50123 {
            HINT_LO_SERVER
        } else {
            HINT_HI_SERVER
        };
        t.account(&p, &[]);
        assert_eq!(t.ports.iter().next().unwrap().0.port, 50123);
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
        let mut states: Vec<_> = t.records.iter().map(|r| (r.client().1, r.state)).collect();
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

    #[test]
    fn shard_hash_is_symmetric() {
        let a = pkt([1, 2, 3, 4], 5, [6, 7, 8, 9], 10, 0, 0);
        let b = pkt([6, 7, 8, 9], 10, [1, 2, 3, 4], 5, 0, 0);
        assert_eq!(a.key, b.key);
        assert_eq!(a.key.shard_hash(), b.key.shard_hash());
    }
}
