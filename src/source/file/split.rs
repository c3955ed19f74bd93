//! Splitting a legacy pcap file held in memory into byte ranges that begin
//! on record boundaries, so that several threads can each walk one.
//!
//! A legacy pcap file has no sync marker: a record is a 16-byte header
//! (seconds, fraction, captured length, original length) and its bytes, and
//! only the walk from the first record knows where each one starts. A range
//! that begins in the middle of the file therefore starts at a *guess*
//! ([`PcapLayout::guess_boundary`]): the first offset from which
//! [`CHAIN`] record headers in a row are plausible — lengths within the
//! file's snapshot length, a captured length no larger than the original
//! one, a fraction of a second below one second, each timestamp within a
//! day of the one before but once (captures joined end to end), the first
//! record not empty — or from which plausible records reach the end of the
//! data exactly.
//!
//! A guess can be wrong (a capture of a pcap file being copied holds record
//! headers in its payloads). It is never kept wrong: the walk of the range
//! before runs past its end to the first record at or after it, and must land
//! exactly on the next range's start; where it does not, the next range is
//! walked again from where it landed ([`walk_split`], which counts the
//! ranges redone). The records walked are then exactly the sequential walk's.
use super::walker::u32_at;
use crate::source::MAX_SNAPLEN;
use std::ops::Range;

/// Plausible record headers in a row that make a guessed boundary.
pub const CHAIN: usize = 8;

/// How far past a share's first byte a boundary is looked for: room for a
/// few records of the largest size.
pub const SEARCH: usize = 4 * (MAX_SNAPLEN as usize + 24);

/// Largest step between the timestamps of neighbouring records in a chain,
/// but for [`MAX_JUMPS`] of them: captures joined end to end (`mergecap -a`)
/// jump in time where one ends.
const MAX_GAP_S: u32 = 86_400;
const MAX_JUMPS: usize = 1;

/// How a legacy pcap file's records are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcapLayout {
    /// The first record's offset (after the file header).
    pub first: usize,
    /// 16 bytes, or 24 in the "modified" format.
    pub(super) header_len: usize,
    pub(super) big_endian: bool,
    /// The file header's snapshot length, where it is one a record can obey.
    snaplen: u32,
    /// The fraction of a second is below this (10^6 or 10^9).
    fraction_limit: u32,
}

/// Where a walk over a range stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// At the first record boundary at or after the range's end (the end of
    /// the data, for the last range).
    At(usize),
    /// At a record that is damaged or cut short: the sequential reader
    /// stops there too, with its error.
    Stopped(usize),
}

impl Landing {
    /// Where a walk stopped at a damaged or cut record, if it did.
    pub fn stopped(self) -> Option<usize> {
        match self {
            Landing::Stopped(at) => Some(at),
            Landing::At(_) => None,
        }
    }
}

impl PcapLayout {
    /// The layout of `data` when it is a legacy pcap file (either byte
    /// order, micro- or nanosecond, or the "modified" format); `None` for
    /// anything else.
    pub fn of(data: &[u8]) -> Option<PcapLayout> {
        let magic = data.get(..4)?;
        let magic = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
        let (big_endian, fraction_limit, header_len) = match magic {
            0xa1b2_c3d4 => (false, 1_000_000, 16),
            0xd4c3_b2a1 => (true, 1_000_000, 16),
            0xa1b2_3c4d => (false, 1_000_000_000, 16),
            0x4d3c_b2a1 => (true, 1_000_000_000, 16),
            // pcap-parser reads the modified format's records little-endian.
            0xa1b2_cd34 => (false, 1_000_000, 24),
            0x34cd_b2a1 => (false, 1_000_000, 24),
            _ => return None,
        };
        if data.len() < 24 {
            return None;
        }
        let snaplen = u32_at(data, 16, big_endian && header_len == 16);
        let snaplen = if snaplen == 0 || snaplen > MAX_SNAPLEN {
            MAX_SNAPLEN
        } else {
            snaplen
        };
        Some(PcapLayout {
            first: 24,
            header_len,
            big_endian: big_endian && header_len == 16,
            snaplen,
            fraction_limit,
        })
    }

    fn word(&self, data: &[u8], at: usize) -> u32 {
        u32_at(data, at, self.big_endian)
    }

    /// The offset after the record at `at`, as the sequential reader walks:
    /// `None` when the record is cut short or claims more than
    /// [`MAX_SNAPLEN`] captured bytes (where the reader stops with an error).
    #[inline]
    pub fn next_record(&self, data: &[u8], at: usize) -> Option<usize> {
        if data.len().saturating_sub(at) < self.header_len {
            return None;
        }
        let caplen = self.word(data, at + 8);
        if caplen > MAX_SNAPLEN {
            return None;
        }
        let end = at + self.header_len + caplen as usize;
        (end <= data.len()).then_some(end)
    }

    /// The offset after the record at `at` when its header is plausible
    /// (see the module's text), with its seconds.
    fn plausible(&self, data: &[u8], at: usize) -> Option<(usize, u32)> {
        if data.len().saturating_sub(at) < self.header_len {
            return None;
        }
        let (secs, frac) = (self.word(data, at), self.word(data, at + 4));
        let (caplen, origlen) = (self.word(data, at + 8), self.word(data, at + 12));
        if frac >= self.fraction_limit
            || caplen > self.snaplen
            || caplen > origlen
            || origlen == 0
            || origlen > MAX_SNAPLEN
        {
            return None;
        }
        let end = at + self.header_len + caplen as usize;
        (end <= data.len()).then_some((end, secs))
    }

    /// Whether a run of [`CHAIN`] plausible records starts at `at`, or a
    /// shorter one that ends exactly at the end of `data`.
    fn chain_at(&self, data: &[u8], at: usize) -> bool {
        let mut pos = at;
        let mut before: Option<u32> = None;
        let mut jumps = 0;
        for _ in 0..CHAIN {
            if pos == data.len() {
                return before.is_some();
            }
            let Some((next, secs)) = self.plausible(data, pos) else {
                return false;
            };
            if before.is_none() && next == pos + self.header_len {
                // A guess does not start with an empty record: 16 bytes of a
                // payload that look like one lead into the real chain.
                return false;
            }
            if before.is_some_and(|b| b.abs_diff(secs) > MAX_GAP_S) {
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return false;
                }
            }
            before = Some(secs);
            pos = next;
        }
        true
    }

    /// The first offset at or after `from` (and after the file header) that
    /// looks like a record boundary, within [`SEARCH`] bytes; `None` when none
    /// does (in an undamaged file a record starts every
    /// `MAX_SNAPLEN` + 24 bytes at most).
    pub fn guess_boundary(&self, data: &[u8], from: usize) -> Option<usize> {
        let from = from.max(self.first);
        let to = from.saturating_add(SEARCH).min(data.len());
        (from..to).find(|&at| self.chain_at(data, at))
    }

    /// Up to `n` ranges over the records of `data`: the first from the first
    /// record, each later one from a guessed boundary past an even share of
    /// the bytes; each ends where the next begins, the last at the end of
    /// the data. Shares where no boundary is guessed join the range before.
    pub fn plan(&self, data: &[u8], n: usize) -> Vec<Range<usize>> {
        let n = n.max(1);
        let body = data.len().saturating_sub(self.first);
        let mut starts = vec![self.first];
        for k in 1..n {
            let from = self.first + body / n * k;
            if from <= *starts.last().expect("one start") {
                continue;
            }
            if let Some(g) = self.guess_boundary(data, from) {
                if g > *starts.last().expect("one start") {
                    starts.push(g);
                }
            }
        }
        let mut ranges: Vec<Range<usize>> = starts.windows(2).map(|w| w[0]..w[1]).collect();
        ranges.push(*starts.last().expect("one start")..data.len().max(self.first));
        ranges
    }

    /// Walks the records from `start` (a true boundary) that begin before
    /// `end`, calling `each` with every record's offset; says where it
    /// stopped.
    pub fn walk(
        &self,
        data: &[u8],
        start: usize,
        end: usize,
        each: &mut impl FnMut(usize),
    ) -> Landing {
        let mut at = start;
        while at < end && at < data.len() {
            let Some(next) = self.next_record(data, at) else {
                return Landing::Stopped(at);
            };
            each(at);
            at = next;
        }
        Landing::At(at)
    }
}

/// What [`walk_split`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SplitWalk<T> {
    /// What each range's walk produced, in file order (ranges redone give
    /// what their second walk produced).
    pub parts: Vec<T>,
    /// Ranges whose guessed start was wrong and that were walked again.
    pub redone: usize,
    /// Where the walk stopped at a damaged or cut record, if it did.
    pub stopped: Option<usize>,
}

/// Walks `ranges` of `data` on one thread each: `walk_range(start, end)`
/// walks the records from `start` that begin before `end` and returns what
/// it made with where it landed. Then [`stitch`]es the walks.
pub fn walk_split<T: Send>(
    ranges: &[Range<usize>],
    walk_range: impl Fn(usize, usize) -> (T, Landing) + Sync,
) -> SplitWalk<T> {
    let first: Vec<(T, Landing)> = std::thread::scope(|s| {
        let handles: Vec<_> = ranges
            .iter()
            .map(|r| {
                let walk_range = &walk_range;
                let (start, end) = (r.start, r.end);
                s.spawn(move || walk_range(start, end))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a range walk panicked"))
            .collect()
    });
    stitch(ranges, first, walk_range)
}

/// Puts the walks of `ranges` (`first`, one per range, in order) together:
/// a range whose start is not where the range before landed is walked again
/// from there with `walk_range`; ranges after a stop are dropped. The records
/// walked are the sequential walk's, once each.
pub fn stitch<T>(
    ranges: &[Range<usize>],
    first: Vec<(T, Landing)>,
    walk_range: impl Fn(usize, usize) -> (T, Landing),
) -> SplitWalk<T> {
    let mut out = SplitWalk {
        parts: Vec::with_capacity(ranges.len()),
        redone: 0,
        stopped: None,
    };
    let mut landed: Option<usize> = None;
    for (r, (part, landing)) in ranges.iter().zip(first) {
        let (part, landing) = match landed {
            Some(at) if at != r.start => {
                out.redone += 1;
                walk_range(at, r.end.max(at))
            }
            _ => (part, landing),
        };
        out.parts.push(part);
        match landing {
            Landing::At(at) => landed = Some(at),
            Landing::Stopped(at) => {
                out.stopped = Some(at);
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::LinkType;
    use crate::source::PcapFormat;

    /// A pcap file of `n` records whose payloads are `payload(i)`.
    fn pcap(n: usize, payload: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&PcapFormat::CLASSIC.header(LinkType::ETHERNET, 65535));
        for i in 0..n {
            let p = payload(i);
            let ts = 1_700_000_000_000_000_000 + i as u64 * 1_000_000;
            PcapFormat::CLASSIC.record(&mut f, ts, &p, p.len() as u32);
        }
        f
    }

    fn sequential(l: &PcapLayout, data: &[u8]) -> (Vec<usize>, Landing) {
        let mut v = Vec::new();
        let landing = l.walk(data, l.first, data.len(), &mut |at| v.push(at));
        (v, landing)
    }

    /// Record offsets walked over `n` planned ranges, stitched, and how many
    /// ranges were redone.
    fn split(l: &PcapLayout, data: &[u8], ranges: &[Range<usize>]) -> (Vec<usize>, usize) {
        let w = walk_split(ranges, |start, end| {
            let mut v = Vec::new();
            let landing = l.walk(data, start, end, &mut |at| v.push(at));
            (v, landing)
        });
        (w.parts.concat(), w.redone)
    }

    #[test]
    fn plain_records_split_where_they_begin() {
        let data = pcap(1000, |i| vec![i as u8; 60 + i % 700]);
        let l = PcapLayout::of(&data).expect("pcap");
        let (all, _) = sequential(&l, &data);
        for n in 1..=8 {
            let ranges = l.plan(&data, n);
            assert_eq!(ranges.len(), n);
            for r in &ranges {
                assert!(all.contains(&r.start), "{n}: {r:?} is not a record");
            }
            assert_eq!(split(&l, &data, &ranges), (all.clone(), 0));
        }
    }

    #[test]
    fn a_wrong_guess_is_walked_again() {
        // Each payload is itself a run of pcap records (a capture of a pcap
        // file being copied): a guess inside it looks as good as a real one.
        let inner = pcap(40, |i| vec![0x55; 20 + i]);
        let data = pcap(50, |_| inner[24..].to_vec());
        let l = PcapLayout::of(&data).expect("pcap");
        let (all, _) = sequential(&l, &data);
        let ranges = l.plan(&data, 4);
        let wrong = ranges.iter().filter(|r| !all.contains(&r.start)).count();
        assert!(wrong > 0, "the test needs a guess inside a payload");
        let (walked, redone) = split(&l, &data, &ranges);
        assert_eq!(walked, all);
        assert_eq!(redone, wrong);
    }

    #[test]
    fn a_damaged_record_stops_the_split_walk_where_it_stops_the_sequential_one() {
        let mut data = pcap(200, |i| vec![7; 100 + i]);
        let l = PcapLayout::of(&data).expect("pcap");
        let (all, _) = sequential(&l, &data);
        // Record 120 claims 1 MiB.
        let at = all[120];
        data[at + 8..at + 12].copy_from_slice(&(1u32 << 20).to_le_bytes());
        let (before, stop) = sequential(&l, &data);
        assert_eq!(stop, Landing::Stopped(at));
        let ranges = l.plan(&data, 4);
        let w = walk_split(&ranges, |start, end| {
            let mut v = Vec::new();
            let landing = l.walk(&data, start, end, &mut |a| v.push(a));
            (v, landing)
        });
        assert_eq!(w.stopped, Some(at));
        assert_eq!(w.parts.concat(), before);
    }

    #[test]
    fn captures_joined_end_to_end_still_split_where_records_begin() {
        // Captures of 8 to 12 records, years apart, one after the other
        // (mergecap -a): a chain of 8 from any record crosses at most one
        // jump in time, so every guess is the first record at or after
        // where it looks.
        let mut data = pcap(0, |_| vec![]);
        for (n, capture) in (0..120).map(|c| (8 + c % 5, c)) {
            for i in 0..n {
                let p = vec![capture as u8; 60 + 7 * i];
                let ts = (1_000_000_000 + capture as u64 * 40_000_000) * 1_000_000_000 + i as u64;
                PcapFormat::CLASSIC.record(&mut data, ts, &p, p.len() as u32);
            }
        }
        let l = PcapLayout::of(&data).expect("pcap");
        let (all, _) = sequential(&l, &data);
        for from in (24..data.len()).step_by(97) {
            let first = all.iter().copied().find(|&r| r >= from);
            assert_eq!(l.guess_boundary(&data, from), first, "from {from}");
        }
    }

    #[test]
    fn an_empty_record_does_not_start_a_guess() {
        // 16 bytes of a payload that read as a record of no bytes, right
        // before a real record: the guess is the real one.
        let mut data = pcap(1, |_| {
            let mut p = vec![0x11; 200];
            let fake = [0x15, 1, 0, 0x0f, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0x72, 2, 0, 0];
            p[184..].copy_from_slice(&fake);
            p
        });
        let more = pcap(20, |i| vec![3; 80 + i]);
        data.extend_from_slice(&more[24..]);
        let l = PcapLayout::of(&data).expect("pcap");
        let (all, _) = sequential(&l, &data);
        assert_eq!(l.guess_boundary(&data, 24 + 16 + 150), Some(all[1]));
    }

    #[test]
    fn small_and_odd_files() {
        for data in [
            pcap(0, |_| vec![]),
            pcap(1, |_| vec![1; 10]),
            pcap(3, |_| vec![]),
        ] {
            let l = PcapLayout::of(&data).expect("pcap");
            let (all, _) = sequential(&l, &data);
            for n in 1..=4 {
                assert_eq!(split(&l, &data, &l.plan(&data, n)).0, all);
            }
        }
        assert_eq!(PcapLayout::of(b"\x0a\x0d\x0d\x0a...."), None);
        assert_eq!(
            PcapLayout::of(b"\xd4\xc3\xb2\xa1"),
            None,
            "no room for a header"
        );
    }
}
