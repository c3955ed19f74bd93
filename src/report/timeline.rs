//! The report's time line (`timeline`, docs/SCHEMA.md): packets and bytes
//! per bucket from the first packet's bucket to the last one's, the whole
//! capture's and the busiest ports', the rest as "other" so that each
//! bucket's series add up to its totals, and the findings placed on it.
use super::time::rfc3339;
use crate::detect::Finding;
use crate::pipeline::Analysis;
use crate::stats::timeline::{width, Entries};
use crate::stats::{Count, PortKey};
use serde::Serialize;

/// Ports with series of their own (by bytes); the rest are "other".
pub const TOP_SERIES: usize = 8;

#[derive(Debug, Clone, Serialize)]
pub struct TimelineReport {
    /// The buckets' width in seconds (a step of a fixed ladder, 1 ms to 8,192
    /// days, the finest at which the capture fits 360 buckets, or `--bucket`).
    pub bucket_s: f64,
    /// What each bucket's `series` holds, in order: `tcp/443`-style ports,
    /// the busiest by bytes, then `other` (everything else, non-port
    /// traffic included).
    pub series: Vec<String>,
    pub buckets: Vec<BucketRow>,
    /// Each finding (its index in `findings[]`) at the bucket of its first packet.
    pub findings: Vec<FindingMark>,
    /// The first bucket's start, in nanoseconds since the epoch.
    #[serde(skip)]
    pub origin_ns: u64,
    /// The buckets' width in nanoseconds (`bucket_s`).
    #[serde(skip)]
    pub width_ns: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketRow {
    pub start: String,
    pub packets: u64,
    pub bytes: u64,
    /// `{packets, bytes}` per series, in `series` order; they add up to the bucket's.
    pub series: Vec<Count>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingMark {
    pub finding: usize,
    pub kind: &'static str,
    pub severity: &'static str,
    pub bucket: usize,
}

impl TimelineReport {
    /// The time line of an analysis (none without packets).
    pub fn new(a: &Analysis) -> Option<TimelineReport> {
        let total = a.totals.timeline.list();
        let (first, last) = total.span()?;
        let w = width(a.totals.timeline_level);
        let mut top: Vec<(PortKey, u64, &Entries)> = a
            .ports
            .iter()
            .filter(|(_, p)| p.packets() > 0)
            .map(|(k, p)| (k, p.bytes(), &p.timeline))
            .collect();
        top.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        top.truncate(TOP_SERIES);
        let n = (last - first + 1) as usize;
        let mut buckets: Vec<BucketRow> = (0..n)
            .map(|i| BucketRow {
                start: rfc3339((first + i as u64).saturating_mul(w)),
                packets: 0,
                bytes: 0,
                series: vec![Count::default(); top.len() + 1],
            })
            .collect();
        for (idx, c) in total.entries() {
            let b = &mut buckets[(idx - first) as usize];
            (b.packets, b.bytes) = (c.packets, c.bytes);
            b.series[top.len()] = *c;
        }
        for (s, (_, _, series)) in top.iter().enumerate() {
            for (idx, c) in series.entries() {
                let b = &mut buckets[(idx - first) as usize];
                b.series[s] = *c;
                let other = &mut b.series[top.len()];
                other.packets -= c.packets;
                other.bytes -= c.bytes;
            }
        }
        let mut series: Vec<String> = top
            .iter()
            .map(|(k, _, _)| format!("{}/{}", k.transport.as_str(), k.port))
            .collect();
        series.push("other".into());
        Some(TimelineReport {
            bucket_s: w as f64 / 1e9,
            series,
            buckets,
            findings: Vec::new(),
            origin_ns: first.saturating_mul(w),
            width_ns: w,
        })
    }

    /// Places `found` (the report's findings, in their order) on the buckets.
    pub fn place(&mut self, found: &[Finding]) {
        let (first_bucket_ns, w) = (self.origin_ns, self.width_ns);
        let last = self.buckets.len().saturating_sub(1);
        self.findings = found
            .iter()
            .enumerate()
            .map(|(i, f)| FindingMark {
                finding: i,
                kind: f.kind.name(),
                severity: f.severity.as_str(),
                bucket: ((f.first_ns.saturating_sub(first_bucket_ns)) / w.max(1)).min(last as u64)
                    as usize,
            })
            .collect();
    }

    /// The bucket width as people write it: `10ms`, `2s`, `5m`, `6h`, `2d`.
    pub fn width_text(&self) -> String {
        let ms = self.width_ns / 1_000_000;
        match ms {
            m if m < 1000 => format!("{m}ms"),
            m if m < 60_000 => format!("{}s", m / 1000),
            m if m < 3_600_000 => format!("{}m", m / 60_000),
            m if m < 86_400_000 => format!("{}h", m / 3_600_000),
            m => format!("{}d", m / 86_400_000),
        }
    }

    /// Packets per bucket as a line of block characters, at most `cells`
    /// wide (neighbouring buckets summed when there are more).
    pub fn sparkline(&self, cells: usize) -> String {
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let per = self.buckets.len().div_ceil(cells.max(1)).max(1);
        let sums: Vec<u64> = self
            .buckets
            .chunks(per)
            .map(|c| c.iter().map(|b| b.packets).sum())
            .collect();
        let top = sums.iter().copied().max().unwrap_or(0).max(1);
        sums.iter()
            .map(|&v| {
                if v == 0 {
                    ' '
                } else {
                    BARS[((v * 7).div_ceil(top) as usize).min(7)]
                }
            })
            .collect()
    }
}
