//! Which side of a flow is the service (the door), decided when the flow is
//! first seen:
//! 1. TCP SYN without ACK: its destination. SYN-ACK: its source.
//! 2. An endpoint seen answering a handshake (SYN-ACK) before, in any flow
//!    ([`KnownServers`]).
//! 3. The scored fallback ([`server_score`]): well-known beats registered beats
//!    dynamic; then an IANA-assigned (or `--services`) name beats none; then the
//!    lower port; then the destination of the first packet.
use super::{FlowKey, FlowPacket, KNOWN_HI_SERVER, KNOWN_LO_SERVER};
use crate::decode::tcp_flags as F;
use crate::decode::Addr;
use crate::services::{PortClass, Services, Transport};
use rustc_hash::FxHashSet;

/// TCP endpoints remembered as servers at most (a table holds its own copy).
pub const SERVERS_CAP: usize = 1 << 18;

/// The TCP endpoints seen answering a handshake (SYN-ACK sources), the
/// first [`SERVERS_CAP`] of them in packet order. Every table learns every
/// one in the same order (its own flows' SYN-ACKs, the others' by
/// [`super::SERVER`] records), so each holds the same set at the same point
/// of the packet sequence, whatever the number of workers.
#[derive(Debug, Default)]
pub struct KnownServers {
    set: FxHashSet<(Addr, u16)>,
}

impl KnownServers {
    /// Remembers `addr`:`port`; whether it is new (and was taken).
    #[inline]
    pub fn learn(&mut self, addr: Addr, port: u16) -> bool {
        self.set.len() < SERVERS_CAP && self.set.insert((addr, port))
    }

    /// [`KNOWN_LO_SERVER`] / [`KNOWN_HI_SERVER`] for the endpoints of `key`.
    #[inline]
    pub fn known(&self, key: &FlowKey) -> u8 {
        if self.set.is_empty() {
            return 0;
        }
        let lo = self.set.contains(&(key.lo, key.lo_port)) as u8 * KNOWN_LO_SERVER;
        let hi = self.set.contains(&(key.hi, key.hi_port)) as u8 * KNOWN_HI_SERVER;
        lo | hi
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// Score of a port as a candidate service (higher wins).
#[inline]
pub fn server_score(services: &Services, t: Transport, port: u16) -> u8 {
    let class = match PortClass::of(port) {
        PortClass::WellKnown => 2,
        PortClass::Registered => 1,
        PortClass::Dynamic => 0,
    };
    class * 2 + services.is_assigned(t, port) as u8
}

/// Whether `key.lo` is the server, for a flow first seen with packet `p`;
/// `known`: which endpoints answered a handshake before ([`KnownServers::known`]).
pub fn lo_is_server(services: &Services, p: &FlowPacket, known: u8) -> bool {
    let k = &p.key;
    if k.transport == Transport::Tcp {
        let syn = p.tcp_flags & F::SYN != 0;
        let ack = p.tcp_flags & F::ACK != 0;
        if syn && !ack {
            return !p.from_lo; // the destination
        }
        if syn && ack {
            return p.from_lo; // the source
        }
    }
    match (known & KNOWN_LO_SERVER != 0, known & KNOWN_HI_SERVER != 0) {
        (true, false) => return true,
        (false, true) => return false,
        _ => {}
    }
    let (sl, sh) = (
        server_score(services, k.transport, k.lo_port),
        server_score(services, k.transport, k.hi_port),
    );
    if sl != sh {
        return sl > sh;
    }
    if k.lo_port != k.hi_port {
        return k.lo_port < k.hi_port;
    }
    !p.from_lo
}
