//! Scans: failed or unanswered connection attempts from one source, and
//! NULL/FIN/Xmas probes.
//!
//! Workers record an [`Attempt`] for every flow that ends without an answer
//! and for every flow opened by a NULL, FIN or Xmas packet
//! ([`crate::stats::attempts`]). After the merge:
//! - `port-scan`: one source, one target host, at least `ports` distinct ports
//!   within `window` (defaults from Zeek's scan policy: 15 ports in 5 minutes);
//! - `host-sweep`: one source, one port, at least `hosts` distinct hosts within
//!   `window` (Zeek: 25 hosts in 5 minutes);
//! - `odd-flags`: any NULL/FIN/Xmas probes from a source.
//!
//! Only attempts that failed count, so a busy server answering many clients is
//! never a scan, and neither is a client talking to many open services.
use super::{Evidence, Finding, Kind, Severity, Thresholds};
use crate::decode::Addr;
use crate::services::Transport;
use crate::stats::attempts::{Attempt, FIN_PROBE, NULL_PROBE, XMAS_PROBE};
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;

/// Most distinct values of `key` among items within `window` of each other
/// (items sorted by time); returns (distinct, first ts, last ts) of that window.
fn densest<T>(
    items: &[T],
    ts: impl Fn(&T) -> u64,
    key: impl Fn(&T) -> [u8; 18],
    window: u64,
) -> (usize, u64, u64) {
    let mut counts: FxHashMap<[u8; 18], u32> = FxHashMap::default();
    let (mut lo, mut best) = (0, (0, 0, 0));
    for hi in 0..items.len() {
        *counts.entry(key(&items[hi])).or_default() += 1;
        while ts(&items[hi]) - ts(&items[lo]) > window {
            let k = key(&items[lo]);
            let c = counts.get_mut(&k).expect("counted");
            *c -= 1;
            if *c == 0 {
                counts.remove(&k);
            }
            lo += 1;
        }
        if counts.len() > best.0 {
            best = (counts.len(), ts(&items[lo]), ts(&items[hi]));
        }
    }
    best
}

fn port_key(a: &Attempt) -> [u8; 18] {
    let mut k = [0u8; 18];
    k[..2].copy_from_slice(&a.port.to_be_bytes());
    k
}

fn host_key(a: &Attempt) -> [u8; 18] {
    let mut k = [0u8; 18];
    k[..16].copy_from_slice(&a.dst);
    k
}

/// How many distinct values `values` holds.
fn distinct<T: Ord>(values: impl Iterator<Item = T>) -> u64 {
    values.collect::<std::collections::BTreeSet<T>>().len() as u64
}

/// A finding about what source `src` tried, between `first_ns` and `last_ns`.
fn by_source(kind: Kind, severity: Severity, src: Addr, first_ns: u64, last_ns: u64) -> Finding {
    Finding {
        kind,
        severity,
        transport: Transport::Tcp,
        port: None,
        host: None,
        src: Some(src),
        detected: None,
        evidence: Evidence::default(),
        clients: Vec::new(),
        first_ns,
        last_ns,
    }
}

/// Port scans, host sweeps and odd-flag probes among `attempts`.
pub fn scans(attempts: &mut [Attempt], th: Thresholds) -> Vec<Finding> {
    let mut out = port_scans(attempts, th);
    out.extend(host_sweeps(attempts, th));
    out.extend(odd_flags(attempts));
    out
}

/// Vertical scans: per (source, target, transport), by time.
fn port_scans(attempts: &mut [Attempt], th: Thresholds) -> Vec<Finding> {
    let window = th.window.as_nanos().min(u64::MAX as u128) as u64;
    attempts.sort_unstable_by(|a, b| {
        (a.src, a.dst, a.transport, a.ts, a.port).cmp(&(b.src, b.dst, b.transport, b.ts, b.port))
    });
    let mut out = Vec::new();
    for g in attempts.chunk_by(|a, b| (a.src, a.dst, a.transport) == (b.src, b.dst, b.transport)) {
        let (most, first, last) = densest(g, |a| a.ts, port_key, window);
        if most < th.ports {
            continue;
        }
        let kind = Kind::PortScan {
            distinct: most as u64,
            window: th.window,
            refused: g.iter().filter(|a| a.refused).count() as u64,
        };
        let severity = if most >= 100 {
            Severity::High
        } else {
            Severity::Medium
        };
        out.push(Finding {
            transport: g[0].transport,
            host: Some(g[0].dst),
            evidence: Evidence {
                attempts: Some(g.len() as u64),
                ports: Some(distinct(g.iter().map(|a| a.port))),
                ..Evidence::default()
            },
            ..by_source(kind, severity, g[0].src, first, last)
        });
    }
    out
}

/// Horizontal scans: per (source, transport, port), by time.
fn host_sweeps(attempts: &mut [Attempt], th: Thresholds) -> Vec<Finding> {
    let window = th.window.as_nanos().min(u64::MAX as u128) as u64;
    attempts.sort_unstable_by(|a, b| {
        (a.src, a.transport, a.port, a.ts, a.dst).cmp(&(b.src, b.transport, b.port, b.ts, b.dst))
    });
    let mut out = Vec::new();
    for g in attempts.chunk_by(|a, b| (a.src, a.transport, a.port) == (b.src, b.transport, b.port))
    {
        let (most, first, last) = densest(g, |a| a.ts, host_key, window);
        if most < th.hosts {
            continue;
        }
        let kind = Kind::HostSweep {
            distinct: most as u64,
            window: th.window,
        };
        let severity = if most >= 250 {
            Severity::High
        } else {
            Severity::Medium
        };
        out.push(Finding {
            transport: g[0].transport,
            port: Some(g[0].port),
            evidence: Evidence {
                attempts: Some(g.len() as u64),
                hosts: Some(distinct(g.iter().map(|a| a.dst))),
                ..Evidence::default()
            },
            ..by_source(kind, severity, g[0].src, first, last)
        });
    }
    out
}

/// NULL, FIN and Xmas probes: per source.
fn odd_flags(attempts: &mut [Attempt]) -> Vec<Finding> {
    attempts.sort_unstable_by_key(|a| (a.src, a.ts, a.dst, a.port));
    let mut out = Vec::new();
    for g in attempts.chunk_by(|a, b| a.src == b.src) {
        let odd: Vec<&Attempt> = g.iter().filter(|a| a.odd != 0).collect();
        let (Some(first), Some(last)) = (odd.first(), odd.last()) else {
            continue;
        };
        let n = |k: u8| odd.iter().filter(|a| a.odd == k).count() as u64;
        let hosts: BTreeSet<Addr> = odd.iter().map(|a| a.dst).collect();
        let ports: BTreeSet<u16> = odd.iter().map(|a| a.port).collect();
        let kind = Kind::OddFlags {
            null: n(NULL_PROBE),
            fin: n(FIN_PROBE),
            xmas: n(XMAS_PROBE),
        };
        out.push(Finding {
            port: (ports.len() == 1).then(|| ports.first().copied()).flatten(),
            host: (hosts.len() == 1).then(|| hosts.first().copied()).flatten(),
            evidence: Evidence {
                attempts: Some(odd.len() as u64),
                ports: Some(ports.len() as u64),
                hosts: Some(hosts.len() as u64),
                ..Evidence::default()
            },
            ..by_source(kind, Severity::Medium, g[0].src, first.ts, last.ts)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;
    use crate::stats::attempts::{refused_tcp as at, Attempts, NULL_PROBE, XMAS_PROBE};
    use std::time::Duration;

    #[test]
    fn vertical_scan_at_the_threshold_not_below() {
        let mut a: Vec<Attempt> = (0..15).map(|p| at(1, 1, 1000 + p, p as u64)).collect();
        assert_eq!(
            scans(&mut a, Thresholds::default())
                .iter()
                .filter(|f| f.kind.name() == "port-scan")
                .count(),
            1
        );
        let mut b: Vec<Attempt> = (0..14).map(|p| at(1, 1, 1000 + p, p as u64)).collect();
        assert!(scans(&mut b, Thresholds::default()).is_empty());
    }

    #[test]
    fn slow_scan_outside_the_window_is_not_flagged() {
        // 20 ports, one every 30 s: at most 11 in any 5-minute window.
        let mut a: Vec<Attempt> = (0..20).map(|p| at(1, 1, 2000 + p, 30 * p as u64)).collect();
        assert!(scans(&mut a, Thresholds::default()).is_empty());
        let th = Thresholds {
            window: Duration::from_secs(3600),
            ..Thresholds::default()
        };
        assert_eq!(scans(&mut a, th).len(), 1);
    }

    #[test]
    fn host_sweep_counts_distinct_hosts_on_one_port() {
        let mut a: Vec<Attempt> = (0..30).map(|h| at(7, h, 445, h as u64)).collect();
        let f = scans(&mut a, Thresholds::default());
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].kind.name(), f[0].port, f[0].evidence.hosts),
            ("host-sweep", Some(445), Some(30))
        );
        assert_eq!(f[0].src, Some(v4_mapped(&[10, 0, 0, 7])));
    }

    #[test]
    fn repeated_attempts_to_one_port_are_not_a_scan() {
        let mut a: Vec<Attempt> = (0..500).map(|i| at(1, 1, 80, i)).collect();
        assert!(scans(&mut a, Thresholds::default()).is_empty());
    }

    #[test]
    fn a_scan_inside_a_flood_keeps_its_attempts() {
        // 200,000 one-off sources (a spoofed SYN flood) with one scanner trying
        // a new port every 1,000 attempts, into a list of 10,000.
        let mut a = Attempts::with_cap(10_000);
        let mut scanner_ports = 0;
        for i in 0..200_000u32 {
            let src = 1_000_000 + i;
            let addr = crate::decode::v4_mapped(&src.to_be_bytes());
            // 1 ms apart: the scanner's 200 ports fall within 200 s.
            let ts = i as u64 * 1_000_000;
            a.push(Attempt {
                src: addr,
                ts,
                ..at(1, 1, 80, 0)
            });
            if i % 1_000 == 0 {
                a.push(Attempt {
                    ts,
                    ..at(9, 1, scanner_ports, 0)
                });
                scanner_ports += 1;
            }
        }
        assert!(a.list.len() <= 10_000);
        assert_eq!(a.list.len() as u64 + a.overflow, 200_000 + 200);
        let kept = a
            .list
            .iter()
            .filter(|x| x.src == at(9, 1, 0, 0).src)
            .count();
        assert_eq!(kept, 200, "every scanner attempt kept");
        let f = scans(&mut a.list, Thresholds::default());
        let scans: Vec<_> = f.iter().filter(|f| f.kind.name() == "port-scan").collect();
        assert_eq!(scans.len(), 1, "{f:?}");
        assert_eq!(scans[0].src, Some(v4_mapped(&[10, 0, 0, 9])));
    }

    #[test]
    fn odd_probes_are_their_own_finding() {
        let mut a = vec![
            Attempt {
                odd: XMAS_PROBE,
                ..at(3, 1, 22, 1)
            },
            Attempt {
                odd: NULL_PROBE,
                ..at(3, 1, 23, 2)
            },
        ];
        let f = scans(&mut a, Thresholds::default());
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].kind,
            Kind::OddFlags {
                null: 1,
                fin: 0,
                xmas: 1
            }
        );
        assert_eq!(f[0].host, Some(v4_mapped(&[10, 0, 1, 1])));
    }
}
