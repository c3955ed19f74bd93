//! `portflow learn`: a policy from the traffic seen. Every server port of
//! the open-port inventory becomes a line of its host's entry, with the
//! evidence a reviewer needs; ports seen in fewer than `min_flows` flows or
//! from fewer than `min_clients` clients are kept out of the allowed set
//! (listed commented out, never dropped). With a group prefix, hosts of one
//! network that serve the same ports fold into one network entry.
use crate::decode::{ip_text, Addr};
use crate::inspect::Protocol;
use crate::services::{Services, Transport};
use crate::stats::inventory::Inventory;
use std::collections::BTreeMap;

/// What a port needs to be allowed (`--min-flows`, `--min-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub min_flows: u64,
    pub min_clients: u64,
}

impl Default for Thresholds {
    /// Two flows from one client: a one-off connection is not a service.
    fn default() -> Self {
        Thresholds {
            min_flows: 2,
            min_clients: 1,
        }
    }
}

/// `--group V4[,V6]`: the prefix lengths hosts fold by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub v4: u8,
    pub v6: u8,
}

/// One port seen served, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenPort {
    pub transport: Transport,
    pub port: u16,
    pub service: Option<String>,
    pub detected: Option<Protocol>,
    pub flows: u64,
    /// Distinct clients (summed over the hosts of a folded entry).
    pub clients: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Hosts seen serving it (1 unless folded).
    pub hosts: u64,
    /// Whether it meets the thresholds (allowed) or is listed commented out.
    pub allowed: bool,
}

/// One `[[hosts]]` entry of the policy learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The `match` text: an address, or a network (`10.0.0.0/24`).
    pub matches: String,
    /// Hosts folded into it (1 for a single host).
    pub hosts: usize,
    /// By transport, then port.
    pub ports: Vec<SeenPort>,
}

impl Entry {
    /// The ports it allows, as (transport, port).
    pub fn allowed(&self) -> Vec<(Transport, u16)> {
        self.ports
            .iter()
            .filter(|p| p.allowed)
            .map(|p| (p.transport, p.port))
            .collect()
    }
}

/// A policy learned from an inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    pub entries: Vec<Entry>,
    pub thresholds: Thresholds,
    pub group: Option<Group>,
}

/// The policy the inventory shows: one entry per server host (or folded
/// network), sorted by address.
pub fn learn(
    inv: &Inventory,
    services: &Services,
    th: Thresholds,
    group: Option<Group>,
) -> Learned {
    let detected = inv.protocols();
    let mut hosts: BTreeMap<Addr, Vec<SeenPort>> = BTreeMap::new();
    for (k, o) in inv.open_ports() {
        let clients = o.clients.len();
        let flows = o.span.flows;
        hosts.entry(k.host).or_default().push(SeenPort {
            transport: k.transport,
            port: k.port,
            service: services.name(k.transport, k.port).map(str::to_string),
            detected: detected.get(k).and_then(|v| v.first()).map(|(p, _)| *p),
            flows,
            clients,
            first_ns: o.span.first_ns,
            last_ns: o.span.last_ns,
            hosts: 1,
            allowed: flows >= th.min_flows && clients >= th.min_clients,
        });
    }
    for ports in hosts.values_mut() {
        ports.sort_by_key(|p| (p.transport, p.port));
    }
    let entries = match group {
        Some(g) => fold(hosts, g),
        None => hosts
            .into_iter()
            .map(|(a, ports)| Entry {
                matches: ip_text(&a),
                hosts: 1,
                ports,
            })
            .collect(),
    };
    Learned {
        entries,
        thresholds: th,
        group,
    }
}

/// The network of `a` under the group's prefix, and its `match` text.
fn network_of(a: &Addr, g: Group) -> (Addr, String) {
    let v4 = crate::decode::mapped_v4(a).is_some();
    let (bits, offset) = if v4 { (g.v4, 96u32) } else { (g.v6, 0) };
    let keep = offset + bits as u32;
    let mask = if keep == 0 {
        0
    } else {
        u128::MAX << (128 - keep.min(128))
    };
    let net = (u128::from_be_bytes(*a) & mask).to_be_bytes();
    (net, format!("{}/{bits}", ip_text(&net)))
}

/// Folds, per network, the hosts that allow the same ports as most others
/// there (two at least) into one network entry; every other host keeps its
/// own entry, which is more specific and so still decides for it.
fn fold(hosts: BTreeMap<Addr, Vec<SeenPort>>, g: Group) -> Vec<Entry> {
    /// A network's `match` text and its hosts with their ports.
    type Members = (String, Vec<(Addr, Vec<SeenPort>)>);
    let mut nets: BTreeMap<Addr, Members> = BTreeMap::new();
    for (a, ports) in hosts {
        let (net, text) = network_of(&a, g);
        nets.entry(net)
            .or_insert_with(|| (text, Vec::new()))
            .1
            .push((a, ports));
    }
    let mut out = Vec::new();
    for (_, (text, members)) in nets {
        let allowed = |ports: &[SeenPort]| -> Vec<(Transport, u16)> {
            ports
                .iter()
                .filter(|p| p.allowed)
                .map(|p| (p.transport, p.port))
                .collect()
        };
        let mut sets: BTreeMap<Vec<(Transport, u16)>, usize> = BTreeMap::new();
        for (_, ports) in &members {
            *sets.entry(allowed(ports)).or_default() += 1;
        }
        let common = sets
            .into_iter()
            .filter(|(set, n)| *n >= 2 && !set.is_empty())
            .max_by_key(|(set, n)| (*n, std::cmp::Reverse(set.clone())))
            .map(|(set, _)| set);
        let mut folded = Entry {
            matches: text,
            hosts: 0,
            ports: Vec::new(),
        };
        for (a, ports) in members {
            if common.as_ref() == Some(&allowed(&ports)) {
                folded.hosts += 1;
                merge_ports(&mut folded.ports, ports);
            } else {
                out.push(Entry {
                    matches: ip_text(&a),
                    hosts: 1,
                    ports,
                });
            }
        }
        if folded.hosts > 0 {
            out.push(folded);
        }
    }
    out.sort_by_key(|e| order_key(&e.matches));
    out
}

/// Entries by address, a network before the hosts in it.
fn order_key(m: &str) -> (std::net::IpAddr, u8) {
    let (a, len) = m.split_once('/').unwrap_or((m, "255"));
    (
        a.parse()
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        len.parse().unwrap_or(255),
    )
}

/// Adds one host's ports to a folded entry's.
fn merge_ports(into: &mut Vec<SeenPort>, ports: Vec<SeenPort>) {
    for p in ports {
        match into
            .iter_mut()
            .find(|q| (q.transport, q.port) == (p.transport, p.port))
        {
            Some(q) => {
                q.flows += p.flows;
                q.clients += p.clients;
                q.hosts += 1;
                q.first_ns = q.first_ns.min(p.first_ns);
                q.last_ns = q.last_ns.max(p.last_ns);
                q.allowed |= p.allowed;
                q.detected = q.detected.or(p.detected);
            }
            None => into.push(p),
        }
    }
    into.sort_by_key(|p| (p.transport, p.port));
}

/// A port seen `flows` times from one client (allowed from two flows), for tests.
#[cfg(test)]
pub(crate) fn seen_port(t: Transport, port: u16, flows: u64) -> SeenPort {
    SeenPort {
        transport: t,
        port,
        service: None,
        detected: None,
        flows,
        clients: 1,
        first_ns: 1_700_000_000_000_000_000,
        last_ns: 1_700_000_001_000_000_000,
        hosts: 1,
        allowed: flows >= Thresholds::default().min_flows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;

    #[test]
    fn hosts_with_the_same_ports_fold_and_the_others_keep_their_own() {
        let web = || {
            vec![
                seen_port(Transport::Tcp, 443, 5),
                seen_port(Transport::Tcp, 8080, 1),
            ]
        };
        let mut hosts = BTreeMap::new();
        hosts.insert(v4_mapped(&[10, 0, 0, 1]), web());
        hosts.insert(v4_mapped(&[10, 0, 0, 2]), web());
        hosts.insert(
            v4_mapped(&[10, 0, 0, 3]),
            vec![seen_port(Transport::Tcp, 22, 9)],
        );
        hosts.insert(
            v4_mapped(&[10, 0, 1, 1]),
            vec![seen_port(Transport::Udp, 53, 9)],
        );
        let e = fold(hosts, Group { v4: 24, v6: 64 });
        let names: Vec<&str> = e.iter().map(|e| e.matches.as_str()).collect();
        assert_eq!(names, ["10.0.0.0/24", "10.0.0.3", "10.0.1.1"]);
        assert_eq!(e[0].hosts, 2);
        assert_eq!(e[0].allowed(), [(Transport::Tcp, 443)]);
        assert_eq!(e[0].ports[0].flows, 10);
        assert!(!e[0].ports[1].allowed, "8080 stays below the thresholds");
        assert_eq!(
            e[2].allowed(),
            [(Transport::Udp, 53)],
            "alone in its network"
        );
    }

    #[test]
    fn networks_are_named_by_their_prefix() {
        let g = Group { v4: 16, v6: 48 };
        assert_eq!(network_of(&v4_mapped(&[10, 1, 2, 3]), g).1, "10.1.0.0/16");
        let a: std::net::Ipv6Addr = "2001:db8:1:2::5".parse().unwrap();
        assert_eq!(network_of(&a.octets(), g).1, "2001:db8:1::/48");
    }
}
