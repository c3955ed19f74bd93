//! The open-port inventory: every (server host, transport, port) seen serving,
//! and per host the attempts its closed ports refused.
//!
//! A port is open when a TCP server answered a SYN with a SYN-ACK ("handshake"),
//! when a UDP/SCTP/DCCP server answered ("answered"), or when a TCP flow already
//! under way shows traffic from the server side ("midstream", a capture that
//! began after the handshake). A TCP RST to a SYN is a closed-port attempt of its
//! host, not an open port; ICMP port-unreachable messages are counted in totals.
use super::Count;
use crate::decode::Addr;
use crate::services::Transport;
use rustc_hash::{FxHashMap, FxHashSet};

pub const HANDSHAKE: u8 = 1;
pub const ANSWERED: u8 = 2;
pub const MIDSTREAM: u8 = 4;

/// Names of the evidence bits, strongest first.
pub fn evidence_names(bits: u8) -> Vec<&'static str> {
    [
        (HANDSHAKE, "handshake"),
        (ANSWERED, "answered"),
        (MIDSTREAM, "midstream"),
    ]
    .into_iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|(_, n)| n)
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpenPortKey {
    pub host: Addr,
    pub transport: Transport,
    pub port: u16,
}

#[derive(Debug, Clone, Default)]
pub struct OpenPort {
    pub first_ns: u64,
    pub last_ns: u64,
    pub flows: u64,
    pub clients: FxHashSet<Addr>,
    pub to_server: Count,
    pub to_client: Count,
    pub evidence: u8,
}

impl OpenPort {
    fn merge(&mut self, o: &OpenPort) {
        if self.flows == 0 || o.first_ns < self.first_ns {
            self.first_ns = o.first_ns;
        }
        self.last_ns = self.last_ns.max(o.last_ns);
        self.flows += o.flows;
        self.clients.extend(o.clients.iter().copied());
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
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub open: FxHashMap<OpenPortKey, OpenPort>,
    /// TCP connection attempts refused with a RST, per server host.
    pub rejected: FxHashMap<Addr, u64>,
}

impl Inventory {
    pub fn observe(&mut self, o: FlowOutcome) {
        if o.rejected {
            *self.rejected.entry(o.key.host).or_default() += 1;
        }
        if o.evidence == 0 {
            return;
        }
        let one = OpenPort {
            first_ns: o.first_ns,
            last_ns: o.last_ns,
            flows: 1,
            clients: FxHashSet::default(),
            to_server: o.to_server,
            to_client: o.to_client,
            evidence: o.evidence,
        };
        let e = self.open.entry(o.key).or_default();
        e.merge(&one);
        e.clients.insert(o.client);
    }

    pub fn merge(&mut self, o: &Inventory) {
        for (k, v) in &o.open {
            self.open.entry(*k).or_default().merge(v);
        }
        for (h, n) in &o.rejected {
            *self.rejected.entry(*h).or_default() += n;
        }
    }
}
