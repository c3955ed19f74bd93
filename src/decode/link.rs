//! Link layers: Ethernet (with 802.1Q/802.1ad tags, PPPoE sessions, MPLS),
//! Linux SLL and SLL2, raw IP, BSD null/loopback, PPP.
use super::{be16, ip, Cx, DecodeError, Kind, Layer, Reason, TunnelKind};

/// A pcap LINKTYPE_ value. Open: unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const PPP: LinkType = LinkType(9);
    /// DLT_RAW as some BSDs number it.
    pub const RAW_BSD12: LinkType = LinkType(12);
    pub const RAW_BSD14: LinkType = LinkType(14);
    pub const PPP_HDLC: LinkType = LinkType(50);
    pub const PPP_ETHER: LinkType = LinkType(51);
    pub const RAW: LinkType = LinkType(101);
    pub const C_HDLC: LinkType = LinkType(104);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);
    pub const FDDI: LinkType = LinkType(10);
    pub const IEEE802_11: LinkType = LinkType(105);
    pub const PFLOG: LinkType = LinkType(117);
    pub const IEEE802_11_RADIOTAP: LinkType = LinkType(127);
    pub const PPI: LinkType = LinkType(192);
    pub const NFLOG: LinkType = LinkType(239);
    pub const IPOIB: LinkType = LinkType(242);
    pub const PKTAP: LinkType = LinkType(258);

    /// The link type proper: a pcap header's field also carries FCS
    /// information in its upper bits (bits 16-31).
    pub fn from_header_field(v: u32) -> LinkType {
        LinkType(v & 0xffff)
    }

    pub fn name(self) -> String {
        match self {
            LinkType::NULL => "null".into(),
            LinkType::ETHERNET => "ethernet".into(),
            LinkType::PPP => "ppp".into(),
            LinkType::RAW | LinkType::RAW_BSD12 | LinkType::RAW_BSD14 => "raw".into(),
            LinkType::PPP_HDLC => "ppp-hdlc".into(),
            LinkType::PPP_ETHER => "pppoe".into(),
            LinkType::C_HDLC => "cisco-hdlc".into(),
            LinkType::LOOP => "loop".into(),
            LinkType::LINUX_SLL => "linux-sll".into(),
            LinkType::IPV4 => "ipv4".into(),
            LinkType::IPV6 => "ipv6".into(),
            LinkType::LINUX_SLL2 => "linux-sll2".into(),
            LinkType::FDDI => "fddi".into(),
            LinkType::IEEE802_11 => "802.11".into(),
            LinkType::PFLOG => "pflog".into(),
            LinkType::IEEE802_11_RADIOTAP => "802.11-radiotap".into(),
            LinkType::PPI => "ppi".into(),
            LinkType::NFLOG => "nflog".into(),
            LinkType::IPOIB => "ipoib".into(),
            LinkType::PKTAP => "pktap".into(),
            LinkType(n) => format!("linktype-{n}"),
        }
    }
}

pub(crate) mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const QINQ_OLD: u16 = 0x9100;
    pub const IPV6: u16 = 0x86dd;
    pub const PPPOE_SESSION: u16 = 0x8864;
    pub const MPLS_UC: u16 = 0x8847;
    pub const MPLS_MC: u16 = 0x8848;
    pub const TEB: u16 = 0x6558;
}

const MAX_VLAN_TAGS: usize = 8;
const MAX_MPLS_LABELS: usize = 16;

pub(crate) fn decode_link(cx: &mut Cx, link: LinkType, data: &[u8]) {
    match link {
        LinkType::ETHERNET => ethernet(cx, data),
        LinkType::RAW | LinkType::RAW_BSD12 | LinkType::RAW_BSD14 => {
            ip::by_version(cx, data, Layer::Link)
        }
        // As tshark does, by the version nibble: the corpus has IPv6 under LINKTYPE_IPV4.
        LinkType::IPV4 | LinkType::IPV6 => ip::by_version(cx, data, Layer::Link),
        LinkType::NULL | LinkType::LOOP => null_loopback(cx, link, data),
        LinkType::LINUX_SLL if data.len() >= 16 => by_ethertype(cx, be16(data, 14), &data[16..]),
        LinkType::LINUX_SLL2 if data.len() >= 20 => by_ethertype(cx, be16(data, 0), &data[20..]),
        LinkType::LINUX_SLL | LinkType::LINUX_SLL2 => truncated(cx),
        LinkType::PPP | LinkType::PPP_HDLC | LinkType::C_HDLC => ppp_like(cx, link, data),
        LinkType::PPP_ETHER => pppoe(cx, data),
        LinkType::FDDI => match data.get(13..) {
            Some(rest) => llc(cx, rest),
            None => truncated(cx),
        },
        LinkType::IEEE802_11 => wifi(cx, data),
        LinkType::IEEE802_11_RADIOTAP => radiotap(cx, data),
        LinkType::PPI | LinkType::PKTAP => meta_header(cx, link, data),
        LinkType::NFLOG => nflog(cx, data),
        LinkType::PFLOG => pflog(cx, data),
        LinkType::IPOIB => ipoib(cx, data),
        _ => cx
            .out
            .fail(DecodeError::new(Layer::Link, Reason::UnsupportedLinkType)),
    }
}

/// A radiotap header (version 0, its own length), then an 802.11 frame.
fn radiotap(cx: &mut Cx, data: &[u8]) {
    if data.len() < 8 {
        return truncated(cx);
    }
    let len = u16::from_le_bytes([data[2], data[3]]) as usize;
    if data[0] != 0 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Link, Reason::BadVersion));
    }
    if len < 8 || data.len() < len {
        return bad_header(cx);
    }
    wifi(cx, &data[len..])
}

/// PPI and PKTAP: a header with its own length and the link type of what
/// follows.
fn meta_header(cx: &mut Cx, link: LinkType, data: &[u8]) {
    if data.len() < 8 {
        return truncated(cx);
    }
    let len = if link == LinkType::PPI {
        u16::from_le_bytes([data[2], data[3]]) as usize
    } else {
        u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize
    };
    let dlt = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    if len < 8 || data.len() < len || dlt == LinkType::PPI.0 || dlt == LinkType::PKTAP.0 {
        return bad_header(cx);
    }
    decode_link(cx, LinkType(dlt), &data[len..])
}

/// OpenBSD's pflog: a header length (padded to 4), then the address family.
fn pflog(cx: &mut Cx, data: &[u8]) {
    if data.len() < 4 {
        return truncated(cx);
    }
    let len = (data[0] as usize).div_ceil(4) * 4;
    if len < 4 || data.len() < len {
        return bad_header(cx);
    }
    match data[1] {
        2 => ip::ipv4(cx, &data[len..]),
        10 | 24 | 28 | 30 => ip::ipv6(cx, &data[len..]),
        _ => non_ip(cx, 0),
    }
}

/// IPoIB: a 4-byte header (protocol, reserved), in Linux captures after 40
/// bytes of InfiniBand addresses.
fn ipoib(cx: &mut Cx, data: &[u8]) {
    let at = if data.len() >= 44 && matches!(be16(data, 40), ethertype::IPV4 | ethertype::IPV6) {
        40
    } else {
        0
    };
    if data.len() < at + 4 {
        return truncated(cx);
    }
    by_ethertype(cx, be16(data, at), &data[at + 4..])
}

fn truncated(cx: &mut Cx) {
    cx.out
        .fail(DecodeError::new(Layer::Link, Reason::Truncated))
}

fn bad_header(cx: &mut Cx) {
    cx.out
        .fail(DecodeError::new(Layer::Link, Reason::BadHeaderLength))
}

fn non_ip(cx: &mut Cx, ethertype: u16) {
    cx.out.kind = Kind::NonIp;
    cx.out.ethertype = ethertype;
}

/// 802.2 LLC: SNAP with an ethertype leads on; other SAPs (STP, NetBIOS...) are non-IP.
fn llc(cx: &mut Cx, data: &[u8]) {
    if data.len() >= 8 && data[0] == 0xaa && data[1] == 0xaa && data[2] == 0x03 {
        return by_ethertype(cx, be16(data, 6), &data[8..]);
    }
    non_ip(cx, 0)
}

/// IEEE 802.11: data frames through LLC/SNAP; management, control, null and
/// protected (encrypted) frames are non-IP.
fn wifi(cx: &mut Cx, data: &[u8]) {
    if data.len() < 2 {
        return truncated(cx);
    }
    let (fc0, fc1) = (data[0], data[1]);
    let (ftype, subtype) = ((fc0 >> 2) & 3, fc0 >> 4);
    if ftype != 2 || subtype & 0x4 != 0 || fc1 & 0x40 != 0 {
        return non_ip(cx, 0);
    }
    let mut hlen = 24;
    if fc1 & 0x03 == 0x03 {
        hlen += 6;
    }
    if subtype & 0x8 != 0 {
        hlen += 2;
        if fc1 & 0x80 != 0 {
            hlen += 4;
        }
    }
    match data.get(hlen..) {
        Some(rest) => llc(cx, rest),
        None => truncated(cx),
    }
}

/// Linux NFLOG: a 4-byte header, then TLVs; the payload TLV (type 9) is the IP packet.
fn nflog(cx: &mut Cx, data: &[u8]) {
    if data.len() < 4 {
        return truncated(cx);
    }
    let family = data[0];
    let mut rest = &data[4..];
    while rest.len() >= 4 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_le_bytes([rest[2], rest[3]]);
        if len < 4 {
            return bad_header(cx);
        }
        if kind == 9 {
            let p = &rest[4..len.min(rest.len())];
            return match family {
                2 => ip::ipv4(cx, p),
                10 => ip::ipv6(cx, p),
                _ => ip::by_version(cx, p, Layer::Link),
            };
        }
        let step = len.div_ceil(4) * 4;
        if step >= rest.len() {
            break;
        }
        rest = &rest[step..];
    }
    non_ip(cx, 0)
}

/// Ethernet II, and 802.3 with LLC/SNAP.
pub(crate) fn ethernet(cx: &mut Cx, data: &[u8]) {
    if data.len() < 14 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Link, Reason::Truncated));
    }
    let et = be16(data, 12);
    if et < 0x0600 {
        // 802.3 with a length field: LLC follows.
        return llc(cx, &data[14..]);
    }
    by_ethertype(cx, et, &data[14..])
}

/// Dispatches on an ethertype, through VLAN tags, PPPoE and MPLS.
pub(crate) fn by_ethertype(cx: &mut Cx, mut et: u16, mut rest: &[u8]) {
    let mut tags = 0;
    while matches!(et, ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD) {
        if tags == MAX_VLAN_TAGS {
            return cx.out.fail(DecodeError::new(Layer::Vlan, Reason::TooDeep));
        }
        if rest.len() < 4 {
            return cx
                .out
                .fail(DecodeError::new(Layer::Vlan, Reason::Truncated));
        }
        et = be16(rest, 2);
        rest = &rest[4..];
        tags += 1;
    }
    match et {
        ethertype::IPV4 => ip::ipv4(cx, rest),
        ethertype::IPV6 => ip::ipv6(cx, rest),
        ethertype::PPPOE_SESSION => pppoe(cx, rest),
        ethertype::MPLS_UC | ethertype::MPLS_MC => mpls(cx, rest),
        _ => {
            cx.out.kind = Kind::NonIp;
            cx.out.ethertype = et;
        }
    }
}

/// PPPoE session stage (RFC 2516): 6-byte header, then a PPP protocol field.
fn pppoe(cx: &mut Cx, data: &[u8]) {
    if data.len() < 8 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Pppoe, Reason::Truncated));
    }
    if data[0] != 0x11 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Pppoe, Reason::BadVersion));
    }
    ppp_proto(cx, be16(data, 6), &data[8..], Layer::Pppoe)
}

fn ppp_proto(cx: &mut Cx, proto: u16, rest: &[u8], layer: Layer) {
    match proto {
        0x0021 => ip::ipv4(cx, rest),
        0x0057 => ip::ipv6(cx, rest),
        0x0281 | 0x0283 => mpls(cx, rest),
        // LCP, IPCP, PAP, CHAP and other control protocols.
        p if p >= 0x8000 || p == 0x0031 => {
            cx.out.kind = Kind::NonIp;
            cx.out.ethertype = 0;
        }
        _ => cx.out.fail(DecodeError::new(layer, Reason::Unsupported)),
    }
}

/// PPP (RFC 1661) with optional HDLC address/control bytes, and Cisco HDLC.
fn ppp_like(cx: &mut Cx, link: LinkType, data: &[u8]) {
    if data.len() < 4 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Link, Reason::Truncated));
    }
    if link == LinkType::C_HDLC {
        return by_ethertype(cx, be16(data, 2), &data[4..]);
    }
    let (proto, rest) = if data[0] == 0xff && data[1] == 0x03 {
        (be16(data, 2), &data[4..])
    } else if data[0] & 1 == 1 {
        // Protocol-field compression: a one-byte protocol.
        (data[0] as u16, &data[1..])
    } else {
        (be16(data, 0), &data[2..])
    };
    ppp_proto(cx, proto, rest, Layer::Link)
}

/// BSD null (host byte order family) and OpenBSD loop (network byte order).
fn null_loopback(cx: &mut Cx, link: LinkType, data: &[u8]) {
    if data.len() < 4 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Link, Reason::Truncated));
    }
    let be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let family = if link == LinkType::LOOP || be < 0x100 {
        be
    } else {
        u32::from_le_bytes([data[0], data[1], data[2], data[3]])
    };
    let rest = &data[4..];
    match family {
        2 => ip::ipv4(cx, rest),
        // AF_INET6: 10 Linux, 24 NetBSD/OpenBSD, 28 FreeBSD, 30 Darwin.
        10 | 24 | 28 | 30 => ip::ipv6(cx, rest),
        _ => {
            cx.out.kind = Kind::NonIp;
            cx.out.ethertype = 0;
        }
    }
}

/// MPLS label stack; the payload after the bottom label is IPv4 or IPv6 by
/// its version nibble (pseudowire Ethernet is not guessed at).
fn mpls(cx: &mut Cx, mut data: &[u8]) {
    for _ in 0..MAX_MPLS_LABELS {
        if data.len() < 4 {
            return cx
                .out
                .fail(DecodeError::new(Layer::Mpls, Reason::Truncated));
        }
        let bottom = data[2] & 0x01 != 0;
        data = &data[4..];
        if bottom {
            if cx.out.tunnel.is_none() {
                cx.out.tunnel = Some(TunnelKind::Mpls);
            }
            return ip::by_version(cx, data, Layer::Mpls);
        }
    }
    cx.out.fail(DecodeError::new(Layer::Mpls, Reason::TooDeep))
}
