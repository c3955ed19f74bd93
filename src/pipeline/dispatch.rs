//! The reader side of the pipeline: decode, count what is not port traffic,
//! attribute later IP fragments, tell every worker of answered handshakes,
//! and hand [`FlowPacket`]s to workers in batches, sharded by a symmetric
//! flow hash.
use super::batch::{Batch, BATCH};
use super::count::{count_layers, count_packet, count_portless, decode_raw, Fragments, SweepClock};
use super::workers::Workers;
use crate::decode::{tcp_flags as F, Decoded, Kind};
use crate::hint::zeroed_written;
use crate::inspect::FlowInspect;
use crate::inspect::{INSPECT_BYTES, INSPECT_PACKETS};
use crate::services::Transport;
use crate::source::bpf::Filter;
use crate::source::RawPacket;
use crate::stats::flow::{
    FlowKey, FlowPacket, FlowTable, KnownServers, Timeouts, HINT_FRESH, SERVER,
};
use crate::stats::Totals;

/// Slots of the "first packets of a flow" table (direct-mapped by flow hash):
/// it starts small enough to stay in cache (packet data streaming through
/// evicts a larger one, and the reader would miss on every packet) and
/// doubles while slots are often taken over by other flows.
const FIRST_SLOTS_MIN: usize = 1 << 12;
const FIRST_SLOTS_MAX: usize = 1 << 16;
/// Look-ups between growth checks; the table doubles when more than one in
/// [`FIRST_GROW_RATIO`] of them took a slot from another flow.
const FIRST_WINDOW: u32 = 1 << 16;
const FIRST_GROW_RATIO: u32 = 8;

/// Which flows have had their first payload packets sent for inspection: a
/// direct-mapped table keyed by the flow hash, counting payload packets per
/// direction. A collision only means a flow gets a few more packets inspected
/// (as does growing the table, once); a TCP SYN resets its flow's slot (a new
/// connection on the same ports), and so does a flow's packet after an idle
/// time the worker ends a flow for: an NTP client polling from port 123 every
/// two minutes starts a new flow each time, and each one is inspected. The
/// table depends on the packet sequence alone, not on the worker count.
struct FirstPackets {
    /// Per slot: the flow hash's upper 24 bits; the packet time of the slot's
    /// latest packet in [`TIME_UNIT_SHIFT`] units, 24 bits; the payload packets
    /// sent from the `lo` and the `hi` side (one byte each).
    slots: Vec<u64>,
    /// Look-ups and slots taken from another flow in the current window.
    touches: u32,
    taken: u32,
}

const TAG: u64 = 0xffff_ff00_0000_0000;
const TIME: u64 = 0x0000_00ff_ffff_0000;
const COUNTS: u64 = 0xffff;
/// Packet time is kept in units of 2^30 ns (1.07 s), 24 bits of them, compared
/// as a signed difference: times up to 104 days apart compare right, and a
/// time before the slot's (capture files out of order) counts as no idle
/// time, as it does for the worker.
const TIME_UNIT_SHIFT: u32 = 30;

/// An idle time in the table's time units: a flow whose slot saw nothing for
/// at least this long starts over. Both times are cut to whole units, so that
/// is up to two units (2.1 s) before the timeout, never after it: the worker
/// ends a flow idle for longer than its timeout.
fn idle_units(timeout_ns: u64) -> u64 {
    (timeout_ns >> TIME_UNIT_SHIFT).min((1 << 23) - 1)
}

impl FirstPackets {
    fn new() -> Self {
        FirstPackets {
            slots: zeroed_written(FIRST_SLOTS_MIN),
            touches: 0,
            taken: 0,
        }
    }

    /// Looks up flow `hash`'s slot at packet time `now`; true when the slot was
    /// (re)claimed for it now, which is the first packet the reader sees of
    /// the flow (or of a flow that collided with it since), or the first after
    /// `idle` time units without one.
    #[inline]
    fn touch(&mut self, hash: u64, now: u64, idle: u64) -> bool {
        self.touches += 1;
        if self.touches >= FIRST_WINDOW {
            self.window_end();
        }
        let tag = hash & TAG;
        let t = ((now >> TIME_UNIT_SHIFT) << 16) & TIME;
        let held = *self.slot(hash);
        if held & TAG == tag {
            // Time since the slot's latest packet, as a signed 24-bit count.
            let since = ((t.wrapping_sub(held & TIME) << 24) as i64) >> 40;
            if since < idle as i64 {
                if since > 0 {
                    *self.slot(hash) = (held & !TIME) | t;
                }
                return false;
            }
        } else {
            self.taken += (held != 0) as u32;
        }
        *self.slot(hash) = tag | t;
        true
    }

    /// Flow `hash`'s slot (the table's length is a power of two).
    #[inline]
    fn slot(&mut self, hash: u64) -> &mut u64 {
        let mask = self.slots.len() - 1;
        &mut self.slots[hash as usize & mask]
    }

    #[cold]
    fn window_end(&mut self) {
        if self.taken > FIRST_WINDOW / FIRST_GROW_RATIO && self.slots.len() < FIRST_SLOTS_MAX {
            let n = self.slots.len() * 2;
            self.slots = zeroed_written(n);
        }
        self.touches = 0;
        self.taken = 0;
    }

    /// Which payload packet of its direction this one is (0 for the first),
    /// counting up to [`INSPECT_PACKETS`]; `None` past that. Call after
    /// [`Self::touch`].
    #[inline]
    fn nth_payload(&mut self, hash: u64, from_lo: bool) -> Option<u8> {
        let s = self.slot(hash);
        let shift = 8 * from_lo as u32;
        let n = ((*s >> shift) & 0xff) as u8;
        if n >= INSPECT_PACKETS {
            return None;
        }
        *s += 1 << shift;
        Some(n)
    }

    /// A new connection on the flow's ports: its payload packets count again.
    #[inline]
    fn restart(&mut self, hash: u64) {
        *self.slot(hash) &= !COUNTS;
    }
}

pub(crate) struct Dispatcher {
    pub totals: Totals,
    frags: Fragments,
    /// The servers every worker has been told of ([`crate::stats::flow::SERVER`]).
    servers: KnownServers,
    first: FirstPackets,
    /// Idle times (TCP, other transports) after which a worker ends a flow,
    /// in the first-packets table's units.
    idle: [u64; 2],
    batches: Vec<Batch>,
    /// The flow workers, started as packets come for them.
    workers: Workers,
    /// With no worker threads, the reader keeps the flow table itself and
    /// accounts each batch when it fills.
    inline: Option<FlowTable>,
    filter: Option<Filter>,
    /// Packet clock (latest timestamp seen) and when the next sweep is due.
    clock: u64,
    sweeps: SweepClock,
    polls: u32,
}

impl Dispatcher {
    pub fn new(
        workers: Workers,
        filter: Option<Filter>,
        inline: Option<FlowTable>,
        timeouts: Timeouts,
    ) -> Self {
        assert!(
            (workers.len() == 0) == inline.is_some(),
            "either worker channels or an inline flow table"
        );
        let batches = (0..workers.len().max(1))
            .map(|_| Batch::with_capacity(BATCH))
            .collect();
        Dispatcher {
            totals: Totals::default(),
            frags: Fragments::default(),
            servers: KnownServers::default(),
            first: FirstPackets::new(),
            idle: [idle_units(timeouts.tcp), idle_units(timeouts.udp)],
            batches,
            workers,
            inline,
            filter,
            clock: 0,
            sweeps: SweepClock::default(),
            polls: 0,
        }
    }

    /// How many times the reader looks for a batch to come back before it
    /// blocks ([`super::recv_polling`]).
    pub fn set_polls(&mut self, polls: u32) {
        self.polls = polls;
    }

    /// Advances the packet clock; when a sweep is due ([`SweepClock`]) it
    /// puts a sweep marker into every worker's stream.
    #[inline]
    fn tick(&mut self, ts: u64) {
        if ts <= self.clock {
            return;
        }
        self.clock = ts;
        if self.sweeps.due(ts) {
            for shard in 0..self.batches.len() {
                self.batches[shard].pkts.push(FlowPacket::sweep_marker(ts));
                if self.batches[shard].len() >= BATCH {
                    self.flush(shard);
                }
            }
        }
    }

    /// Accounts one captured packet.
    #[inline]
    pub fn packet(&mut self, raw: &RawPacket) {
        if let Some(f) = self.filter.as_mut() {
            if !f.matches(raw.link, raw.data, raw.wire_len) {
                self.totals.filtered_out += 1;
                return;
            }
        }
        self.tick(raw.ts_ns);
        let (wire, bogus_len) = count_packet(&mut self.totals, raw);
        let mut d = Decoded::default();
        decode_raw(raw, &mut d);
        count_layers(&mut self.totals, &d, bogus_len, wire);
        if d.kind == Kind::Transport {
            if d.frag.is_fragment {
                self.totals.fragments += 1;
                self.frags.remember(&d, raw.ts_ns);
            }
            // Read at their own width: a wider load across the decoder's two
            // separate stores cannot be served from the pending stores (the
            // stall above); volatile reads keep the width. SAFETY: reads of
            // two initialised fields of a local.
            let (sp, dp) = unsafe {
                (
                    std::ptr::read_volatile(&d.sport),
                    std::ptr::read_volatile(&d.dport),
                )
            };
            self.dispatch(&d, sp, dp, raw.ts_ns, wire, raw.data);
        } else {
            self.not_transport(&d, raw, wire);
        }
    }

    /// A packet without ports of its own: a later fragment (given its first
    /// fragment's ports when that was seen), or what [`count_portless`] counts.
    #[inline]
    fn not_transport(&mut self, d: &Decoded, raw: &RawPacket, wire: u32) {
        if d.kind != Kind::Fragment {
            count_portless(&mut self.totals, d, wire);
            return;
        }
        let t = &mut self.totals;
        t.fragments += 1;
        match self.frags.ports(&Fragments::key(d)) {
            Some((sp, dp)) => {
                t.fragments_attributed += 1;
                let mut later = *d;
                later.tcp_flags = 0;
                later.payload_len = 0; // not the start of the transport payload
                self.dispatch(&later, sp, dp, raw.ts_ns, wire, raw.data);
            }
            None => {
                t.fragments_unattributed += 1;
                t.unattributed.add(wire);
            }
        }
    }

    /// Hands one packet with ports to its worker's batch, with the reader's
    /// hint (a flow's first packet) and, for a flow's first payload packets,
    /// a payload prefix for inspection. Always inlined (at
    /// two call sites: whole datagrams and attributed fragments): it runs for
    /// nearly every packet, and a call costs a noticeable part of it.
    #[inline(always)]
    fn dispatch(&mut self, d: &Decoded, sport: u16, dport: u16, ts: u64, wire: u32, data: &[u8]) {
        let Some(tr) = Transport::from_ip_proto(d.proto) else {
            return;
        };
        self.totals.transport[tr as usize].add(wire);
        let (key, from_lo) = FlowKey::new(tr, d.src, sport, d.dst, dport);
        let hash = key.shard_hash();
        let idle = self.idle[(tr != Transport::Tcp) as usize];
        let fresh = self.first.touch(hash, ts, idle);
        let hints = if fresh { HINT_FRESH } else { 0 };
        let syn_only = tr == Transport::Tcp && d.tcp_flags & (F::SYN | F::ACK) == F::SYN;
        let n = self.batches.len();
        let shard = if n == 1 {
            0
        } else {
            ((hash as u128 * n as u128) >> 64) as usize
        };
        if tr == Transport::Tcp
            && d.tcp_flags & (F::SYN | F::ACK) == F::SYN | F::ACK
            && n > 1
            && self.servers.learn(d.src, sport)
        {
            self.tell_others(shard, FlowPacket::server(d.src, sport));
        }
        let mut p = FlowPacket {
            key,
            ts,
            wire_len: wire,
            from_lo,
            tcp_flags: d.tcp_flags,
            hints,
            payload_at: 0,
            payload_len: 0,
            hash: hash as u32,
        };
        let inspect = d.payload_len > 0 && matches!(tr, Transport::Tcp | Transport::Udp);
        if syn_only {
            self.first.restart(hash);
        }
        let b = &mut self.batches[shard];
        let nth = if inspect {
            self.first.nth_payload(hash, from_lo)
        } else {
            None
        };
        if let Some(nth) = nth {
            let at = d.payload_offset as usize;
            let len = (d.payload_len as usize).min(INSPECT_BYTES);
            // Only what the flow may look at is copied: the flow itself
            // counts its payload packets and decides.
            let wanted = |b: &[u8]| FlowInspect::worth_a_look(nth, b);
            if let Some(bytes) = data.get(at..at + len).filter(|b| wanted(b)) {
                p.payload_at = b.bytes.len() as u32;
                p.payload_len = len as u16;
                b.bytes.extend_from_slice(bytes);
            }
        }
        b.pkts.push(p);
        self.sweeps.sent(1);
        if b.pkts.len() >= BATCH {
            self.flush(shard);
        }
    }

    /// Puts `record` (not a packet) into every worker's stream but `shard`'s.
    #[cold]
    fn tell_others(&mut self, shard: usize, record: FlowPacket) {
        for other in 0..self.batches.len() {
            if other != shard {
                self.batches[other].pkts.push(record);
                if self.batches[other].len() >= BATCH {
                    self.flush(other);
                }
            }
        }
    }

    fn flush(&mut self, shard: usize) {
        if self.batches[shard].is_empty() {
            return;
        }
        if let Some(t) = self.inline.as_mut() {
            t.account_batch(&self.batches[shard].pkts, &self.batches[shard].bytes);
            self.batches[shard].clear();
            return;
        }
        if !self.workers.is_started(shard) {
            // A worker with no flows has nothing to sweep or end: it starts
            // with its first packet, or when the servers it must learn
            // before that fill a batch.
            let b = &mut self.batches[shard];
            if !b.pkts.iter().any(|p| p.is_packet()) {
                b.pkts.retain(|p| p.hints & SERVER != 0);
                if b.len() < BATCH {
                    return;
                }
            }
            self.workers.start(shard);
        }
        // Wait for a batch to come back (a worker's were made when it
        // started).
        let back = super::recv_polling(&self.workers.recycle, self.polls).ok();
        let fresh = back.unwrap_or_else(|| Batch::with_capacity(BATCH));
        let full = std::mem::replace(&mut self.batches[shard], fresh);
        // A worker only goes away when it panicked; the join reports that.
        let _ = self.workers.senders[shard].send(full);
    }

    /// The flow table, when this dispatcher keeps it itself (no workers):
    /// what it has accounted so far, up to the last flush.
    pub fn inline_table(&self) -> Option<&FlowTable> {
        self.inline.as_ref()
    }

    /// The flow table, when this dispatcher keeps it itself.
    pub fn inline_table_mut(&mut self) -> Option<&mut FlowTable> {
        self.inline.as_mut()
    }

    /// Ends the flows idle at `now_ns` in the inline table, when no packet
    /// has moved the packet clock there yet (a live capture's quiet link:
    /// flows end on the wall clock too). Every batch is accounted first.
    pub fn sweep_at(&mut self, now_ns: u64) {
        self.flush_all();
        if now_ns > self.clock {
            self.clock = now_ns;
            if let Some(t) = self.inline.as_mut() {
                t.sweep(now_ns);
            }
        }
    }

    /// The flow records the inline table has kept since the last call
    /// (flows ended up to the last flush; with `keep_flows`).
    pub fn take_records(&mut self) -> Vec<crate::stats::flow::FlowRecord> {
        self.inline
            .as_mut()
            .map(|t| std::mem::take(&mut t.records))
            .unwrap_or_default()
    }

    /// Sends every partial batch.
    pub fn flush_all(&mut self) {
        for s in 0..self.batches.len() {
            self.flush(s);
        }
    }

    /// Link types the filter could not be compiled for, as messages.
    pub fn filter_warnings(&self) -> Vec<String> {
        self.filter
            .as_ref()
            .map(Filter::warnings)
            .unwrap_or_default()
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Flushes every batch; returns the totals, the workers (to be joined)
    /// and the flow table when the reader kept it (all flows ended).
    pub fn finish(mut self) -> (Totals, Workers, Option<FlowTable>) {
        self.flush_all();
        let table = self.inline.take().map(|mut t| {
            t.finish_all();
            t
        });
        (self.totals, self.workers, table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow_hash(i: u64) -> u64 {
        (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    #[test]
    fn first_packets_table_stays_small_for_few_flows_and_grows_for_many() {
        let mut few = FirstPackets::new();
        for i in 0..4 * FIRST_WINDOW as u64 {
            few.touch(flow_hash(i % 500), i, IDLE);
        }
        assert_eq!(few.slots.len(), FIRST_SLOTS_MIN);
        let mut many = FirstPackets::new();
        for i in 0..16 * FIRST_WINDOW as u64 {
            many.touch(flow_hash(i % 40_000), i, IDLE);
        }
        assert_eq!(many.slots.len(), FIRST_SLOTS_MAX);
    }

    /// One minute, as for UDP by default.
    const IDLE: u64 = 60_000_000_000 >> TIME_UNIT_SHIFT;
    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_flow_is_fresh_once_and_counts_its_payload_packets() {
        let mut t = FirstPackets::new();
        let h = flow_hash(7);
        assert!(t.touch(h, SEC, IDLE));
        assert!(!t.touch(h, 2 * SEC, IDLE));
        let got: Vec<_> = (0..6).map(|_| t.nth_payload(h, true)).collect();
        assert_eq!(&got[..4], &[Some(0), Some(1), Some(2), Some(3)]);
        assert_eq!(got[4], None);
        assert_eq!(t.nth_payload(h, false), Some(0));
        t.restart(h);
        assert_eq!(t.nth_payload(h, true), Some(0));
        assert!(!t.touch(h, 3 * SEC, IDLE), "a SYN keeps the slot's flow");
    }

    #[test]
    fn a_flow_idle_for_its_timeout_starts_over() {
        let mut t = FirstPackets::new();
        let h = flow_hash(9);
        let mut now = 100 * SEC;
        // An NTP client polling every two minutes: a new flow each time.
        for poll in 0..8 {
            assert!(t.touch(h, now, IDLE), "poll {poll} is a new flow");
            assert_eq!(t.nth_payload(h, true), Some(0), "poll {poll}");
            assert!(!t.touch(h, now + SEC / 100, IDLE));
            assert_eq!(t.nth_payload(h, false), Some(0), "poll {poll}'s answer");
            now += 120 * SEC;
        }
        // Packets a few seconds apart never make it idle, however long it lasts.
        assert!(t.touch(h, now, IDLE));
        for _ in 0..1000 {
            now += 5 * SEC;
            assert!(!t.touch(h, now, IDLE));
        }
        // Within the timeout it is the same flow; past it, a new one (never
        // later than the worker, which ends flows idle for more than 60 s).
        assert!(!t.touch(h, now + 50 * SEC, IDLE));
        assert!(t.touch(h, now + 111 * SEC, IDLE));
    }

    #[test]
    fn time_going_back_is_no_idle_time() {
        let mut t = FirstPackets::new();
        let h = flow_hash(11);
        let day = 86_400 * SEC;
        assert!(t.touch(h, 100 * day, IDLE));
        // A second file from a day earlier, then the first file's time again.
        assert!(!t.touch(h, 99 * day, IDLE));
        assert!(!t.touch(h, 100 * day + SEC, IDLE));
        for _ in 0..4 {
            t.nth_payload(h, true);
        }
        assert_eq!(t.nth_payload(h, true), None, "still the same flow");
    }

    #[test]
    fn idle_units_never_end_a_flow_later_than_the_worker() {
        for timeout in [
            0,
            1,
            SEC,
            5 * SEC,
            60 * SEC,
            300 * SEC,
            3_600 * SEC,
            u64::MAX,
        ] {
            let idle = idle_units(timeout);
            // Slot times are whole units: a gap of `gap` ns spans at least
            // floor(gap / unit) of them, which is at least `idle` whenever
            // the gap is past the timeout.
            let gap = timeout.saturating_add(1);
            assert!(idle <= (gap >> TIME_UNIT_SHIFT), "{timeout}");
            assert!(idle < 1 << 23);
        }
    }
}
