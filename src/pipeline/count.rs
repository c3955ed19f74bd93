//! What every packet adds to a run's totals, whoever reads it: the length
//! it counts for, its layers (decode errors, tunnels, IP versions), what has
//! no ports, and the first fragments' ports for later ones; and how often
//! idle flows are swept.
use crate::decode::{self, Addr, Decoded, Kind, Layer, Reason};
use crate::services::Transport;
use crate::source::RawPacket;
use crate::stats::Totals;
use rustc_hash::FxHashMap;

/// Sweeps for idle flows run every this much packet time.
const SWEEP_EVERY_NS: u64 = 10_000_000_000;
/// First fragments remembered at once, and how long (packet time).
const FRAG_CAP: usize = 65_536;
const FRAG_TTL_NS: u64 = 60_000_000_000;

/// Largest believable original length: libpcap's largest snapshot length
/// (256 KiB) covers jumbo frames and segmentation-offload super-packets;
/// beyond it the record is corrupt.
const MAX_WIRE_LEN: u32 = crate::source::MAX_SNAPLEN;

pub(super) type FragKey = (Addr, Addr, u32, u8);

/// The length a packet counts for, and whether its record's length is
/// bogus. That is the record's original length, as tcpdump and tshark take
/// it, even when it is shorter than what was captured (counted as a bad
/// length); one beyond any link's frame size is replaced by the captured
/// length, so a corrupt record cannot add gigabytes.
#[inline(always)]
fn wire_length(raw: &RawPacket) -> (u32, bool) {
    let cap = raw.data.len() as u32;
    let bogus = raw.wire_len < cap || raw.wire_len > MAX_WIRE_LEN;
    let wire = if raw.wire_len > MAX_WIRE_LEN {
        cap
    } else {
        raw.wire_len
    };
    (wire, bogus)
}

/// Counts a packet that passed the filter: its length (returned, with
/// whether its record's length is bogus, [`wire_length`]), its time, and
/// whether the snapshot length cut it.
#[inline(always)]
pub(super) fn count_packet(t: &mut Totals, raw: &RawPacket) -> (u32, bool) {
    let (wire, bogus_len) = wire_length(raw);
    t.packets += 1;
    t.bytes += wire as u64;
    t.seen(raw.ts_ns);
    t.on_timeline(raw.ts_ns, wire);
    if (raw.data.len() as u32) < wire {
        t.truncated_by_snaplen += 1;
    }
    (wire, bogus_len)
}

/// Decodes `raw` into `d`, a new record; a packet of a pcapng interface no
/// block described fails at the link layer. Decoded in place and read where
/// it lies: a copy of the record, read right after the decoder's narrow
/// stores, waits for them to reach the cache (a store-forwarding stall on
/// every packet).
#[inline(always)]
pub(super) fn decode_raw(raw: &RawPacket, d: &mut Decoded) {
    if raw.link == crate::source::UNKNOWN_INTERFACE {
        d.fail(decode::DecodeError::new(
            Layer::Link,
            Reason::UnknownInterface,
        ));
    } else {
        decode::decode_into_new(raw.link, raw.data, d);
    }
}

/// Counts what every decoded packet adds to the totals: decode errors,
/// tunnels, IP versions.
#[inline(always)]
pub(super) fn count_layers(t: &mut Totals, d: &Decoded, bogus_len: bool, wire: u32) {
    if bogus_len {
        t.decode_errors.add(Layer::Link, Reason::BadLength);
    }
    if let Some(e) = d.error {
        t.decode_errors.add(e.layer, e.reason);
    }
    if bogus_len || d.error.is_some() {
        t.decode_error_packets += 1;
    }
    if let Some(k) = d.tunnel {
        t.tunnels[k as usize] += 1;
    }
    match d.ip_version {
        4 => t.ipv4.add(wire),
        6 => t.ipv6.add(wire),
        _ => {}
    }
}

/// Counts a packet that has no ports and is no fragment: ICMP (and the
/// port an "unreachable" names), another IP protocol, a frame that is not
/// IP, or one that did not decode.
#[inline]
pub(super) fn count_portless(t: &mut Totals, d: &Decoded, wire: u32) {
    match d.kind {
        Kind::Transport | Kind::Fragment => {}
        Kind::Icmp => {
            t.icmp.add(wire);
            let u = d.unreachable;
            if u.valid {
                if let Some(tr) = Transport::from_ip_proto(u.proto) {
                    *t.unreachable.entry((tr, u.host, u.port)).or_default() += 1;
                }
            }
        }
        Kind::OtherIp => {
            if Transport::from_ip_proto(d.proto).is_some() {
                // A transport cut short before its ports.
                t.unattributed.add(wire);
            } else {
                t.other_ip.entry(d.proto).or_default().add(wire);
            }
        }
        Kind::NonIp => {
            t.non_ip.add(wire);
            *t.non_ip_by_ethertype.entry(d.ethertype).or_default() += 1;
        }
        Kind::Undecoded => t.unattributed.add(wire),
    }
}

/// The ports of first IP fragments, for the later fragments of the same
/// datagram (which carry none): at most [`FRAG_CAP`] at once; when full,
/// those older than [`FRAG_TTL_NS`] go, or all do. What it holds depends on
/// the packet sequence alone.
#[derive(Default)]
pub(super) struct Fragments {
    map: FxHashMap<FragKey, (u16, u16, u64)>,
}

impl Fragments {
    /// A fragment's datagram: source, destination, IP id, protocol.
    #[inline]
    pub(super) fn key(d: &Decoded) -> FragKey {
        (d.src, d.dst, d.frag.id, d.proto)
    }

    /// Remembers first fragment `d`'s ports, seen at packet time `ts`.
    pub(super) fn remember(&mut self, d: &Decoded, ts: u64) {
        self.insert(Self::key(d), d.sport, d.dport, ts);
    }

    pub(super) fn insert(&mut self, key: FragKey, sport: u16, dport: u16, ts: u64) {
        if self.map.len() >= FRAG_CAP {
            self.map
                .retain(|_, v| ts.saturating_sub(v.2) <= FRAG_TTL_NS);
            if self.map.len() >= FRAG_CAP {
                self.map.clear();
            }
        }
        self.map.insert(key, (sport, dport, ts));
    }

    /// The ports of the datagram `key`'s first fragment, when it was seen.
    #[inline]
    pub(super) fn ports(&self, key: &FragKey) -> Option<(u16, u16)> {
        self.map.get(key).map(|&(sp, dp, _)| (sp, dp))
    }
}

/// A sweep scans a worker's whole flow table, so markers go out only when at
/// least this many packets were dispatched since the last one: a long, sparse
/// capture (a few packets per 10 s) would otherwise pay a table scan for a
/// handful of packets. Idle flows found later end the same way (a late sweep,
/// or the flow's next packet, ends them with the same state).
const SWEEP_MIN_PACKETS: u64 = 1 << 17;

/// When idle flows are swept, by packet time: every [`SWEEP_EVERY_NS`], once
/// at least [`SWEEP_MIN_PACKETS`] went to the flow tables since the last
/// sweep. Its answers depend on the packet sequence alone.
#[derive(Debug, Default)]
pub(super) struct SweepClock {
    next: u64,
    since: u64,
}

impl SweepClock {
    /// The packet clock reached `now`: whether to sweep there.
    #[inline]
    pub(super) fn due(&mut self, now: u64) -> bool {
        if now < self.next {
            return false;
        }
        let due = self.next != 0 && self.since >= SWEEP_MIN_PACKETS;
        if due {
            self.since = 0;
        }
        self.next = now.saturating_add(SWEEP_EVERY_NS);
        due
    }

    /// `packets` more went to the flow tables.
    #[inline]
    pub(super) fn sent(&mut self, packets: u64) {
        self.since += packets;
    }
}
