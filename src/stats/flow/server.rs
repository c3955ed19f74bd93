//! Which side of a flow is the service (the door), decided when the flow is
//! first seen:
//! 1. TCP SYN without ACK: its destination. SYN-ACK: its source.
//! 2. An endpoint the reader has seen answering a handshake (SYN-ACK) before.
//! 3. The scored fallback ([`server_score`]): well-known beats registered beats
//!    dynamic; then an IANA-assigned (or `--services`) name beats none; then the
//!    lower port; then the destination of the first packet.
use super::{FlowPacket, HINT_HI_SERVER, HINT_LO_SERVER};
use crate::decode::tcp_flags as F;
use crate::services::{PortClass, Services, Transport};

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

/// Whether `key.lo` is the server, for a flow first seen with packet `p`.
pub fn lo_is_server(services: &Services, p: &FlowPacket) -> bool {
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
    match (p.hints & HINT_LO_SERVER != 0, p.hints & HINT_HI_SERVER != 0) {
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
