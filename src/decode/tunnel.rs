//! Tunnels decoded through to the inner transport: GRE (and ERSPAN I/II/III,
//! WCCP, PPTP), VXLAN, Geneve, GTP-U, IP-in-IP, 6in4 and Teredo.
//!
//! The port statistics count the innermost transport. When the inner packet
//! cannot be decoded to IP (a truncated or non-IP inner frame), the packet stays
//! attributed to the outer transport, and the inner failure is recorded.
use super::link::{self, ethertype, LinkType};
use super::{be16, ip, Cx, DecodeError, Kind, Layer, Reason, TunnelKind, MAX_TUNNEL_DEPTH};

/// Decodes `f` as the inside of a tunnel of kind `kind`.
fn inner(cx: &mut Cx, kind: TunnelKind, f: impl FnOnce(&mut Cx)) {
    if cx.depth >= MAX_TUNNEL_DEPTH {
        return cx
            .out
            .fail(DecodeError::new(Layer::Tunnel, Reason::TooDeep));
    }
    let saved = *cx.out;
    if cx.out.tunnel.is_none() {
        cx.out.tunnel = Some(kind);
    }
    cx.depth += 1;
    f(cx);
    cx.depth -= 1;
    if !matches!(
        cx.out.kind,
        Kind::Transport | Kind::Fragment | Kind::Icmp | Kind::OtherIp
    ) {
        let (err, tunnel) = (cx.out.error, cx.out.tunnel);
        *cx.out = saved;
        cx.out.error = err;
        cx.out.tunnel = tunnel;
    }
}

pub(crate) fn ip_in_ip(cx: &mut Cx, payload: &[u8], inner_v6: bool) {
    let kind = if inner_v6 && cx.out.ip_version == 4 {
        TunnelKind::SixInFour
    } else {
        TunnelKind::IpInIp
    };
    inner(cx, kind, |cx| {
        if inner_v6 {
            ip::ipv6(cx, payload)
        } else {
            ip::ipv4(cx, payload)
        }
    })
}

/// Stops decoding in the tunnel layer for `reason`.
fn fail(cx: &mut Cx, reason: Reason) {
    cx.out.fail(DecodeError::new(Layer::Tunnel, reason))
}

pub(crate) fn gre(cx: &mut Cx, data: &[u8]) {
    if data.len() < 4 {
        return fail(cx, Reason::Truncated);
    }
    let flags = be16(data, 0);
    let hlen = match gre_header_len(flags) {
        Ok(n) => n,
        Err(reason) => return fail(cx, reason),
    };
    if data.len() < hlen {
        return fail(cx, Reason::Truncated);
    }
    gre_payload(cx, be16(data, 2), flags & 0x1000 != 0, &data[hlen..])
}

/// A GRE header's length from its flags: version 0 (RFC 2784/2890, with
/// checksum, key and sequence number when flagged) or PPTP's enhanced GRE.
fn gre_header_len(flags: u16) -> Result<usize, Reason> {
    let (c, r, k, s) = (
        flags & 0x8000 != 0,
        flags & 0x4000 != 0,
        flags & 0x2000 != 0,
        flags & 0x1000 != 0,
    );
    match flags & 7 {
        // Source routing (RFC 1701) is obsolete and not decoded.
        0 if r => Err(Reason::Unsupported),
        0 => Ok(4 + 4 * (c as usize + k as usize + s as usize)),
        // PPTP's enhanced GRE (RFC 2637): key always present, optional ack.
        1 => Ok(8 + 4 * s as usize + 4 * (flags & 0x0080 != 0) as usize),
        _ => Err(Reason::BadVersion),
    }
}

/// What a GRE header of protocol type `proto` carries (`seq`: the sequence
/// number flag, which tells ERSPAN type II from type I).
fn gre_payload(cx: &mut Cx, proto: u16, seq: bool, rest: &[u8]) {
    match proto {
        ethertype::IPV4 => inner(cx, TunnelKind::Gre, |cx| ip::ipv4(cx, rest)),
        ethertype::IPV6 => inner(cx, TunnelKind::Gre, |cx| ip::ipv6(cx, rest)),
        ethertype::TEB => inner(cx, TunnelKind::Gre, |cx| link::ethernet(cx, rest)),
        ethertype::MPLS_UC | ethertype::MPLS_MC => inner(cx, TunnelKind::Gre, |cx| {
            link::by_ethertype(cx, proto, rest)
        }),
        // PPP inside PPTP.
        0x880b => inner(cx, TunnelKind::Gre, |cx| {
            link::decode_link(cx, LinkType::PPP, rest)
        }),
        // WCCP redirect: a 4-byte header, then IPv4.
        0x883e => {
            if rest.len() < 4 {
                return fail(cx, Reason::Truncated);
            }
            let r = if rest[0] >> 4 == 4 { rest } else { &rest[4..] };
            inner(cx, TunnelKind::Gre, |cx| {
                ip::by_version(cx, r, Layer::Tunnel)
            })
        }
        // ERSPAN type I (no sequence number, no header) and type II (8-byte header).
        0x88be => {
            let skip = if seq { 8 } else { 0 };
            if rest.len() < skip {
                return fail(cx, Reason::Truncated);
            }
            inner(cx, TunnelKind::Erspan, |cx| {
                link::ethernet(cx, &rest[skip..])
            })
        }
        // ERSPAN type III: 12-byte header, 8 more with the platform sub-header (O bit).
        0x22eb => {
            if rest.len() < 12 {
                return fail(cx, Reason::Truncated);
            }
            let skip = if rest[11] & 1 != 0 { 20 } else { 12 };
            if rest.len() < skip {
                return fail(cx, Reason::Truncated);
            }
            inner(cx, TunnelKind::Erspan, |cx| {
                link::ethernet(cx, &rest[skip..])
            })
        }
        _ => {
            if cx.out.tunnel.is_none() {
                cx.out.tunnel = Some(TunnelKind::Gre);
            }
            fail(cx, Reason::Unsupported)
        }
    }
}

pub(crate) const VXLAN_PORT: u16 = 4789;
pub(crate) const GENEVE_PORT: u16 = 6081;
pub(crate) const GTPU_PORT: u16 = 2152;
pub(crate) const TEREDO_PORT: u16 = 3544;
/// GRE-in-UDP (RFC 8086) and MPLS-in-UDP (RFC 7510).
pub(crate) const GRE_UDP_PORT: u16 = 4754;
pub(crate) const MPLS_UDP_PORT: u16 = 6635;

/// UDP payloads that are tunnels, recognised by port and checked by header.
/// A payload that does not look like the tunnel stays plain UDP.
pub(crate) fn udp_tunnel(cx: &mut Cx, sport: u16, dport: u16, p: &[u8]) {
    let on = |port| sport == port || dport == port;
    if on(VXLAN_PORT) {
        if p.len() >= 8 && p[0] & 0x08 != 0 {
            inner(cx, TunnelKind::Vxlan, |cx| link::ethernet(cx, &p[8..]));
        }
    } else if on(GENEVE_PORT) {
        if p.len() >= 8 && p[0] >> 6 == 0 {
            let hlen = 8 + (p[0] & 0x3f) as usize * 4;
            if p.len() < hlen {
                return cx
                    .out
                    .fail(DecodeError::new(Layer::Tunnel, Reason::Truncated));
            }
            let rest = &p[hlen..];
            match be16(p, 2) {
                ethertype::TEB => inner(cx, TunnelKind::Geneve, |cx| link::ethernet(cx, rest)),
                et => inner(cx, TunnelKind::Geneve, |cx| {
                    link::by_ethertype(cx, et, rest)
                }),
            }
        }
    } else if on(GTPU_PORT) {
        gtpu(cx, p)
    } else if on(TEREDO_PORT) {
        teredo(cx, p)
    } else if dport == GRE_UDP_PORT {
        gre(cx, p)
    } else if dport == MPLS_UDP_PORT {
        inner(cx, TunnelKind::Mpls, |cx| {
            link::by_ethertype(cx, ethertype::MPLS_UC, p)
        })
    }
}

/// GTP-U (3GPP TS 29.281): G-PDU messages carry an IP packet.
fn gtpu(cx: &mut Cx, p: &[u8]) {
    if p.len() < 8 || p[0] >> 5 != 1 || p[0] & 0x10 == 0 || p[1] != 0xff {
        return;
    }
    let mut hlen = 8;
    if p[0] & 0x07 != 0 {
        hlen = 12;
        if p.len() < hlen {
            return cx
                .out
                .fail(DecodeError::new(Layer::Tunnel, Reason::Truncated));
        }
        let mut next = if p[0] & 0x04 != 0 { p[11] } else { 0 };
        let mut guard = 0;
        while next != 0 {
            guard += 1;
            if guard > 16 {
                return cx
                    .out
                    .fail(DecodeError::new(Layer::Tunnel, Reason::TooDeep));
            }
            let Some(&len) = p.get(hlen) else {
                return cx
                    .out
                    .fail(DecodeError::new(Layer::Tunnel, Reason::Truncated));
            };
            if len == 0 {
                return cx
                    .out
                    .fail(DecodeError::new(Layer::Tunnel, Reason::BadHeaderLength));
            }
            let end = hlen + len as usize * 4;
            if p.len() < end {
                return cx
                    .out
                    .fail(DecodeError::new(Layer::Tunnel, Reason::Truncated));
            }
            next = p[end - 1];
            hlen = end;
        }
    }
    let rest = &p[hlen..];
    if rest.is_empty() {
        return;
    }
    inner(cx, TunnelKind::GtpU, |cx| {
        ip::by_version(cx, rest, Layer::Tunnel)
    })
}

/// Teredo (RFC 4380): IPv6 in UDP, optionally after authentication and
/// origin-indication headers.
fn teredo(cx: &mut Cx, mut p: &[u8]) {
    if p.len() >= 2 && p[0] == 0 && p[1] == 1 {
        if p.len() < 4 {
            return;
        }
        let skip = 4 + p[2] as usize + p[3] as usize + 9;
        if p.len() < skip {
            return;
        }
        p = &p[skip..];
    }
    if p.len() >= 2 && p[0] == 0 && p[1] == 0 {
        if p.len() < 8 {
            return;
        }
        p = &p[8..];
    }
    if p.len() < 40 || p[0] >> 4 != 6 {
        return;
    }
    inner(cx, TunnelKind::Teredo, |cx| ip::ipv6(cx, p))
}
