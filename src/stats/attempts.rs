//! Connection attempts that failed or got no answer, and NULL/FIN/Xmas
//! probes: what the scan findings are made of.
//!
//! A worker records an [`Attempt`] for every flow that ends without an answer
//! (TCP `S0`, `REJ`, `RSTOS0`, `SH`; UDP/SCTP/DCCP with no reply) and for every
//! flow opened by a NULL, FIN or Xmas packet. The list is bounded: when full,
//! the attempts of light sources make room (a SYN flood's spoofed sources try
//! once each), so a scanner hidden in a flood keeps its attempts.
use crate::decode::{tcp_flags as F, Addr};
use crate::services::Transport;
use rustc_hash::FxHashMap;

/// Attempts kept per worker (48 bytes each, 12 MiB per worker at most). When
/// the list is full, the attempts of light sources are dropped to make room
/// ([`Attempts::push`]); what is dropped or refused is counted.
pub const ATTEMPTS_CAP: usize = 262_144;

/// Sources with fewer attempts than this may be dropped from a full list:
/// below Zeek's thresholds (15 ports, 25 hosts), so no default finding is lost.
const LIGHT: usize = 8;

pub const NULL_PROBE: u8 = 1;
pub const FIN_PROBE: u8 = 2;
pub const XMAS_PROBE: u8 = 3;

/// The probe kind of a flow's first TCP packet, if it is a NULL, FIN or Xmas probe.
pub fn odd_probe(flags: u8) -> Option<u8> {
    match flags & (F::FIN | F::SYN | F::RST | F::PSH | F::ACK | F::URG) {
        0 => Some(NULL_PROBE),
        f if f == F::FIN => Some(FIN_PROBE),
        f if f == F::FIN | F::PSH | F::URG => Some(XMAS_PROBE),
        _ => None,
    }
}

/// One failed or unanswered attempt, or an odd-flag probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attempt {
    pub src: Addr,
    pub dst: Addr,
    pub ts: u64,
    pub port: u16,
    pub transport: Transport,
    /// 0, or NULL_PROBE / FIN_PROBE / XMAS_PROBE.
    pub odd: u8,
    /// Refused with a RST (rather than unanswered).
    pub refused: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Attempts {
    pub list: Vec<Attempt>,
    cap: usize,
    /// Attempts not kept: dropped to make room, or refused while the list was full.
    pub overflow: u64,
    /// No compaction before `overflow` reaches this (one that freed little
    /// is not repeated for every attempt).
    quiet_until: u64,
}

impl Attempts {
    pub fn with_cap(cap: usize) -> Attempts {
        Attempts {
            list: Vec::new(),
            cap,
            overflow: 0,
            quiet_until: 0,
        }
    }

    /// Keeps `a`. When the list is full it first drops the attempts of the
    /// lightest sources among the older seven eighths (a SYN flood's spoofed
    /// sources try once each), so a scanner hidden in a flood keeps its
    /// attempts; NULL/FIN/Xmas probes and the newest eighth are never dropped.
    pub fn push(&mut self, a: Attempt) {
        if self.list.len() >= self.cap && self.overflow >= self.quiet_until {
            self.compact();
        }
        if self.list.len() < self.cap {
            self.list.push(a);
        } else {
            self.overflow += 1;
        }
    }

    fn compact(&mut self) {
        let quarter = (self.cap / 4).max(1);
        let old = self.list.len() - self.list.len() / 8;
        // Each attempt's source as a dense number and the attempts per source,
        // with one hash look-up per attempt (a flood compacts every quarter of
        // the cap; looking each source up again per pass was most of its cost).
        let mut numbers: FxHashMap<Addr, u32> =
            FxHashMap::with_capacity_and_hasher(self.list.len(), Default::default());
        let mut per_src: Vec<u32> = Vec::new();
        let src_of: Vec<u32> = self
            .list
            .iter()
            .map(|a| {
                let next = per_src.len() as u32;
                let n = *numbers.entry(a.src).or_insert(next);
                if n == next {
                    per_src.push(0);
                }
                per_src[n as usize] += 1;
                n
            })
            .collect();
        drop(numbers);
        let attempts_of_src = |i: usize| per_src[src_of[i] as usize] as usize;
        // Droppable attempts by their source's attempt count (below LIGHT).
        let mut by_count = [0usize; LIGHT];
        for (i, a) in self.list[..old].iter().enumerate() {
            let c = attempts_of_src(i);
            if a.odd == 0 && c < LIGHT {
                by_count[c] += 1;
            }
        }
        // The smallest threshold that frees a quarter of the list, at most LIGHT.
        let mut t = 2;
        while t < LIGHT && by_count[..t].iter().sum::<usize>() < quarter {
            t += 1;
        }
        let before = self.list.len();
        let mut i = 0;
        self.list.retain(|a| {
            let keep = i >= old || a.odd != 0 || attempts_of_src(i) >= t;
            i += 1;
            keep
        });
        let dropped = before - self.list.len();
        self.overflow += dropped as u64;
        if dropped < quarter {
            self.quiet_until = self.overflow + quarter as u64;
        }
    }

    pub fn merge(&mut self, o: &mut Attempts) {
        self.list.append(&mut o.list);
        self.overflow += o.overflow;
    }
}

/// A refused TCP attempt from 10.0.0.`src` to 10.0.1.`dst`, `port`, at
/// `s` seconds (for tests, here and in `detect`).
#[cfg(test)]
pub(crate) fn refused_tcp(src: u8, dst: u8, port: u16, s: u64) -> Attempt {
    use crate::decode::v4_mapped;
    Attempt {
        src: v4_mapped(&[10, 0, 0, src]),
        dst: v4_mapped(&[10, 0, 1, dst]),
        ts: s * 1_000_000_000,
        port,
        transport: Transport::Tcp,
        odd: 0,
        refused: true,
    }
}

#[cfg(test)]
mod tests {
    use super::refused_tcp as at;
    use super::*;

    #[test]
    fn attempts_past_the_cap_are_counted() {
        // One heavy source: nothing is light enough to drop, so the rest is refused.
        let mut a = Attempts::with_cap(16);
        for p in 0..40 {
            a.push(at(1, 1, p, 0));
        }
        assert_eq!((a.list.len(), a.overflow), (16, 24));
        let mut b = Attempts::with_cap(1);
        b.push(at(2, 2, 1, 0));
        b.push(at(2, 2, 2, 0));
        a.merge(&mut b);
        assert_eq!((a.list.len(), a.overflow), (17, 25));
    }

    #[test]
    fn odd_probes_are_named_by_their_flags() {
        assert_eq!(odd_probe(0), Some(NULL_PROBE));
        assert_eq!(odd_probe(F::FIN), Some(FIN_PROBE));
        assert_eq!(odd_probe(F::FIN | F::PSH | F::URG), Some(XMAS_PROBE));
        assert_eq!(odd_probe(F::FIN | F::ACK), None);
    }
}
