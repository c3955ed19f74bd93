//! Making room in a full flow table: idle flows end first, then the least
//! recently seen are evicted (and counted), and what payload inspection found
//! in an evicted flow waits for the rest of its connection.
use super::{EndReason, FlowKey, FlowTable};
use crate::inspect::FlowInspect;
use crate::stats::flowmap::key_hash;

/// Flows sampled to estimate how many of a full table's flows are idle and
/// which tenth to evict (about 0.5% error on the share evicted).
const EVICTION_SAMPLE: usize = 4096;

impl FlowTable {
    /// The table is full: make room for a tenth of the cap, usually in one pass
    /// over the table. Every idle flow ends (as a sweep would end it; not
    /// counted as evicted); when idle flows alone will not free a tenth, the
    /// least recently seen flows make up the rest (evicted and counted). Both
    /// are estimated from a sample of [`EVICTION_SAMPLE`] flows; should the
    /// sample have seen more idle flows than there were, a second pass evicts.
    /// One pass, not three (end idle, collect last-seen times, evict): a SYN
    /// flood fills the table again for every tenth of its cap.
    pub(super) fn make_room(&mut self, now: u64) {
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
    pub(super) fn end_idle_and_evict(&mut self, now: u64, n: usize, cutoff: Option<u64>) {
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
        for (k, f) in ended {
            self.finish(k, f, EndReason::IdleTimeout);
        }
        for (k, f) in evicted {
            self.finish(k, f, EndReason::LackOfResources);
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
}

/// What payload inspection found in flows evicted while still open, by flow
/// (direct-mapped by the flow hash, the full key compared). The reader sends a
/// flow's first payload packets only, so the rest of an evicted connection,
/// which the table then starts as a new flow, would carry no detected
/// protocol and no cleartext finding: its continuation (a packet that is not a
/// SYN) takes them over from here.
pub(super) struct Carried {
    slots: Vec<Option<(FlowKey, FlowInspect)>>,
}

/// Evicted flows remembered at once (per worker): 2.6 MiB, made only once the
/// flow cap is reached.
const CARRIED_SLOTS: usize = 1 << 16;

impl Carried {
    pub(super) fn new() -> Self {
        Carried {
            slots: vec![None; CARRIED_SLOTS],
        }
    }

    #[inline]
    fn slot(hash: u32) -> usize {
        hash as usize & (CARRIED_SLOTS - 1)
    }

    pub(super) fn keep(&mut self, key: FlowKey, inspect: FlowInspect) {
        self.slots[Self::slot(key_hash(&key))] = Some((key, inspect));
    }

    /// The inspection state of an evicted flow with this key, taken out.
    pub(super) fn take(&mut self, key: &FlowKey, hash: u32) -> Option<FlowInspect> {
        self.slots[Self::slot(hash)]
            .take_if(|(k, _)| k == key)
            .map(|(_, i)| i)
    }
}
