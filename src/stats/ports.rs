//! Per-port statistics, in a table indexed directly by (transport, port):
//! no hashing per packet.
use super::timeline::{self, Current, Entries};
use super::{distinct, widen_span, Count, Hist, PortKey, RTT_HIGH, SIZE_HIGH};
use crate::hint::{prefetch, prefetch_lines, LINE};
use crate::services::Transport;
use crate::stats::flow::CONN_STATES;

/// Statistics of one service port.
///
/// The fields every packet updates come first, in declaration order
/// (`repr(C)`), on the two cache lines [`PortTable::prefetch`] fetches ahead;
/// the rest is touched once per flow or at the end.
#[derive(Debug, Clone, Default)]
#[repr(C, align(64))]
pub struct PortStats {
    pub to_server: Count,
    pub to_client: Count,
    pub first_ns: u64,
    pub last_ns: u64,
    pub syn: u64,
    pub syn_ack: u64,
    pub rst: u64,
    /// The time line's current bucket (per packet, so on the second line).
    pub now: Current,
    pub sizes: Hist<SIZE_HIGH>,
    pub flows: u64,
    /// Distinct clients and servers (exact up to 10,000, then estimated).
    pub clients: distinct::Distinct,
    pub servers: distinct::Distinct,
    /// Flows by TCP outcome (Zeek conn_state vocabulary), counted when a flow ends.
    /// Indexed by [`crate::stats::flow::ConnState`]; names in [`CONN_STATES`].
    pub states: [u64; CONN_STATES.len()],
    /// ICMP port-unreachable messages quoting this port (evidence it is closed).
    pub unreachable: u64,
    pub rtt_us: Hist<RTT_HIGH>,
    /// Packets per time bucket (the table's step,
    /// [`PortTable::timeline_level`]); the latest in `now` until settled.
    pub timeline: Entries,
}

impl PortStats {
    pub fn packets(&self) -> u64 {
        self.to_server.packets + self.to_client.packets
    }

    pub fn bytes(&self) -> u64 {
        self.to_server.bytes + self.to_client.bytes
    }

    /// Whether only probes reached the port: flows no server answered. TCP:
    /// no SYN-ACK, and every flow ended `S0`, `REJ`, `RSTOS0` or `SH`; the
    /// other transports: no packet back and at most two datagrams a flow (a
    /// probe and its retry; a one-way stream such as syslog sends more, and
    /// is a service). (Once every flow has ended.)
    pub fn probed_only(&self, t: Transport) -> bool {
        if self.flows == 0 {
            return false;
        }
        match t {
            Transport::Tcp => {
                self.syn_ack == 0
                    && CONN_STATES
                        .iter()
                        .zip(self.states)
                        .all(|(s, n)| n == 0 || matches!(*s, "S0" | "REJ" | "RSTOS0" | "SH"))
            }
            _ => self.to_client.packets == 0 && self.to_server.packets <= 2 * self.flows,
        }
    }

    /// Counts a packet on the port's time line; whether it made a new bucket.
    #[inline(always)]
    pub fn on_timeline(&mut self, ts: u64, len: u32, width: u64) -> bool {
        !self.now.hit(ts, len, width) && self.timeline.land(&mut self.now, ts, len, width)
    }

    /// Widens the port's time span to `ts` ([`widen_span`]).
    #[inline]
    pub fn seen(&mut self, ts: u64) {
        widen_span(&mut self.first_ns, &mut self.last_ns, ts);
    }

    pub fn merge(&mut self, o: PortStats) {
        self.to_server += o.to_server;
        self.to_client += o.to_client;
        self.flows += o.flows;
        self.clients.absorb(o.clients);
        self.servers.absorb(o.servers);
        // 0 is "never seen" (a table can hold a port it only counted flow states for).
        self.seen(o.first_ns);
        self.seen(o.last_ns);
        self.syn += o.syn;
        self.syn_ack += o.syn_ack;
        self.rst += o.rst;
        for (mine, theirs) in self.states.iter_mut().zip(o.states) {
            *mine += theirs;
        }
        self.unreachable += o.unreachable;
        self.sizes.merge(&o.sizes);
        self.rtt_us.merge(&o.rtt_us);
        self.timeline.merge(&mut self.now, &o.timeline, &o.now);
    }
}

/// The bytes of [`PortStats`] every packet touches: its first two lines.
const PER_PACKET_TO: usize = 2 * LINE;
/// The lines of [`PortStats`] a new flow touches: from the line holding
/// `flows` to the end of `servers`.
const PER_FLOW_FROM: usize = std::mem::offset_of!(PortStats, flows) & !(LINE - 1);
const PER_FLOW_TO: usize =
    std::mem::offset_of!(PortStats, servers) + std::mem::size_of::<distinct::Distinct>();

/// Per-port statistics indexed directly by (transport, port): no hashing per packet.
pub struct PortTable {
    slots: Vec<Option<Box<PortStats>>>,
    /// The slots in use, in the order they were first used: the report, the
    /// merge and live snapshots visit these rather than all 262,144 slots,
    /// mostly empty, on the serial end of every run.
    used: Vec<u32>,
    /// The ladder step of every port's time line ([`timeline::WIDTHS_NS`]).
    pub timeline_level: u8,
    /// (port, bucket) entries over every port's time line.
    timeline_entries: usize,
}

impl Default for PortTable {
    fn default() -> Self {
        PortTable {
            slots: (0..4 * 65536).map(|_| None).collect(),
            used: Vec::new(),
            timeline_level: 0,
            timeline_entries: 0,
        }
    }
}

/// A port's first counter: notes its slot as used and makes its statistics.
#[cold]
fn first_use(used: &mut Vec<u32>, i: usize) -> Box<PortStats> {
    used.push(i as u32);
    Box::default()
}

#[inline]
fn slot_of(t: Transport, port: u16) -> usize {
    (t as usize) << 16 | port as usize
}

impl PortTable {
    /// Takes the table's counters, leaving it without slots, only to be
    /// dropped: `mem::take` made a new table of 262,144 slots for that (2 MiB
    /// written and then freed slot by slot, on the path from the last packet
    /// to the report).
    pub fn take(&mut self) -> PortTable {
        PortTable {
            slots: std::mem::take(&mut self.slots),
            used: std::mem::take(&mut self.used),
            timeline_level: self.timeline_level,
            timeline_entries: self.timeline_entries,
        }
    }

    #[inline]
    pub fn get_mut(&mut self, t: Transport, port: u16) -> &mut PortStats {
        let i = slot_of(t, port);
        let used = &mut self.used;
        self.slots[i].get_or_insert_with(|| first_use(used, i))
    }

    /// Starts loading where port `port`'s statistics are kept (stage 1 of 2:
    /// the table's entry, a pointer).
    #[inline]
    pub fn prefetch_entry(&self, t: Transport, port: u16) {
        prefetch(self.slots.as_ptr().wrapping_add(slot_of(t, port)).cast());
    }

    /// Starts loading port `port`'s per-packet counters (stage 2 of 2: reads the
    /// entry, which should be in cache by now), if the port has any yet.
    #[inline]
    pub fn prefetch(&self, t: Transport, port: u16) {
        self.prefetch_bytes(t, port, 0..PER_PACKET_TO);
    }

    /// Starts loading what a new flow of port `port` touches (its flow count
    /// and the heads of its client and server sets), as [`Self::prefetch`].
    #[inline]
    pub fn prefetch_per_flow(&self, t: Transport, port: u16) {
        self.prefetch_bytes(t, port, PER_FLOW_FROM..PER_FLOW_TO);
    }

    /// Starts loading bytes `range` of port `port`'s statistics, if it has any.
    #[inline]
    fn prefetch_bytes(&self, t: Transport, port: u16, range: std::ops::Range<usize>) {
        if let Some(Some(p)) = self.slots.get(slot_of(t, port)) {
            let at: *const u8 = (&**p as *const PortStats).cast();
            prefetch_lines(at.wrapping_add(range.start), range.len());
        }
    }

    /// The ports with statistics, in (transport, port) order.
    pub fn iter(&self) -> impl Iterator<Item = (PortKey, &PortStats)> {
        let mut order = self.used.clone();
        order.sort_unstable();
        order.into_iter().filter_map(|i| {
            let i = i as usize;
            self.slots[i].as_deref().map(|p| {
                (
                    PortKey {
                        transport: Transport::ALL[i >> 16],
                        port: i as u16,
                    },
                    p,
                )
            })
        })
    }

    /// The width of the time lines' buckets, in nanoseconds.
    #[inline(always)]
    pub fn bucket_ns(&self) -> u64 {
        timeline::width(self.timeline_level)
    }

    /// A port's time line made a new bucket: makes every time line coarser
    /// when that one spans too many buckets or all hold too many entries.
    #[cold]
    pub fn timeline_grew(&mut self, t: Transport, port: u16) {
        self.timeline_entries += 1;
        let spanned = self.slots[slot_of(t, port)]
            .as_ref()
            .map_or(0, |p| p.timeline.buckets_spanned());
        if spanned > timeline::MAX_BUCKETS || self.timeline_entries > timeline::PORT_ENTRIES {
            self.coarsen_timelines(self.timeline_level + 1);
        }
    }

    /// Makes every port's buckets those of step `level` at least, and
    /// coarser until none spans more than [`timeline::MAX_BUCKETS`] and all
    /// hold at most [`timeline::PORT_ENTRIES`].
    pub fn coarsen_timelines(&mut self, level: u8) {
        let mut level = level.max(self.timeline_level);
        loop {
            let by = timeline::ratio(self.timeline_level, level);
            let (mut entries, mut widest) = (0, 0);
            for &i in &self.used {
                if let Some(p) = self.slots[i as usize].as_mut() {
                    p.timeline.coarsen(&mut p.now, by);
                    entries += p.timeline.len();
                    widest = widest.max(p.timeline.buckets_spanned());
                }
            }
            (self.timeline_level, self.timeline_entries) = (level, entries);
            let fits = widest <= timeline::MAX_BUCKETS && entries <= timeline::PORT_ENTRIES;
            if fits || level as usize >= timeline::WIDTHS_NS.len() - 1 {
                return;
            }
            level += 1;
        }
    }

    /// Adds `o`'s ports, moving those this table does not have yet (both
    /// time lines at the coarser of their steps first).
    pub fn merge(&mut self, mut o: PortTable) {
        // Either may climb past the step asked for (to fit its bounds).
        while self.timeline_level != o.timeline_level {
            let level = self.timeline_level.max(o.timeline_level);
            self.coarsen_timelines(level);
            o.coarsen_timelines(level);
        }
        for i in o.used {
            let i = i as usize;
            let Some(theirs) = o.slots[i].take() else {
                continue;
            };
            match &mut self.slots[i] {
                Some(m) => m.merge(*theirs),
                mine @ None => {
                    *mine = Some(theirs);
                    self.used.push(i as u32);
                }
            }
        }
        self.coarsen_timelines(self.timeline_level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::distinct;

    #[test]
    fn a_port_table_lists_its_ports_in_order_and_merges_them_whatever_order_they_came_in() {
        let keys = |t: &PortTable| -> Vec<(Transport, u16)> {
            t.iter().map(|(k, _)| (k.transport, k.port)).collect()
        };
        let mut a = PortTable::default();
        for (t, port) in [
            (Transport::Udp, 53),
            (Transport::Tcp, 443),
            (Transport::Tcp, 22),
        ] {
            a.get_mut(t, port).flows += 1;
        }
        a.get_mut(Transport::Tcp, 443).flows += 1;
        assert_eq!(
            keys(&a),
            [
                (Transport::Tcp, 22),
                (Transport::Tcp, 443),
                (Transport::Udp, 53)
            ]
        );
        let mut b = PortTable::default();
        for (t, port) in [(Transport::Tcp, 80), (Transport::Tcp, 443)] {
            b.get_mut(t, port).flows += 10;
        }
        a.merge(b.take());
        assert_eq!(
            keys(&a),
            [
                (Transport::Tcp, 22),
                (Transport::Tcp, 80),
                (Transport::Tcp, 443),
                (Transport::Udp, 53)
            ]
        );
        let flows: Vec<u64> = a.iter().map(|(_, p)| p.flows).collect();
        assert_eq!(flows, [1, 10, 12, 1]);
        assert_eq!(keys(&b), []);
    }

    #[test]
    fn per_packet_port_counters_sit_on_the_two_prefetched_lines() {
        use std::mem::{align_of, offset_of, size_of};
        assert_eq!(align_of::<PortStats>(), 64);
        let end = |at: usize, size: usize| at + size;
        for hot_end in [
            end(offset_of!(PortStats, to_server), size_of::<Count>()),
            end(offset_of!(PortStats, to_client), size_of::<Count>()),
            end(offset_of!(PortStats, first_ns), 8),
            end(offset_of!(PortStats, last_ns), 8),
            end(offset_of!(PortStats, syn), 8),
            end(offset_of!(PortStats, syn_ack), 8),
            end(offset_of!(PortStats, rst), 8),
            end(
                offset_of!(PortStats, now),
                size_of::<crate::stats::timeline::Current>(),
            ),
            // The size histogram's front cache (most packets touch only that).
            end(
                offset_of!(PortStats, sizes),
                Hist::<SIZE_HIGH>::PER_RECORD_BYTES,
            ),
        ] {
            assert!(hot_end <= 128, "a per-packet field ends at byte {hot_end}");
        }
    }

    #[test]
    fn the_per_flow_prefetch_covers_what_a_new_flow_touches() {
        use std::mem::{offset_of, size_of};
        let d = size_of::<distinct::Distinct>();
        for (at, size) in [
            (offset_of!(PortStats, flows), 8),
            (offset_of!(PortStats, clients), d),
            (offset_of!(PortStats, servers), d),
        ] {
            assert!(
                PER_FLOW_FROM <= at && at + size <= PER_FLOW_TO,
                "{at}+{size}"
            );
        }
        assert_eq!(PER_FLOW_FROM % 64, 0);
    }

    #[test]
    fn a_port_span_ignores_zero_times_in_any_order() {
        let spans = [[5, 0, 7], [0, 5, 7], [7, 5, 0], [5, 7, 0]].map(|order| {
            let mut p = PortStats::default();
            order.into_iter().for_each(|t| p.seen(t));
            (p.first_ns, p.last_ns)
        });
        assert!(spans.iter().all(|&s| s == (5, 7)), "{spans:?}");
        // Merging keeps the earliest and latest of both, and a table that only
        // counted flow states (no times) changes nothing.
        let (mut a, mut b) = (PortStats::default(), PortStats::default());
        a.seen(9);
        b.seen(3);
        b.seen(4);
        a.merge(b);
        a.merge(PortStats::default());
        assert_eq!((a.first_ns, a.last_ns), (3, 9));
    }
}
