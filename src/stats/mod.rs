//! Counters: per-port statistics, per-flow state, capture-wide totals.
//!
//! Every type here is owned by one worker while packets flow and merged with
//! `merge` at the end; merging is exact, so a report does not depend on how
//! many workers produced it.

pub mod attempts;
pub mod distinct;
pub mod flow;
pub(crate) mod flowmap;
pub mod hist;
pub mod inventory;
pub mod names;
mod ports;
pub mod timeline;
mod totals;

use crate::services::Transport;
use serde::Serialize;

pub use hist::{Hist, Summary};
pub use ports::{PortStats, PortTable};
pub use totals::{DecodeErrors, Totals};

/// Largest packet size kept in the size histogram (libpcap's maximum snaplen).
pub const SIZE_HIGH: u64 = crate::source::MAX_SNAPLEN as u64;
/// Largest handshake RTT kept, in microseconds (60 s).
pub const RTT_HIGH: u64 = 60_000_000;

/// Packets and bytes (wire length) in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

impl Count {
    #[inline]
    pub fn add(&mut self, bytes: u32) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }
}

impl std::ops::AddAssign for Count {
    fn add_assign(&mut self, o: Count) {
        self.packets += o.packets;
        self.bytes += o.bytes;
    }
}

/// A (transport, service port) pair: the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey {
    pub transport: Transport,
    pub port: u16,
}

/// Puts the capture's time line and the ports' on one ladder step: the
/// coarser of theirs, and `at_least` (`--bucket`).
pub fn align_timelines(t: &mut Totals, p: &mut PortTable, at_least: u8) {
    loop {
        let level = t.timeline_level.max(p.timeline_level).max(at_least);
        t.coarsen_timeline(level);
        p.coarsen_timelines(level);
        if t.timeline_level == p.timeline_level {
            return;
        }
    }
}

/// Widens the span `first..=last` to `ts`, the capture's and each port's. A
/// timestamp of 0 is "never seen" (as is a `first` of 0), so the span is the
/// same whatever order the packets come in and however they are grouped.
///
/// One unsigned compare each (this runs for every packet): less one,
/// wrapping, 0 becomes the largest value, so `ts - 1 < first - 1` holds for
/// any `ts` but 0 when `first` is 0, and otherwise exactly when `ts < first`;
/// a `ts` of 0 is never above `last`.
#[inline]
pub(crate) fn widen_span(first: &mut u64, last: &mut u64, ts: u64) {
    if ts.wrapping_sub(1) < first.wrapping_sub(1) {
        *first = ts;
    }
    if ts > *last {
        *last = ts;
    }
}
