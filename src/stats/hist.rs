//! A histogram that stays small until it needs to be big.
//!
//! A port scan touches thousands of ports once each, and many ports see only a
//! few distinct packet sizes; a full `hdrhistogram` per port costs 10-20 KiB.
//! Up to [`SPARSE`] distinct values are kept exactly, as sorted (value, count)
//! pairs, so those percentiles are exact; past that all samples move into
//! buckets of two significant digits (values within 1%): the buckets of an
//! `hdrhistogram` with those settings, counted here in a plain array
//! (recording is a leading-zero count and two shifts, on every packet of a
//! busy port); `hdrhistogram` computes the percentiles from the same counts.
//! In front of both, a cache of the four values recorded last takes most
//! samples. Which form a histogram has depends only on the multiset of
//! samples, so merging per-worker histograms gives the same result for any
//! number of workers.
use hdrhistogram::Histogram;
use serde::Serialize;

/// Distinct values kept exactly (16 bytes each).
pub const SPARSE: usize = 32;

#[derive(Clone, Debug)]
#[repr(C)]
pub struct Hist<const HIGH: u64> {
    /// The values recorded last and how many times, not yet added to `small`
    /// or `big` (a count of 0 is an empty entry). A port's packets repeat a few
    /// sizes (full segments and their ACKs), so most records only add one here:
    /// this sits on the port's second cache line, which the worker prefetches,
    /// while `small` and `big` lie behind pointers.
    hot: [(u32, u32); HOT],
    /// Exact extremes (the histogram rounds to its buckets).
    min: u64,
    max: u64,
    /// Sorted by value; empty once `big` is in use.
    small: Vec<(u64, u64)>,
    big: Option<Box<Buckets>>,
}

/// Entries of [`Hist`]'s front cache (8 bytes each).
const HOT: usize = 4;

impl<const HIGH: u64> Default for Hist<HIGH> {
    fn default() -> Self {
        Hist {
            hot: [(0, 0); HOT],
            min: u64::MAX,
            max: 0,
            small: Vec::new(),
            big: None,
        }
    }
}

/// Percentiles of one histogram, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

impl<const HIGH: u64> Hist<HIGH> {
    /// Bytes from the start of a `Hist` that recording a value already in its
    /// front cache touches.
    pub const PER_RECORD_BYTES: usize =
        std::mem::offset_of!(Self, hot) + std::mem::size_of::<[(u32, u32); HOT]>();

    #[inline]
    pub fn record(&mut self, v: u64) {
        const { assert!(HIGH < u32::MAX as u64) };
        let v = v.clamp(1, HIGH) as u32;
        for k in 0..HOT {
            let e = &mut self.hot[k];
            if e.0 == v {
                e.1 += 1;
                if e.1 == u32::MAX {
                    self.settle_entry(k);
                }
                return;
            }
        }
        self.record_new(v);
    }

    /// `v` is not in the front cache: it takes the first entry, and the last
    /// entry's count moves to `small` or `big`.
    #[inline(never)]
    fn record_new(&mut self, v: u32) {
        self.min = self.min.min(v as u64);
        self.max = self.max.max(v as u64);
        let (old, n) = self.hot[HOT - 1];
        self.hot.copy_within(0..HOT - 1, 1);
        self.hot[0] = (v, 1);
        if n > 0 {
            self.store(old as u64, n as u64);
        }
    }

    fn settle_entry(&mut self, k: usize) {
        let (v, n) = std::mem::take(&mut self.hot[k]);
        self.store(v as u64, n as u64);
    }

    /// Adds `n` samples of `v` (already clamped) to `small` or `big`.
    fn store(&mut self, v: u64, n: u64) {
        if let Some(b) = self.big.as_deref_mut() {
            b.add(v, n);
            return;
        }
        match self.small.binary_search_by_key(&v, |e| e.0) {
            Ok(i) => self.small[i].1 += n,
            Err(_) if self.small.len() >= SPARSE => self.upgrade().add(v, n),
            Err(i) => self.small.insert(i, (v, n)),
        }
    }

    /// The front cache's entries in use.
    fn hot_entries(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.hot
            .iter()
            .filter(|e| e.1 > 0)
            .map(|&(v, n)| (v as u64, n as u64))
    }

    fn upgrade(&mut self) -> &mut Buckets {
        if self.big.is_none() {
            let mut b = Buckets::new(HIGH);
            for &(v, n) in &self.small {
                b.add(v, n);
            }
            self.small = Vec::new();
            self.big = Some(Box::new(b));
        }
        self.big.as_deref_mut().expect("just set")
    }

    pub fn count(&self) -> u64 {
        let stored = match &self.big {
            Some(b) => b.total,
            None => self.small.iter().map(|e| e.1).sum(),
        };
        stored + self.hot_entries().map(|e| e.1).sum::<u64>()
    }

    pub fn merge(&mut self, other: &Hist<HIGH>) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        match &other.big {
            Some(ob) => self.upgrade().merge(ob),
            None => {
                for &(v, n) in &other.small {
                    self.store(v, n);
                }
            }
        }
        for (v, n) in other.hot_entries() {
            self.store(v, n);
        }
    }

    /// Percentiles of every value recorded, in the form (exact pairs or
    /// buckets) all of them stored would have: it depends only on the values,
    /// not on which are still in the front cache.
    pub fn summary(&self) -> Option<Summary> {
        if let Some(b) = self.big.as_deref() {
            let mut h = b.histogram();
            for (v, n) in self.hot_entries() {
                let _ = h.record_n(Buckets::lowest(Buckets::index(v)).max(1), n);
            }
            return Some(Summary {
                count: h.len(),
                min: self.min,
                p50: h.value_at_quantile(0.50).clamp(self.min, self.max),
                p90: h.value_at_quantile(0.90).clamp(self.min, self.max),
                p99: h.value_at_quantile(0.99).clamp(self.min, self.max),
                max: self.max,
                mean: (h.mean() * 10.0).round() / 10.0,
            });
        }
        if self.hot_entries().next().is_some() {
            // At most SPARSE pairs: a merged copy holds the front cache's counts
            // stored (and is buckets if they bring more distinct values).
            let mut all = Self::default();
            all.merge(self);
            return all.summary();
        }
        let s = &self.small;
        if s.is_empty() {
            return None;
        }
        let n: u64 = s.iter().map(|e| e.1).sum();
        // The value of rank ceil(q * n), counting from 1.
        let rank = |q: f64| {
            let r = ((q * n as f64).ceil() as u64).clamp(1, n);
            let mut seen = 0;
            for &(v, c) in s {
                seen += c;
                if seen >= r {
                    return v;
                }
            }
            s[s.len() - 1].0
        };
        let mean = s.iter().map(|&(v, c)| v as f64 * c as f64).sum::<f64>() / n as f64;
        Some(Summary {
            count: n,
            min: s[0].0,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: s[s.len() - 1].0,
            mean: (mean * 10.0).round() / 10.0,
        })
    }
}

/// Counts per bucket of an `hdrhistogram` with lowest value 1 and two
/// significant digits: values below 256 exactly, then 128 buckets per power of
/// two. The tests check the bucket bounds against the crate's own.
#[derive(Clone, Debug)]
struct Buckets {
    counts: Vec<u64>,
    total: u64,
}

/// log2 of the first power of two above 2 * 10^2 (two significant digits).
const SUB_BITS: u32 = 8;
const HALF: u64 = 1 << (SUB_BITS - 1);

impl Buckets {
    fn new(high: u64) -> Buckets {
        Buckets {
            counts: crate::hint::zeroed_written(Self::index(high) + 1),
            total: 0,
        }
    }

    /// The bucket of `v` (1 <= v).
    #[inline]
    fn index(v: u64) -> usize {
        let bucket = (64 - SUB_BITS) - (v | ((1 << SUB_BITS) - 1)).leading_zeros();
        let sub = v >> bucket;
        (((bucket as u64 + 1) << (SUB_BITS - 1)) + sub - HALF) as usize
    }

    /// The lowest value of bucket `i`.
    fn lowest(i: usize) -> u64 {
        let i = i as u64;
        let bucket = (i >> (SUB_BITS - 1)) as i64 - 1;
        let sub = (i & (HALF - 1)) + HALF;
        if bucket < 0 {
            sub - HALF
        } else {
            sub << bucket
        }
    }

    #[inline]
    fn add(&mut self, v: u64, n: u64) {
        // Callers clamp to the `high` the buckets were made for.
        if let Some(c) = self.counts.get_mut(Self::index(v)) {
            *c += n;
            self.total += n;
        }
    }

    /// Adds `o`'s counts (made for the same `high`: a `Hist<HIGH>` makes both).
    fn merge(&mut self, o: &Buckets) {
        debug_assert_eq!(self.counts.len(), o.counts.len());
        for (mine, theirs) in self.counts.iter_mut().zip(&o.counts) {
            *mine += theirs;
        }
        self.total += o.total;
    }

    /// The same counts in an `hdrhistogram`, for its percentiles.
    fn histogram(&self) -> Histogram<u64> {
        let high = Self::lowest(self.counts.len() - 1).max(2);
        let mut h = Histogram::new_with_bounds(1, high, 2).expect("static histogram bounds");
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                let _ = h.record_n(Self::lowest(i).max(1), c);
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SIZE_HIGH;

    #[test]
    fn small_is_exact() {
        let mut h = Hist::<1000>::default();
        for v in [5, 1, 9, 3] {
            h.record(v);
        }
        let s = h.summary().unwrap();
        assert_eq!((s.count, s.min, s.p50, s.max), (4, 1, 3, 9));
    }

    #[test]
    fn merge_order_does_not_matter() {
        let vals: Vec<u64> = (1..=50).map(|i| i * 37 % 1500).collect();
        let mut one = Hist::<SIZE_HIGH>::default();
        vals.iter().for_each(|&v| one.record(v));
        let (mut a, mut b) = (Hist::<SIZE_HIGH>::default(), Hist::<SIZE_HIGH>::default());
        for (i, &v) in vals.iter().enumerate() {
            if i % 3 == 0 {
                a.record(v)
            } else {
                b.record(v)
            }
        }
        a.merge(&b);
        assert_eq!(one.summary(), a.summary());
        let mut c = Hist::<SIZE_HIGH>::default();
        c.merge(&a);
        assert_eq!(c.summary(), one.summary());
    }

    #[test]
    fn few_distinct_values_stay_exact_and_small() {
        let mut h = Hist::<SIZE_HIGH>::default();
        for i in 0..100_000u64 {
            h.record([60, 1514, 66][(i % 3) as usize]);
        }
        assert!(h.big.is_none());
        let s = h.summary().unwrap();
        assert_eq!(
            (s.count, s.min, s.p50, s.p99, s.max),
            (100_000, 60, 66, 1514, 1514)
        );
        // More distinct values than SPARSE move everything into buckets (once
        // they have left the front cache; the summary counts them before).
        for v in 0..(SPARSE + HOT) as u64 {
            h.record(100 + v);
        }
        assert!(h.big.is_some());
        assert_eq!(h.count(), 100_000 + (SPARSE + HOT) as u64);
    }

    #[test]
    fn a_summary_does_not_depend_on_what_the_front_cache_holds() {
        // SPARSE + 1 distinct values: the exact form no longer holds them all.
        for distinct in [3, SPARSE, SPARSE + 1, 200] {
            let vals: Vec<u64> = (0..5_000u64)
                .map(|i| 60 + (i * 7919 % distinct as u64) * 13)
                .collect();
            let mut forward = Hist::<SIZE_HIGH>::default();
            vals.iter().for_each(|&v| forward.record(v));
            let mut backward = Hist::<SIZE_HIGH>::default();
            vals.iter().rev().for_each(|&v| backward.record(v));
            // Stored without the cache: one merge of all pairs at once.
            let mut stored = Hist::<SIZE_HIGH>::default();
            let mut sorted = vals.clone();
            sorted.sort_unstable();
            for chunk in sorted.chunk_by(|a, b| a == b) {
                stored.min = stored.min.min(chunk[0]);
                stored.max = stored.max.max(chunk[0]);
                stored.store(chunk[0], chunk.len() as u64);
            }
            let want = stored.summary().unwrap();
            assert_eq!(forward.summary().unwrap(), want, "{distinct} values");
            assert_eq!(backward.summary().unwrap(), want, "{distinct} values");
            assert_eq!(forward.count(), 5_000);
            assert_eq!(stored.big.is_some(), distinct > SPARSE);
        }
    }

    #[test]
    fn buckets_are_the_crates_buckets() {
        let h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 2).unwrap();
        let mut v = 1u64;
        while v <= 60_000_000 {
            let i = Buckets::index(v);
            assert_eq!(Buckets::lowest(i), h.lowest_equivalent(v), "value {v}");
            assert!(Buckets::index(h.highest_equivalent(v)) == i, "value {v}");
            v += if v < 300_000 { 1 } else { v / 997 };
        }
    }

    #[test]
    fn big_form_summaries_match_hdrhistogram() {
        let mut ours = Hist::<SIZE_HIGH>::default();
        let mut theirs = Histogram::<u64>::new_with_bounds(1, SIZE_HIGH, 2).unwrap();
        let mut x = 12345u64;
        for _ in 0..50_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = 1 + (x >> 33) % SIZE_HIGH;
            ours.record(v);
            theirs.record(v).unwrap();
        }
        let s = ours.summary().unwrap();
        assert_eq!(s.count, theirs.len());
        for (q, got) in [(0.5, s.p50), (0.9, s.p90), (0.99, s.p99)] {
            let want = theirs.value_at_quantile(q).clamp(s.min, s.max);
            assert_eq!(got, want, "quantile {q}");
        }
        assert_eq!(s.mean, (theirs.mean() * 10.0).round() / 10.0);
    }

    #[test]
    fn values_are_clamped_not_dropped() {
        let mut h = Hist::<100>::default();
        h.record(0);
        h.record(1_000_000);
        let s = h.summary().unwrap();
        assert_eq!((s.min, s.max), (1, 100));
    }
}
