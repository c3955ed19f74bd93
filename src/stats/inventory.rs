//! The open-port inventory: every (server host, transport, port) seen serving,
//! and per host the attempts its closed ports refused.
//!
//! A port is open when a TCP server answered a SYN with a SYN-ACK ("handshake"),
//! when a UDP/SCTP/DCCP server answered ("answered"), or when a TCP flow already
//! under way shows traffic from the server side ("midstream", a capture that
//! began after the handshake). A TCP RST to a SYN is a closed-port attempt of its
//! host, not an open port; ICMP port-unreachable messages are counted in totals.
use super::distinct::Distinct;
use super::Count;
use crate::decode::Addr;
use crate::inspect::{clear, Protocol};
use crate::services::Transport;
use rustc_hash::FxHashMap;

/// Evidence bits: why a port is taken as open (strongest first).
pub const HANDSHAKE: u8 = 1;
pub const ANSWERED: u8 = 2;
pub const MIDSTREAM: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpenPortKey {
    pub host: Addr,
    pub transport: Transport,
    pub port: u16,
}

/// When and how often: the first and last packet time over some flows, and
/// how many flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub first_ns: u64,
    pub last_ns: u64,
    pub flows: u64,
}

impl Span {
    /// One flow seen from `first_ns` to `last_ns`.
    pub fn one(first_ns: u64, last_ns: u64) -> Span {
        Span {
            first_ns,
            last_ns,
            flows: 1,
        }
    }

    pub fn merge(&mut self, o: &Span) {
        if self.flows == 0 || o.first_ns < self.first_ns {
            self.first_ns = o.first_ns;
        }
        self.last_ns = self.last_ns.max(o.last_ns);
        self.flows += o.flows;
    }
}

#[derive(Debug, Clone, Default)]
pub struct OpenPort {
    pub span: Span,
    pub clients: Distinct,
    pub to_server: Count,
    pub to_client: Count,
    pub evidence: u8,
}

impl OpenPort {
    fn merge(&mut self, o: OpenPort) {
        self.span.merge(&o.span);
        self.clients.absorb(o.clients);
        self.to_server += o.to_server;
        self.to_client += o.to_client;
        self.evidence |= o.evidence;
    }
}

/// One flow's outcome, as the inventory needs it.
pub struct FlowOutcome {
    pub key: OpenPortKey,
    pub client: Addr,
    pub first_ns: u64,
    pub last_ns: u64,
    pub to_server: Count,
    pub to_client: Count,
    /// Evidence bits, 0 when the flow shows no open port.
    pub evidence: u8,
    /// A TCP SYN refused with a RST.
    pub rejected: bool,
    /// The protocol detected from payload, and cleartext evidence bits.
    pub detected: Option<Protocol>,
    pub cleartext: u8,
    /// The server's own answer was recognised ([`crate::inspect::FlowInspect::server_confirms`]).
    pub confirmed: bool,
}

/// Flows of one protocol detected on one server port, with or without
/// handshake evidence (for `service-mismatch` and `cleartext` findings).
#[derive(Debug, Clone, Default)]
pub struct Detected {
    pub span: Span,
    /// Flows in which the server's answer backs the protocol.
    pub confirmed: u64,
    pub clients: Distinct,
    pub packets: u64,
    pub bytes: u64,
    /// Flows showing each [`clear`] bit, in bit order.
    pub clear_flows: [u64; CLEAR_BITS],
    /// Clients of the flows with any credential bit.
    pub clear_clients: Distinct,
}

/// [`clear`] bits counted per detected protocol.
pub const CLEAR_BITS: usize = 6;

impl Detected {
    fn merge(&mut self, o: Detected) {
        self.span.merge(&o.span);
        self.confirmed += o.confirmed;
        self.clients.absorb(o.clients);
        self.packets += o.packets;
        self.bytes += o.bytes;
        for (a, b) in self.clear_flows.iter_mut().zip(o.clear_flows) {
            *a += b;
        }
        self.clear_clients.absorb(o.clear_clients);
    }

    /// Flows that showed `bit`.
    pub fn with(&self, bit: u8) -> u64 {
        self.clear_flows[bit.trailing_zeros() as usize]
    }
}

/// Adds `from` to `to`: entries `to` lacks are moved, the others merged
/// (`merge` must not depend on which side is which: the smaller map is added to
/// the larger, into room made for it at once rather than by repeated doubling,
/// since entries are a few hundred bytes and rehashing them costs most).
fn merge_map<K: std::hash::Hash + Eq, V>(
    to: &mut FxHashMap<K, V>,
    mut from: FxHashMap<K, V>,
    merge: impl Fn(&mut V, V),
) {
    use std::collections::hash_map::Entry;
    if from.len() > to.len() {
        std::mem::swap(to, &mut from);
    }
    to.reserve(from.len());
    for (k, v) in from {
        match to.entry(k) {
            Entry::Occupied(mut e) => merge(e.get_mut(), v),
            Entry::Vacant(e) => {
                e.insert(v);
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Open ports ([`Self::open_ports`] lists them all): `open` takes new
    /// observations; `apart` holds maps whose keys are in no other map, added
    /// whole by [`Self::join_apart`] (ending the last flows on two threads
    /// makes two such maps, and merging them would cost as much as the second
    /// thread saves).
    open: FxHashMap<OpenPortKey, OpenPort>,
    apart: Vec<FxHashMap<OpenPortKey, OpenPort>>,
    /// TCP connection attempts refused with a RST, per server host.
    pub rejected: FxHashMap<Addr, u64>,
    /// Protocols detected from payload, per server port.
    pub detected: FxHashMap<(OpenPortKey, Protocol), Detected>,
}

impl Inventory {
    pub fn observe(&mut self, o: FlowOutcome) {
        // Maps kept apart are whole: nothing is observed after a join.
        debug_assert!(self.apart.is_empty(), "observe after join_apart");
        if o.rejected {
            *self.rejected.entry(o.key.host).or_default() += 1;
        }
        let span = Span::one(o.first_ns, o.last_ns);
        if let Some(p) = o.detected {
            let d = self.detected.entry((o.key, p)).or_default();
            d.span.merge(&span);
            d.confirmed += o.confirmed as u64;
            d.packets += o.to_server.packets + o.to_client.packets;
            d.bytes += o.to_server.bytes + o.to_client.bytes;
            d.clients.insert(o.client);
            for bit in 0..CLEAR_BITS {
                if o.cleartext & (1 << bit) != 0 {
                    d.clear_flows[bit] += 1;
                }
            }
            if o.cleartext & !(clear::UPGRADED | clear::ANONYMOUS) != 0 {
                d.clear_clients.insert(o.client);
            }
        }
        if o.evidence == 0 {
            return;
        }
        let e = self.open.entry(o.key).or_default();
        e.span.merge(&span);
        e.to_server += o.to_server;
        e.to_client += o.to_client;
        e.evidence |= o.evidence;
        e.clients.insert(o.client);
    }

    /// Every open port, in no particular order.
    pub fn open_ports(&self) -> impl Iterator<Item = (&OpenPortKey, &OpenPort)> {
        self.open.iter().chain(self.apart.iter().flatten())
    }

    /// How many maps hold the open ports.
    #[cfg(test)]
    pub fn open_maps(&self) -> usize {
        1 + self.apart.len()
    }

    pub fn open_count(&self) -> usize {
        self.open.len() + self.apart.iter().map(|m| m.len()).sum::<usize>()
    }

    /// Moves the open ports and detections whose key `part` picks into a new
    /// inventory (refusals stay), to be observed apart and added back with
    /// [`Self::join_apart`].
    pub fn split_off(&mut self, part: impl Fn(&OpenPortKey) -> bool) -> Inventory {
        self.flatten();
        let (open, keep) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|(k, _)| part(k));
        self.open = keep;
        let (detected, keep) = std::mem::take(&mut self.detected)
            .into_iter()
            .partition(|((k, _), _)| part(k));
        self.detected = keep;
        Inventory {
            open,
            detected,
            ..Inventory::default()
        }
    }

    /// Adds `o`, made by [`Self::split_off`] and observed apart: its open
    /// ports are kept as a map of their own (no key of it is in this one).
    pub fn join_apart(&mut self, mut o: Inventory) {
        debug_assert!(o.open.keys().all(|k| !self.open.contains_key(k)));
        self.apart.push(o.open);
        self.apart.append(&mut o.apart);
        merge_map(&mut self.rejected, o.rejected, |a, b| *a += b);
        merge_map(&mut self.detected, o.detected, Detected::merge);
    }

    /// Folds the maps kept apart into `open`.
    fn flatten(&mut self) {
        for m in std::mem::take(&mut self.apart) {
            merge_map(&mut self.open, m, OpenPort::merge);
        }
    }

    /// Nothing observed.
    pub fn is_empty(&self) -> bool {
        self.open_count() == 0 && self.rejected.is_empty() && self.detected.is_empty()
    }

    /// Adds `o`, moving what this inventory does not have yet.
    pub fn merge(&mut self, mut o: Inventory) {
        if self.is_empty() {
            *self = o;
            return;
        }
        self.flatten();
        o.flatten();
        merge_map(&mut self.open, o.open, OpenPort::merge);
        merge_map(&mut self.rejected, o.rejected, |a, b| *a += b);
        merge_map(&mut self.detected, o.detected, Detected::merge);
    }

    /// Flows per protocol detected on one server port: the protocol the
    /// server's answers confirmed in most flows first, then by flows.
    pub fn protocols_of(&self, key: &OpenPortKey) -> Vec<(Protocol, u64)> {
        if self.detected.is_empty() {
            return Vec::new();
        }
        let v = Protocol::ALL
            .iter()
            .filter_map(|p| {
                self.detected
                    .get(&(*key, *p))
                    .map(|d| (*p, d.span.flows, d.confirmed))
            })
            .collect();
        rank_protocols(v)
    }

    /// [`Self::protocols_of`] for every server port with a detected protocol,
    /// in one pass over the detections (a report asks for every open port).
    pub fn protocols(&self) -> FxHashMap<OpenPortKey, Vec<(Protocol, u64)>> {
        let mut by_port: FxHashMap<OpenPortKey, Vec<(Protocol, u64, u64)>> = FxHashMap::default();
        for ((k, p), d) in &self.detected {
            by_port
                .entry(*k)
                .or_default()
                .push((*p, d.span.flows, d.confirmed));
        }
        by_port
            .into_iter()
            .map(|(k, v)| (k, rank_protocols(v)))
            .collect()
    }
}

/// Orders (protocol, flows, confirmed) by confirmed flows, then flows, then
/// protocol, and drops the confirmed count.
fn rank_protocols(mut v: Vec<(Protocol, u64, u64)>) -> Vec<(Protocol, u64)> {
    v.sort_by(|a, b| (b.2, b.1).cmp(&(a.2, a.1)).then(a.0.cmp(&b.0)));
    v.into_iter().map(|(p, n, _)| (p, n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;

    fn outcome(host: u8, port: u16, client: u8) -> FlowOutcome {
        FlowOutcome {
            key: OpenPortKey {
                host: v4_mapped(&[10, 0, 0, host]),
                transport: Transport::Tcp,
                port,
            },
            client: v4_mapped(&[192, 168, 0, client]),
            first_ns: 1_000 * client as u64,
            last_ns: 2_000 * client as u64,
            to_server: Count {
                packets: 1,
                bytes: 60,
            },
            to_client: Count {
                packets: 1,
                bytes: 90,
            },
            evidence: HANDSHAKE,
            rejected: client.is_multiple_of(5),
            detected: client.is_multiple_of(3).then_some(Protocol::Http),
            cleartext: 0,
            confirmed: true,
        }
    }

    fn listing(inv: &Inventory) -> Vec<String> {
        let mut v: Vec<String> = inv
            .open_ports()
            .map(|(k, o)| {
                format!(
                    "{k:?} {:?} {} {:?} {:?}",
                    o.span,
                    o.clients.len(),
                    o.to_server,
                    o.to_client
                )
            })
            .chain(
                inv.detected
                    .iter()
                    .map(|((k, p), d)| format!("{k:?} {p:?} {:?} {}", d.span, d.clients.len())),
            )
            .chain(inv.rejected.iter().map(|(h, n)| format!("{h:?} {n}")))
            .collect();
        v.sort();
        v
    }

    /// Observing apart and joining, or splitting and merging back (what ending
    /// the last flows falls back to without a second thread), gives what
    /// observing everything in one inventory gives.
    #[test]
    fn split_observe_apart_and_join_match_one_inventory() {
        let all: Vec<(u8, u16, u8)> = (0..400u32)
            .map(|i| ((i % 7) as u8, 20 + (i % 11) as u16, (i % 97) as u8))
            .collect();
        let theirs = |k: &OpenPortKey| (k.port + k.host[15] as u16) % 2 == 1;
        let mut one = Inventory::default();
        all.iter()
            .for_each(|&(h, p, c)| one.observe(outcome(h, p, c)));

        let mut mine = Inventory::default();
        all[..150]
            .iter()
            .for_each(|&(h, p, c)| mine.observe(outcome(h, p, c)));
        let mut part = mine.split_off(theirs);
        let mut back = mine.clone();
        back.merge(part.clone());
        let mut first = Inventory::default();
        all[..150]
            .iter()
            .for_each(|&(h, p, c)| first.observe(outcome(h, p, c)));
        assert_eq!(listing(&back), listing(&first), "split and merged back");
        for &(h, p, c) in &all[150..] {
            let o = outcome(h, p, c);
            if theirs(&o.key) {
                part.observe(o);
            } else {
                mine.observe(o);
            }
        }
        mine.join_apart(part);
        assert_eq!(mine.open_maps(), 2);
        assert_eq!(listing(&mine), listing(&one));
        // A later merge (another worker's inventory) folds the maps kept apart.
        let mut merged = Inventory::default();
        merged.observe(outcome(1, 20, 200));
        merged.merge(mine);
        one.observe(outcome(1, 20, 200));
        assert_eq!(listing(&merged), listing(&one));
        assert_eq!(merged.open_maps(), 1);
    }
}
