//! Capture-wide counters, kept by the pipeline's reader: packets and bytes
//! by layer and kind, decode errors, fragments, tunnels, ICMP evidence.
use super::timeline::{self, Series};
use super::{widen_span, Count};
use crate::decode::{Addr, Layer, Reason, TunnelKind};
use crate::services::Transport;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// Decode errors by layer and reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeErrors {
    counts: [[u64; Reason::COUNT]; Layer::COUNT],
}

impl DecodeErrors {
    #[inline]
    pub fn add(&mut self, layer: Layer, reason: Reason) {
        self.counts[layer as usize][reason as usize] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Non-zero (layer, reason, count) triples in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (Layer, Reason, u64)> + '_ {
        Layer::ALL.iter().flat_map(move |&l| {
            Reason::ALL
                .iter()
                .map(move |&r| (l, r, self.counts[l as usize][r as usize]))
                .filter(|t| t.2 > 0)
        })
    }

    pub fn merge(&mut self, o: &DecodeErrors) {
        for (l, r, n) in o.iter() {
            self.counts[l as usize][r as usize] += n;
        }
    }
}

/// Capture-wide counters, kept by the reader thread.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub packets: u64,
    pub bytes: u64,
    /// Packets that did not match the BPF filter (not counted anywhere else).
    pub filtered_out: u64,
    pub ipv4: Count,
    pub ipv6: Count,
    /// By transport (innermost), including attributed later fragments.
    pub transport: [Count; 4],
    pub icmp: Count,
    /// Other IP protocols by number.
    pub other_ip: BTreeMap<u8, Count>,
    pub non_ip: Count,
    pub non_ip_by_ethertype: BTreeMap<u16, u64>,
    /// Packets with a decode error of any kind (some are still attributed).
    pub decode_error_packets: u64,
    pub decode_errors: DecodeErrors,
    /// Packets that reached no port: link failures, transports cut before their ports...
    pub unattributed: Count,
    pub tunnels: [u64; TunnelKind::COUNT],
    pub fragments: u64,
    /// Later fragments whose first fragment (and so ports) had been seen.
    pub fragments_attributed: u64,
    pub fragments_unattributed: u64,
    /// Packets captured shorter than their wire length (snaplen).
    pub truncated_by_snaplen: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// ICMP port-unreachable evidence: (transport, host, port) → messages.
    pub unreachable: FxHashMap<(Transport, Addr, u16), u64>,
    /// Every packet per time bucket, in buckets of ladder step `timeline_level`.
    pub timeline: Series,
    pub timeline_level: u8,
}

impl Totals {
    pub fn seen(&mut self, ts: u64) {
        widen_span(&mut self.first_ns, &mut self.last_ns, ts);
    }

    /// Counts a packet on the time line (made coarser when it spans more
    /// than [`timeline::MAX_BUCKETS`]).
    #[inline(always)]
    pub fn on_timeline(&mut self, ts: u64, len: u32) {
        let w = timeline::width(self.timeline_level);
        if self.timeline.add(ts, len, w) && self.timeline.buckets_spanned() > timeline::MAX_BUCKETS
        {
            self.coarsen_timeline(self.timeline_level + 1);
        }
    }

    /// Makes the time line's buckets those of step `level` at least, and
    /// coarser until it spans no more than [`timeline::MAX_BUCKETS`].
    #[cold]
    pub fn coarsen_timeline(&mut self, level: u8) {
        let mut level = level.max(self.timeline_level);
        loop {
            self.timeline
                .coarsen(timeline::ratio(self.timeline_level, level));
            self.timeline_level = level;
            if self.timeline.buckets_spanned() <= timeline::MAX_BUCKETS
                || level as usize >= timeline::WIDTHS_NS.len() - 1
            {
                return;
            }
            level += 1;
        }
    }

    pub fn transport(&self, t: Transport) -> Count {
        self.transport[t as usize]
    }

    pub fn merge(&mut self, o: &Totals) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.filtered_out += o.filtered_out;
        self.ipv4 += o.ipv4;
        self.ipv6 += o.ipv6;
        for i in 0..4 {
            self.transport[i] += o.transport[i];
        }
        self.icmp += o.icmp;
        for (k, v) in &o.other_ip {
            *self.other_ip.entry(*k).or_default() += *v;
        }
        self.non_ip += o.non_ip;
        for (k, v) in &o.non_ip_by_ethertype {
            *self.non_ip_by_ethertype.entry(*k).or_default() += v;
        }
        self.decode_error_packets += o.decode_error_packets;
        self.decode_errors.merge(&o.decode_errors);
        self.unattributed += o.unattributed;
        for i in 0..TunnelKind::COUNT {
            self.tunnels[i] += o.tunnels[i];
        }
        self.fragments += o.fragments;
        self.fragments_attributed += o.fragments_attributed;
        self.fragments_unattributed += o.fragments_unattributed;
        self.truncated_by_snaplen += o.truncated_by_snaplen;
        if o.first_ns != 0 {
            self.seen(o.first_ns);
        }
        self.seen(o.last_ns);
        for (k, v) in &o.unreachable {
            *self.unreachable.entry(*k).or_default() += v;
        }
        let level = self.timeline_level.max(o.timeline_level);
        self.coarsen_timeline(level);
        if o.timeline_level == self.timeline_level {
            self.timeline.merge(&o.timeline);
        } else {
            let mut theirs = o.timeline.clone();
            theirs.coarsen(timeline::ratio(o.timeline_level, self.timeline_level));
            self.timeline.merge(&theirs);
        }
        self.coarsen_timeline(self.timeline_level);
    }
}
