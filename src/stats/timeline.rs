//! Packets and bytes per time bucket: the capture's and each port's.
//!
//! Buckets are aligned on the epoch, and their widths come from a ladder in
//! which each width divides the next ([`WIDTHS_NS`]), so a series is made
//! coarser exactly, by dividing its bucket numbers, and two series of one
//! width add up bucket by bucket. A series starts at the finest width and
//! moves up the ladder when it would hold more than [`MAX_BUCKETS`] buckets,
//! or a port table more than [`PORT_ENTRIES`] in all: memory stays bounded
//! however long the capture. The width a report ends with is the finest at
//! which the whole capture fits those bounds; a thread's part never needs a
//! coarser one than the whole (its buckets are a subset), so the result is
//! the same for any number of threads.
use super::Count;

/// Bucket widths, in nanoseconds: 1 ms to 8,192 days (22 years: captures
/// joined from different years span decades), each dividing the next.
pub const WIDTHS_NS: [u64; 32] = [
    1_000_000,
    2_000_000,
    10_000_000,
    20_000_000,
    100_000_000,
    200_000_000,
    1_000_000_000,
    2_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
    300_000_000_000,
    600_000_000_000,
    1_800_000_000_000,
    3_600_000_000_000,
    7_200_000_000_000,
    21_600_000_000_000,
    43_200_000_000_000,
    86_400_000_000_000,
    172_800_000_000_000,
    345_600_000_000_000,
    691_200_000_000_000,
    1_382_400_000_000_000,
    2_764_800_000_000_000,
    5_529_600_000_000_000,
    11_059_200_000_000_000,
    22_118_400_000_000_000,
    44_236_800_000_000_000,
    88_473_600_000_000_000,
    176_947_200_000_000_000,
    353_894_400_000_000_000,
    707_788_800_000_000_000,
];

/// Most buckets a report's time line has (from the first to the last
/// packet's); a series holds at most as many.
pub const MAX_BUCKETS: u64 = 360;

/// Most (port, bucket) entries one port table holds.
pub const PORT_ENTRIES: usize = 1 << 20;

/// The width of ladder step `level` (the coarsest past the end).
pub fn width(level: u8) -> u64 {
    WIDTHS_NS[(level as usize).min(WIDTHS_NS.len() - 1)]
}

/// The first ladder step at least `ns` wide (`--bucket`).
pub fn level_for(ns: u64) -> u8 {
    WIDTHS_NS
        .iter()
        .position(|w| *w >= ns)
        .unwrap_or(WIDTHS_NS.len() - 1) as u8
}

/// The bucket a time line counts into now, kept apart from its list so that
/// a port can hold it beside its other per-packet counters: what it got
/// since it was last settled into the list, and its start (`u64::MAX`:
/// none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    pending: Count,
    start: u64,
}

impl Default for Current {
    fn default() -> Self {
        Current {
            pending: Count::default(),
            start: u64::MAX,
        }
    }
}

impl Current {
    /// Counts a packet of `len` bytes at `ts` when it falls in this bucket
    /// (`width` wide); whether it did.
    #[inline(always)]
    pub fn hit(&mut self, ts: u64, len: u32, width: u64) -> bool {
        if ts >= self.start && ts - self.start < width {
            self.pending.add(len);
            true
        } else {
            false
        }
    }
}

/// Packets and bytes per bucket, sorted by bucket number (time / width);
/// the current bucket's latest counts are in its [`Current`] until settled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entries {
    entries: Vec<(u64, Count)>,
    /// The index of the current bucket.
    at: u32,
}

impl Entries {
    /// Counts a packet at `ts` that missed `cur`: settles `cur`, makes the
    /// packet's bucket current; whether that bucket is new.
    #[inline(never)]
    pub fn land(&mut self, cur: &mut Current, ts: u64, len: u32, width: u64) -> bool {
        self.settle(cur);
        let idx = ts / width;
        let (at, made) = match self.entries.binary_search_by_key(&idx, |e| e.0) {
            Ok(i) => (i, false),
            Err(i) => {
                self.entries.insert(i, (idx, Count::default()));
                (i, true)
            }
        };
        self.at = at as u32;
        cur.start = idx * width;
        cur.pending.add(len);
        made
    }

    /// Adds what `cur` got to its entry: what reads the entries needs this
    /// first (coarsening and merging do it).
    pub fn settle(&mut self, cur: &mut Current) {
        if cur.start != u64::MAX {
            if let Some(e) = self.entries.get_mut(self.at as usize) {
                e.1 += std::mem::take(&mut cur.pending);
            }
        }
    }

    /// Settles and forgets the current bucket (the entries are to change).
    fn release(&mut self, cur: &mut Current) {
        self.settle(cur);
        *cur = Current::default();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (bucket number, counts), in time order (once settled).
    pub fn entries(&self) -> &[(u64, Count)] {
        &self.entries
    }

    /// The first and last bucket numbers.
    pub fn span(&self) -> Option<(u64, u64)> {
        Some((self.entries.first()?.0, self.entries.last()?.0))
    }

    /// Bucket numbers from the first to the last.
    pub fn buckets_spanned(&self) -> u64 {
        self.span().map_or(0, |(a, b)| b - a + 1)
    }

    /// The same counts in buckets `by` times wider, in place (no allocation).
    pub fn coarsen(&mut self, cur: &mut Current, by: u64) {
        self.release(cur);
        if by <= 1 {
            return;
        }
        let mut kept = 0;
        for i in 0..self.entries.len() {
            let (idx, c) = self.entries[i];
            if kept > 0 && self.entries[kept - 1].0 == idx / by {
                self.entries[kept - 1].1 += c;
            } else {
                self.entries[kept] = (idx / by, c);
                kept += 1;
            }
        }
        self.entries.truncate(kept);
    }

    /// Empties it, keeping its room.
    pub fn clear(&mut self, cur: &mut Current) {
        self.entries.clear();
        *cur = Current::default();
    }

    /// Adds `o` with its current bucket `o_cur` (of the same width, settled
    /// or not), bucket by bucket.
    pub fn merge(&mut self, cur: &mut Current, o: &Entries, o_cur: &Current) {
        self.release(cur);
        self.merge_entries(&o.entries);
        if o_cur.start != u64::MAX {
            if let Some(&(idx, _)) = o.entries.get(o.at as usize) {
                if let Ok(i) = self.entries.binary_search_by_key(&idx, |e| e.0) {
                    self.entries[i].1 += o_cur.pending;
                }
            }
        }
    }

    /// Adds settled entries. When they begin where these end or later (the
    /// next chunk of a file), they are appended in place.
    fn merge_entries(&mut self, theirs: &[(u64, Count)]) {
        let (Some(&(first, c)), last) = (theirs.first(), self.entries.last_mut()) else {
            return;
        };
        match last {
            Some(l) if l.0 == first => {
                l.1 += c;
                self.entries.extend_from_slice(&theirs[1..]);
                return;
            }
            Some(l) if l.0 < first => {
                self.entries.extend_from_slice(theirs);
                return;
            }
            None => {
                self.entries.extend_from_slice(theirs);
                return;
            }
            Some(_) => {}
        }
        let mine = std::mem::take(&mut self.entries);
        let mut out = Vec::with_capacity(mine.len() + theirs.len());
        let (mut a, mut b) = (
            mine.into_iter().peekable(),
            theirs.iter().copied().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    let (mut x, y) = (a.next().unwrap(), b.next().unwrap());
                    x.1 += y.1;
                    x
                }
                (Some(x), Some(y)) if x.0 < y.0 => a.next().unwrap(),
                (Some(_), Some(_)) | (None, Some(_)) => b.next().unwrap(),
                (Some(_), None) => a.next().unwrap(),
                (None, None) => break,
            };
            out.push(next);
        }
        self.entries = out;
    }
}

/// A time line with its current bucket beside it (the capture's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    cur: Current,
    list: Entries,
}

impl Series {
    /// Counts a packet of `len` bytes at `ts` in buckets `width` wide;
    /// whether it made a new bucket.
    #[inline(always)]
    pub fn add(&mut self, ts: u64, len: u32, width: u64) -> bool {
        !self.cur.hit(ts, len, width) && self.list.land(&mut self.cur, ts, len, width)
    }

    pub fn settle(&mut self) {
        self.list.settle(&mut self.cur);
    }

    pub fn coarsen(&mut self, by: u64) {
        self.list.coarsen(&mut self.cur, by);
    }

    pub fn merge(&mut self, o: &Series) {
        self.list.merge(&mut self.cur, &o.list, &o.cur);
    }

    pub fn clear(&mut self) {
        self.list.clear(&mut self.cur);
    }

    /// The buckets (once settled).
    pub fn list(&self) -> &Entries {
        &self.list
    }

    pub fn buckets_spanned(&self) -> u64 {
        self.list.buckets_spanned()
    }
}

/// How many times wider step `to` is than step `from`.
pub fn ratio(from: u8, to: u8) -> u64 {
    width(to) / width(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_width_divides_the_next() {
        for w in WIDTHS_NS.windows(2) {
            assert_eq!(w[1] % w[0], 0, "{} into {}", w[0], w[1]);
        }
        assert_eq!(level_for(1_000_000_000), 6);
        assert_eq!(level_for(1_500_000_000), 7);
    }

    #[test]
    fn coarser_is_the_sum_of_finer_and_order_does_not_matter() {
        let ts: Vec<u64> = (0..1000u64)
            .map(|i| (i * 7_919) % 5_000 * 1_000_000)
            .collect();
        let mut one = Series::default();
        for &t in &ts {
            one.add(t, 100, width(0));
        }
        // Two halves, added in the other order, then merged.
        let (mut a, mut b) = (Series::default(), Series::default());
        for &t in ts.iter().rev().take(500) {
            a.add(t, 100, width(0));
        }
        for &t in ts.iter().rev().skip(500) {
            b.add(t, 100, width(0));
        }
        b.settle();
        a.merge(&b);
        one.settle();
        assert_eq!(a.list().entries(), one.list().entries());
        let mut direct = Series::default();
        for &t in &ts {
            direct.add(t, 100, width(6));
        }
        one.coarsen(ratio(0, 6));
        direct.settle();
        assert_eq!(one.list().entries(), direct.list().entries());
        let total: u64 = one.list().entries().iter().map(|e| e.1.packets).sum();
        assert_eq!(total, 1000);
    }
}
