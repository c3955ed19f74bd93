//! Payload inspection: which application protocol a flow speaks, from the
//! first bytes of each direction whatever port it runs on, and whether its
//! client sends credentials or sessions in cleartext.
//!
//! Contract: the flow's worker looks at most at [`INSPECT_BYTES`] of the first
//! [`INSPECT_PACKETS`] payload-carrying packets of each direction of a flow
//! (after the first, only those that start like text,
//! [`FlowInspect::worth_a_look`]), counted by the flow itself
//! ([`FlowInspect::next_payload`]); it runs [`FlowInspect::inspect`] on them, which calls [`identify`] on the first of
//! each direction and [`scan_credentials`] on the client's, and keeps the
//! verdict in four bytes. Nothing else of a packet's payload is looked at, so
//! the cost does not grow with the traffic. Every check is bounds-checked on a
//! slice of untrusted bytes and cannot panic.
//!
//! Signatures follow the protocols' own specifications (and the checks nDPI and
//! Wireshark's heuristic dissectors make): a *strong* match is a structure that
//! random bytes or another protocol would hardly produce (an SSH banner, a TLS
//! ClientHello, a DHCP magic cookie); a *weak* one is ambiguous alone (a bare
//! `220 ` banner is FTP or SMTP) and gives way to a strong match from either
//! side.
//!
//! - [`protocol`]: the protocols and which IANA registrations each fits;
//! - `tcp` and `udp`: the signatures, by transport;
//! - `credentials`: cleartext logins and sessions in the client's packets.

mod bytes;
mod credentials;
pub mod names;
mod protocol;
mod tcp;
mod udp;

#[cfg(test)]
mod tests;

use crate::services::Transport;

pub use credentials::scan_credentials;
pub use protocol::Protocol;

/// Packets per direction of a flow whose payload is inspected.
pub const INSPECT_PACKETS: u8 = 4;
/// Payload bytes of a packet inspected (HTTP request headers up to here).
pub const INSPECT_BYTES: usize = 1024;

/// A verdict on one packet: the protocol and whether the match is strong.
pub type Guess = (Protocol, bool);

/// Cleartext evidence bits kept per flow.
pub mod clear {
    /// HTTP `Authorization: Basic` (a password, base64 only).
    pub const HTTP_BASIC: u8 = 1;
    /// HTTP `Authorization` with another scheme (a token or digest).
    pub const HTTP_AUTH: u8 = 2;
    /// An HTTP POST carrying a password field or sent to a login path.
    pub const LOGIN_FORM: u8 = 4;
    /// A login command: FTP USER/PASS, POP3 USER/PASS/APOP/AUTH, IMAP LOGIN or
    /// AUTHENTICATE, SMTP AUTH, Redis AUTH, MQTT CONNECT with a password.
    pub const LOGIN: u8 = 8;
    /// The session was upgraded to TLS (STARTTLS, STLS, AUTH TLS) before any login.
    pub const UPGRADED: u8 = 16;
    /// FTP `USER anonymous`: the PASS that follows is no secret.
    pub const ANONYMOUS: u8 = 32;
}

/// Per-flow inspection state (four bytes, kept in the flow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowInspect {
    /// Best guess from the server's side, then the client's: protocol number
    /// with [`STRONG`] set for a strong match; 0 for none.
    pub server: u8,
    pub client: u8,
    /// [`clear`] bits.
    pub clear: u8,
    /// Payload packets seen so far from the client (low four bits) and from
    /// the server (high four), counted up to [`INSPECT_PACKETS`] each.
    pub packets: u8,
}

const STRONG: u8 = 0x80;
/// The direction's first payload packet has been looked at.
const EXAMINED: u8 = 0x40;
const PROTO: u8 = 0x3f;

impl FlowInspect {
    /// Counts a payload packet of the flow sent to the server side
    /// (`to_server`) or from it; says which of its direction's payload
    /// packets it is (0 for the first) while that is one of the first
    /// [`INSPECT_PACKETS`], `None` after.
    #[inline]
    pub fn next_payload(&mut self, to_server: bool) -> Option<u8> {
        let shift = 4 * !to_server as u32;
        let n = (self.packets >> shift) & 0xf;
        if n >= INSPECT_PACKETS {
            return None;
        }
        self.packets += 1 << shift;
        Some(n)
    }

    /// Whether the `nth` payload packet of a direction ([`Self::next_payload`])
    /// is worth a look: the first always (it names the protocol), later ones
    /// only when they start like text (credentials in a text protocol);
    /// binary ones (TLS records, encrypted SSH, file data) are not.
    #[inline]
    pub fn worth_a_look(nth: u8, payload: &[u8]) -> bool {
        nth == 0
            || payload
                .first()
                .is_some_and(|&c| c.is_ascii_graphic() || c == b' ')
    }

    /// Looks at one payload prefix of the flow. The protocol is identified on
    /// the first payload packet of each direction only (a banner, a request, a
    /// hello): what follows may be anything, TLS after a STARTTLS included. The
    /// later packets are scanned for cleartext credentials.
    #[inline]
    pub fn inspect(&mut self, t: Transport, to_server: bool, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        let slot = if to_server {
            &mut self.client
        } else {
            &mut self.server
        };
        if *slot & EXAMINED == 0 {
            *slot = EXAMINED;
            if let Some((p, strong)) = identify(t, to_server, payload) {
                *slot |= p as u8 | if strong { STRONG } else { 0 };
            }
        }
        if to_server {
            if let Some(p) = self.protocol() {
                self.clear |= scan_credentials(p, payload, self.clear);
            }
        }
    }

    /// The flow's protocol: a strong match beats a weak one, the server's side
    /// beats the client's.
    pub fn protocol(&self) -> Option<Protocol> {
        let (s, c) = (self.server, self.client);
        let pick = if s & STRONG != 0 {
            s
        } else if c & STRONG != 0 {
            c
        } else if s & PROTO != 0 {
            s
        } else {
            c
        };
        Protocol::from_u8(pick & PROTO)
    }

    /// Whether the server's own answer backs the verdict (it was recognised:
    /// the same protocol, or a weak guess such as a bare `220` banner). A
    /// client's request alone says what the client hoped to find, not what
    /// listens on the port.
    pub fn server_confirms(&self) -> bool {
        let s = self.server;
        s & PROTO != 0 && (s & STRONG == 0 || Protocol::from_u8(s & PROTO) == self.protocol())
    }
}

/// Identifies the protocol of one payload prefix, sent to the server side
/// (`to_server`) or from it.
pub fn identify(t: Transport, to_server: bool, p: &[u8]) -> Option<Guess> {
    match t {
        Transport::Tcp => tcp::identify(to_server, p),
        Transport::Udp => udp::identify(p),
        _ => None,
    }
}
