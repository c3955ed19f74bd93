//! A histogram that stays small until it needs to be big.
//!
//! A port scan touches thousands of ports once each; a full `hdrhistogram`
//! per port would cost tens of KiB for one sample. Up to [`INLINE`] samples are
//! kept exactly inline; past that they move into an `hdrhistogram` with two
//! significant digits (values within 1%). The state depends only on the
//! multiset of samples, so merging per-worker histograms gives the same result
//! for any number of workers.
use hdrhistogram::Histogram;
use serde::Serialize;

pub const INLINE: usize = 8;

#[derive(Clone, Debug)]
pub struct Hist<const HIGH: u64> {
    small: [u64; INLINE],
    n: u8,
    big: Option<Box<Histogram<u64>>>,
    /// Exact extremes (the histogram rounds to its buckets).
    min: u64,
    max: u64,
}

impl<const HIGH: u64> Default for Hist<HIGH> {
    fn default() -> Self {
        Hist {
            small: [0; INLINE],
            n: 0,
            big: None,
            min: u64::MAX,
            max: 0,
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
    #[inline]
    pub fn record(&mut self, v: u64) {
        let v = v.clamp(1, HIGH);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if let Some(h) = self.big.as_deref_mut() {
            h.saturating_record(v);
        } else if (self.n as usize) < INLINE {
            self.small[self.n as usize] = v;
            self.n += 1;
        } else {
            let h = self.upgrade();
            h.saturating_record(v);
        }
    }

    fn upgrade(&mut self) -> &mut Histogram<u64> {
        if self.big.is_none() {
            let mut h = Histogram::new_with_bounds(1, HIGH, 2).expect("static histogram bounds");
            for &v in &self.small[..self.n as usize] {
                h.saturating_record(v);
            }
            self.n = 0;
            self.big = Some(Box::new(h));
        }
        self.big.as_deref_mut().expect("just set")
    }

    pub fn count(&self) -> u64 {
        match &self.big {
            Some(h) => h.len(),
            None => self.n as u64,
        }
    }

    pub fn merge(&mut self, other: &Hist<HIGH>) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        match &other.big {
            Some(oh) => {
                let h = self.upgrade();
                h.add(oh.as_ref()).expect("same bounds");
            }
            None => {
                for &v in &other.small[..other.n as usize] {
                    self.record(v);
                }
            }
        }
    }

    pub fn summary(&self) -> Option<Summary> {
        match &self.big {
            Some(h) => Some(Summary {
                count: h.len(),
                min: self.min,
                p50: h.value_at_quantile(0.50).clamp(self.min, self.max),
                p90: h.value_at_quantile(0.90).clamp(self.min, self.max),
                p99: h.value_at_quantile(0.99).clamp(self.min, self.max),
                max: self.max,
                mean: (h.mean() * 10.0).round() / 10.0,
            }),
            None if self.n == 0 => None,
            None => {
                let mut s = self.small;
                let s = &mut s[..self.n as usize];
                s.sort_unstable();
                let n = s.len();
                let rank = |q: f64| s[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
                let mean = s.iter().sum::<u64>() as f64 / n as f64;
                Some(Summary {
                    count: n as u64,
                    min: s[0],
                    p50: rank(0.50),
                    p90: rank(0.90),
                    p99: rank(0.99),
                    max: s[n - 1],
                    mean: (mean * 10.0).round() / 10.0,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut one = Hist::<262_144>::default();
        vals.iter().for_each(|&v| one.record(v));
        let (mut a, mut b) = (Hist::<262_144>::default(), Hist::<262_144>::default());
        for (i, &v) in vals.iter().enumerate() {
            if i % 3 == 0 {
                a.record(v)
            } else {
                b.record(v)
            }
        }
        a.merge(&b);
        assert_eq!(one.summary(), a.summary());
        let mut c = Hist::<262_144>::default();
        c.merge(&a);
        assert_eq!(c.summary(), one.summary());
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
