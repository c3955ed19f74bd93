//! Link-type dispatch and header decoding into one small per-packet record.
//!
//! Contract: [`decode`] never panics, never allocates, and never reads past the
//! captured bytes. It walks from the link layer to the innermost transport
//! header it can find (through VLAN tags, PPPoE, MPLS and tunnels) and fills a
//! caller-owned [`Decoded`]. Where it has to stop early it records the layer
//! and the reason in [`Decoded::error`]; what was decoded before that point
//! (the outer transport of a tunnel, say) is kept.

mod icmp;
mod ip;
mod link;
mod transport;
mod tunnel;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use link::LinkType;

/// Where decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    Link,
    Vlan,
    Pppoe,
    Mpls,
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
    Sctp,
    Dccp,
    Icmp,
    Icmpv6,
    Tunnel,
}

impl Layer {
    pub const COUNT: usize = 13;
    pub const ALL: [Layer; Layer::COUNT] = [
        Layer::Link,
        Layer::Vlan,
        Layer::Pppoe,
        Layer::Mpls,
        Layer::Ipv4,
        Layer::Ipv6,
        Layer::Tcp,
        Layer::Udp,
        Layer::Sctp,
        Layer::Dccp,
        Layer::Icmp,
        Layer::Icmpv6,
        Layer::Tunnel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Link => "link",
            Layer::Vlan => "vlan",
            Layer::Pppoe => "pppoe",
            Layer::Mpls => "mpls",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Sctp => "sctp",
            Layer::Dccp => "dccp",
            Layer::Icmp => "icmp",
            Layer::Icmpv6 => "icmpv6",
            Layer::Tunnel => "tunnel",
        }
    }
}

/// Why decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The captured bytes end inside this header (snaplen or a damaged record).
    Truncated,
    /// A version field that this layer cannot have.
    BadVersion,
    /// A header-length field that is too small or runs past the packet.
    BadHeaderLength,
    /// A total/payload length field that is smaller than the header.
    BadLength,
    /// A link type portflow does not decode.
    UnsupportedLinkType,
    /// An encapsulation inside a tunnel or PPP that portflow does not decode.
    Unsupported,
    /// Too many VLAN tags, MPLS labels, extension headers or nested tunnels.
    TooDeep,
    /// A pcapng packet names an interface that no interface block described.
    UnknownInterface,
}

impl Reason {
    pub const COUNT: usize = 8;
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::Truncated,
        Reason::BadVersion,
        Reason::BadHeaderLength,
        Reason::BadLength,
        Reason::UnsupportedLinkType,
        Reason::Unsupported,
        Reason::TooDeep,
        Reason::UnknownInterface,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Truncated => "truncated",
            Reason::BadVersion => "bad-version",
            Reason::BadHeaderLength => "bad-header-length",
            Reason::BadLength => "bad-length",
            Reason::UnsupportedLinkType => "unsupported-link-type",
            Reason::Unsupported => "unsupported",
            Reason::TooDeep => "too-deep",
            Reason::UnknownInterface => "unknown-interface",
        }
    }
}

/// A decode stop: layer and reason. Small and `Copy` for the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecodeError {
    pub layer: Layer,
    pub reason: Reason,
}

impl DecodeError {
    #[inline]
    pub(crate) const fn new(layer: Layer, reason: Reason) -> Self {
        DecodeError { layer, reason }
    }
}

/// Tunnel encapsulations that are decoded through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelKind {
    Gre,
    Erspan,
    Vxlan,
    Geneve,
    GtpU,
    IpInIp,
    SixInFour,
    Teredo,
    Mpls,
}

impl TunnelKind {
    pub const COUNT: usize = 9;
    pub const ALL: [TunnelKind; TunnelKind::COUNT] = [
        TunnelKind::Gre,
        TunnelKind::Erspan,
        TunnelKind::Vxlan,
        TunnelKind::Geneve,
        TunnelKind::GtpU,
        TunnelKind::IpInIp,
        TunnelKind::SixInFour,
        TunnelKind::Teredo,
        TunnelKind::Mpls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::Gre => "gre",
            TunnelKind::Erspan => "erspan",
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::GtpU => "gtp-u",
            TunnelKind::IpInIp => "ip-in-ip",
            TunnelKind::SixInFour => "6in4",
            TunnelKind::Teredo => "teredo",
            TunnelKind::Mpls => "mpls",
        }
    }
}

/// What the packet turned out to be, at its innermost decoded layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// Nothing decoded yet (or the link layer failed).
    #[default]
    Undecoded,
    /// A link-layer frame that does not carry IP (ARP, LLDP, STP...).
    NonIp,
    /// An IP packet whose transport has ports (TCP, UDP, SCTP, DCCP): `ports` is set.
    Transport,
    /// A non-first IP fragment: no transport header, `frag` says which datagram.
    Fragment,
    /// ICMP or ICMPv6.
    Icmp,
    /// Another IP protocol (ESP, OSPF, IGMP...), or a transport cut short before its ports.
    OtherIp,
}

/// IP addresses as 16 bytes; IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`).
pub type Addr = [u8; 16];

/// The IPv4-mapped IPv6 form (`::ffff:a.b.c.d`) of the IPv4 address that
/// `b` starts with.
///
/// On x86-64 the address is built in one vector register, so the decoder
/// stores it with one 16-byte write: built byte by byte it would be stored in
/// parts, and the flow key's 16-byte load of it a few instructions later
/// could not be served from the pending stores (a store-forwarding stall: it
/// waits for them to reach the cache).
#[inline]
pub fn v4_mapped(b: &[u8]) -> Addr {
    let v4: [u8; 4] = [b[0], b[1], b[2], b[3]];
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_set_epi32};
        // Little-endian lanes: bytes 8..12 are 00 00 ff ff, 12..16 the address.
        // SAFETY: SSE2 is part of every x86-64 CPU; `__m128i` and `[u8; 16]`
        // are both 16 plain bytes.
        unsafe {
            let v = _mm_set_epi32(i32::from_le_bytes(v4), 0xffff_0000_u32 as i32, 0, 0);
            std::mem::transmute::<__m128i, Addr>(v)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..16].copy_from_slice(&v4);
        a
    }
}

/// A std address as stored (IPv4 mapped into IPv6): [`to_ip`]'s inverse.
pub fn from_ip(ip: std::net::IpAddr) -> Addr {
    match ip {
        std::net::IpAddr::V4(v4) => v4_mapped(&v4.octets()),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

/// Turns a stored address back into a std address (IPv4-mapped → IPv4).
pub fn to_ip(a: &Addr) -> std::net::IpAddr {
    let v6 = std::net::Ipv6Addr::from(*a);
    match v6.to_ipv4_mapped() {
        Some(v4) => std::net::IpAddr::V4(v4),
        None => std::net::IpAddr::V6(v6),
    }
}

/// [`to_ip`]'s text, with IPv4 (most addresses in a report) written digit
/// by digit instead of through the formatter.
pub fn ip_text(a: &Addr) -> String {
    let Some(v4) = mapped_v4(a) else {
        return to_ip(a).to_string();
    };
    let mut s = String::with_capacity(15);
    for (i, octet) in v4.to_be_bytes().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if octet >= 100 {
            s.push((b'0' + octet / 100) as char);
        }
        if octet >= 10 {
            s.push((b'0' + octet / 10 % 10) as char);
        }
        s.push((b'0' + octet % 10) as char);
    }
    s
}

/// A key that sorts stored addresses as [`to_ip`]'s results sort (IPv4
/// before IPv6, each by value), without building them.
#[inline]
pub fn ip_order(a: &Addr) -> (bool, u128) {
    match mapped_v4(a) {
        Some(v4) => (false, v4 as u128),
        None => (true, u128::from_be_bytes(*a)),
    }
}

/// The IPv4 address of an IPv4-mapped stored address (`::ffff:a.b.c.d`).
#[inline]
pub fn mapped_v4(a: &Addr) -> Option<u32> {
    let v = u128::from_be_bytes(*a);
    (v >> 32 == 0xffff).then_some(v as u32)
}

/// IP fragment facts for the innermost IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Frag {
    /// The packet is a fragment (first or later).
    pub is_fragment: bool,
    /// Offset 0: the fragment that carries the transport header.
    pub first: bool,
    /// IPv4 identification or IPv6 fragment-header identification.
    pub id: u32,
}

/// An ICMP "port unreachable" quoting the datagram that was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unreachable {
    pub valid: bool,
    /// IP protocol of the quoted datagram.
    pub proto: u8,
    /// The host that refused (the quoted destination).
    pub host: Addr,
    /// The refused port (the quoted destination port).
    pub port: u16,
}

/// The per-packet record filled by [`decode`]. Plain data, no heap.
#[derive(Debug, Clone, Copy, Default)]
pub struct Decoded {
    pub kind: Kind,
    pub error: Option<DecodeError>,
    /// The outermost tunnel decoded through, if any.
    pub tunnel: Option<TunnelKind>,
    /// 4 or 6 for the innermost IP header, 0 if none.
    pub ip_version: u8,
    pub src: Addr,
    pub dst: Addr,
    /// IP protocol number of the innermost IP payload.
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub frag: Frag,
    pub unreachable: Unreachable,
    /// Ethertype of a non-IP frame.
    pub ethertype: u16,
    /// Offset and captured length of the transport payload (for later inspection).
    pub payload_offset: u32,
    pub payload_len: u32,
}

impl Decoded {
    #[inline]
    fn reset(&mut self) {
        *self = Decoded::default();
    }

    #[inline]
    pub(crate) fn fail(&mut self, e: DecodeError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}

pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

/// The deepest nesting of tunnels decoded through.
pub(crate) const MAX_TUNNEL_DEPTH: u8 = 4;

/// Decodes one captured frame of link type `link` into `out`.
#[inline]
pub fn decode(link: LinkType, data: &[u8], out: &mut Decoded) {
    out.reset();
    decode_into_new(link, data, out);
}

/// [`decode`] into a `Decoded` made for this frame (`Decoded::default()`),
/// which need not be reset again.
#[inline]
pub(crate) fn decode_into_new(link: LinkType, data: &[u8], out: &mut Decoded) {
    let base = data.as_ptr() as usize;
    let mut cx = Cx {
        out,
        base,
        depth: 0,
        ip_cut: true,
    };
    link::decode_link(&mut cx, link, data);
}

/// Decoding context threaded through the layers.
pub(crate) struct Cx<'o> {
    pub out: &'o mut Decoded,
    /// Address of the frame's first byte, to turn slices into offsets.
    pub base: usize,
    /// Tunnel nesting so far.
    pub depth: u8,
    /// The innermost IP datagram's captured bytes end before the length its
    /// header claims (a snaplen cut), or the claim is absent (TSO, jumbogram):
    /// a transport header running past the end is then no lie.
    pub ip_cut: bool,
}

impl Cx<'_> {
    #[inline]
    pub fn offset_of(&self, s: &[u8]) -> u32 {
        (s.as_ptr() as usize - self.base) as u32
    }
}

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
