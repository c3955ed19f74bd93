//! Scans: failed or unanswered connection attempts from one source, and
//! NULL/FIN/Xmas probes.
//!
//! Workers record an [`Attempt`] for every flow that ends without an answer
//! (TCP `S0`, `REJ`, `RSTOS0`, `SH`; UDP/SCTP/DCCP with no reply) and for every
//! flow opened by a NULL, FIN or Xmas packet. After the merge:
//! - `port-scan`: one source, one target host, at least `ports` distinct ports
//!   within `window` (defaults from Zeek's scan policy: 15 ports in 5 minutes);
//! - `host-sweep`: one source, one port, at least `hosts` distinct hosts within
//!   `window` (Zeek: 25 hosts in 5 minutes);
//! - `odd-flags`: any NULL/FIN/Xmas probes from a source.
//!
//! Only attempts that failed count, so a busy server answering many clients is
//! never a scan, and neither is a client talking to many open services.
use super::{Evidence, Finding, Severity};
use crate::decode::{ip_text, to_ip};
use crate::report::time::rfc3339;
use crate::services::Transport;
use crate::stats::attempts::{Attempt, FIN_PROBE, NULL_PROBE, XMAS_PROBE};
use rustc_hash::FxHashMap;
use std::time::Duration;

/// Scan thresholds (`--scan-ports`, `--sweep-hosts`, `--scan-window`).
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub ports: usize,
    pub hosts: usize,
    pub window: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            ports: 15,
            hosts: 25,
            window: Duration::from_secs(300),
        }
    }
}

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

/// Port scans, host sweeps and odd-flag probes among `attempts`.
pub fn scans(attempts: &mut [Attempt], th: Thresholds) -> Vec<Finding> {
    let window = th.window.as_nanos().min(u64::MAX as u128) as u64;
    let mut out = Vec::new();
    // Vertical: per (source, target, transport), by time.
    attempts.sort_unstable_by(|a, b| {
        (a.src, a.dst, a.transport, a.ts, a.port).cmp(&(b.src, b.dst, b.transport, b.ts, b.port))
    });
    for g in attempts.chunk_by(|a, b| (a.src, a.dst, a.transport) == (b.src, b.dst, b.transport)) {
        let (distinct, first, last) = densest(g, |a| a.ts, port_key, window);
        if distinct >= th.ports {
            let refused = g.iter().filter(|a| a.refused).count();
            let all_ports = g
                .iter()
                .map(|a| a.port)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            out.push(Finding {
                kind: "port-scan",
                severity: if distinct >= 100 { Severity::High } else { Severity::Medium },
                proto: g[0].transport,
                port: None,
                host: Some(ip_text(&g[0].dst)),
                src: Some(ip_text(&g[0].src)),
                service: None,
            detected: None,
                detail: format!(
                    "{} tried {} distinct {} ports on {} within {}s ({} ports in all; {} attempts, {} refused, {} unanswered)",
                    to_ip(&g[0].src),
                    distinct,
                    g[0].transport,
                    to_ip(&g[0].dst),
                    th.window.as_secs(),
                    all_ports,
                    g.len(),
                    refused,
                    g.len() - refused
                ),
                evidence: Evidence { attempts: Some(g.len() as u64), ports: Some(all_ports as u64), ..Evidence::default() },
                clients: Vec::new(),
                first_seen: rfc3339(first),
                last_seen: rfc3339(last),
            });
        }
    }
    // Horizontal: per (source, transport, port), by time.
    attempts.sort_unstable_by(|a, b| {
        (a.src, a.transport, a.port, a.ts, a.dst).cmp(&(b.src, b.transport, b.port, b.ts, b.dst))
    });
    for g in attempts.chunk_by(|a, b| (a.src, a.transport, a.port) == (b.src, b.transport, b.port))
    {
        let (distinct, first, last) = densest(g, |a| a.ts, host_key, window);
        if distinct >= th.hosts {
            let all_hosts = g
                .iter()
                .map(|a| a.dst)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            out.push(Finding {
                kind: "host-sweep",
                severity: if distinct >= 250 { Severity::High } else { Severity::Medium },
                proto: g[0].transport,
                port: Some(g[0].port),
                host: None,
                src: Some(ip_text(&g[0].src)),
                service: None,
            detected: None,
                detail: format!(
                    "{} tried {}/{} on {} distinct hosts within {}s ({} hosts in all, {} attempts failed or unanswered)",
                    to_ip(&g[0].src),
                    g[0].transport,
                    g[0].port,
                    distinct,
                    th.window.as_secs(),
                    all_hosts,
                    g.len()
                ),
                evidence: Evidence { attempts: Some(g.len() as u64), hosts: Some(all_hosts as u64), ..Evidence::default() },
                clients: Vec::new(),
                first_seen: rfc3339(first),
                last_seen: rfc3339(last),
            });
        }
    }
    // Odd flags: per source.
    attempts.sort_unstable_by_key(|a| (a.src, a.ts, a.dst, a.port));
    for g in attempts.chunk_by(|a, b| a.src == b.src) {
        let odd: Vec<&Attempt> = g.iter().filter(|a| a.odd != 0).collect();
        if odd.is_empty() {
            continue;
        }
        let n = |k: u8| odd.iter().filter(|a| a.odd == k).count();
        let hosts = odd
            .iter()
            .map(|a| a.dst)
            .collect::<std::collections::BTreeSet<_>>();
        let ports = odd
            .iter()
            .map(|a| a.port)
            .collect::<std::collections::BTreeSet<_>>();
        out.push(Finding {
            kind: "odd-flags",
            severity: Severity::Medium,
            proto: Transport::Tcp,
            port: (ports.len() == 1).then(|| *ports.first().expect("one")),
            host: (hosts.len() == 1).then(|| ip_text(hosts.first().expect("one"))),
            src: Some(ip_text(&g[0].src)),
            service: None,
            detected: None,
            detail: format!(
                "{} sent {} NULL, {} FIN and {} Xmas probes (TCP packets no normal stack opens with) to {} port(s) on {} host(s)",
                to_ip(&g[0].src),
                n(NULL_PROBE),
                n(FIN_PROBE),
                n(XMAS_PROBE),
                ports.len(),
                hosts.len()
            ),
            evidence: Evidence {
                attempts: Some(odd.len() as u64),
                ports: Some(ports.len() as u64),
                hosts: Some(hosts.len() as u64),
                ..Evidence::default()
            },
            clients: Vec::new(),
            first_seen: rfc3339(odd[0].ts),
            last_seen: rfc3339(odd[odd.len() - 1].ts),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;
    use crate::stats::attempts::Attempts;

    fn at(src: u8, dst: u8, port: u16, s: u64) -> Attempt {
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

    #[test]
    fn vertical_scan_at_the_threshold_not_below() {
        let mut a: Vec<Attempt> = (0..15).map(|p| at(1, 1, 1000 + p, p as u64)).collect();
        assert_eq!(
            scans(&mut a, Thresholds::default())
                .iter()
                .filter(|f| f.kind == "port-scan")
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
            (f[0].kind, f[0].port, f[0].evidence.hosts),
            ("host-sweep", Some(445), Some(30))
        );
        assert_eq!(f[0].src.as_deref(), Some("10.0.0.7"));
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
        let scans: Vec<_> = f.iter().filter(|f| f.kind == "port-scan").collect();
        assert_eq!(scans.len(), 1, "{f:?}");
        assert_eq!(scans[0].src.as_deref(), Some("10.0.0.9"));
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
        assert_eq!(f[0].kind, "odd-flags");
        assert_eq!(f[0].host.as_deref(), Some("10.0.1.1"));
        assert!(
            f[0].detail.contains("1 NULL, 0 FIN and 1 Xmas"),
            "{}",
            f[0].detail
        );
    }
}
