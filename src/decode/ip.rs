//! IPv4 (with options) and IPv6 (with extension headers), fragments, and the
//! dispatch to transports, ICMP and IP-level tunnels.
use super::{be16, be32, icmp, transport, tunnel, v4_mapped, Cx, DecodeError, Kind, Layer, Reason};

/// Extension headers followed at most. Each takes 8 bytes or more, so the
/// packet's length bounds the walk anyway; this only caps the work.
const MAX_EXT_HEADERS: usize = 1024;

pub(crate) fn by_version(cx: &mut Cx, data: &[u8], layer: Layer) {
    match data.first().map(|b| b >> 4) {
        Some(4) => ipv4(cx, data),
        Some(6) => ipv6(cx, data),
        Some(_) => cx.out.fail(DecodeError::new(layer, Reason::BadVersion)),
        None => cx.out.fail(DecodeError::new(layer, Reason::Truncated)),
    }
}

/// Always inlined, as is [`payload_dispatch`]: IPv4 is most packets, and the
/// calls would cost more than some of the work.
#[inline(always)]
pub(crate) fn ipv4(cx: &mut Cx, data: &[u8]) {
    if data.len() < 20 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Ipv4, Reason::Truncated));
    }
    if data[0] >> 4 != 4 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Ipv4, Reason::BadVersion));
    }
    let ihl = ((data[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Ipv4, Reason::BadHeaderLength));
    }
    if data.len() < ihl {
        return cx
            .out
            .fail(DecodeError::new(Layer::Ipv4, Reason::Truncated));
    }
    let total = be16(data, 2) as usize;
    // A zero total length happens with TCP segmentation offload on the sender's
    // side of a capture; take the captured bytes as the datagram then.
    let end = if total == 0 {
        data.len()
    } else if total < ihl {
        return cx
            .out
            .fail(DecodeError::new(Layer::Ipv4, Reason::BadLength));
    } else {
        total.min(data.len())
    };
    cx.ip_cut = total == 0 || total > data.len();
    let o = &mut *cx.out;
    o.kind = Kind::OtherIp;
    o.ip_version = 4;
    // An outer transport's payload (a tunnel's) is not this packet's.
    o.payload_offset = 0;
    o.payload_len = 0;
    o.src = v4_mapped(&data[12..16]);
    o.dst = v4_mapped(&data[16..20]);
    o.proto = data[9];
    let ff = be16(data, 6);
    let offset = ff & 0x1fff;
    let more = ff & 0x2000 != 0;
    o.frag = super::Frag {
        is_fragment: more || offset != 0,
        first: offset == 0,
        id: be16(data, 4) as u32,
    };
    let payload = &data[ihl..end];
    if offset != 0 {
        o.kind = Kind::Fragment;
        return;
    }
    payload_dispatch(cx, data[9], payload, 4)
}

pub(crate) fn ipv6(cx: &mut Cx, data: &[u8]) {
    if data.len() < 40 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Ipv6, Reason::Truncated));
    }
    if data[0] >> 4 != 6 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Ipv6, Reason::BadVersion));
    }
    let plen = be16(data, 4) as usize;
    // Payload length 0 is a jumbogram (or TSO); use what was captured.
    let end = if plen == 0 {
        data.len()
    } else {
        (40 + plen).min(data.len())
    };
    cx.ip_cut = plen == 0 || 40 + plen > data.len();
    let o = &mut *cx.out;
    o.kind = Kind::OtherIp;
    o.ip_version = 6;
    o.payload_offset = 0;
    o.payload_len = 0;
    o.src.copy_from_slice(&data[8..24]);
    o.dst.copy_from_slice(&data[24..40]);
    o.frag = super::Frag::default();
    let mut next = data[6];
    let mut rest = &data[40..end];
    for _ in 0..MAX_EXT_HEADERS {
        cx.out.proto = next;
        match next {
            // Hop-by-hop, routing, destination options, HIP, shim6,
            // experimental, authentication (the mobility header, 135, ends
            // the chain: it carries no payload).
            0 | 43 | 60 | 139 | 140 | 253 | 254 | 51 => {
                let Some(len) = ext_header_len(next, rest) else {
                    return cx
                        .out
                        .fail(DecodeError::new(Layer::Ipv6, Reason::Truncated));
                };
                next = rest[0];
                rest = &rest[len..];
            }
            // Fragment header: 8 bytes.
            44 => {
                if rest.len() < 8 {
                    return cx
                        .out
                        .fail(DecodeError::new(Layer::Ipv6, Reason::Truncated));
                }
                let off = be16(rest, 2) >> 3;
                let more = rest[3] & 1 != 0;
                cx.out.frag = super::Frag {
                    is_fragment: more || off != 0,
                    first: off == 0,
                    id: be32(rest, 4),
                };
                next = rest[0];
                rest = &rest[8..];
                if off != 0 {
                    cx.out.proto = next;
                    cx.out.kind = Kind::Fragment;
                    return;
                }
            }
            _ => return payload_dispatch(cx, next, rest, 6),
        }
    }
    cx.out.fail(DecodeError::new(Layer::Ipv6, Reason::TooDeep))
}

/// The length of IPv6 extension header `next` at the start of `rest`, from
/// its own length field (in 4-byte units plus 2 for the authentication
/// header, 8-byte units plus 1 for the others); `None` when `rest` does not
/// hold it whole.
#[inline]
fn ext_header_len(next: u8, rest: &[u8]) -> Option<usize> {
    if rest.len() < 8 {
        return None;
    }
    let len = if next == 51 {
        (rest[1] as usize + 2) * 4
    } else {
        (rest[1] as usize + 1) * 8
    };
    (len <= rest.len()).then_some(len)
}

/// The payload of an IP header (first fragment or whole datagram).
#[inline(always)]
fn payload_dispatch(cx: &mut Cx, proto: u8, payload: &[u8], version: u8) {
    cx.out.proto = proto;
    match proto {
        6 => transport::tcp(cx, payload),
        17 => transport::udp(cx, payload),
        132 => transport::ports(cx, payload, Layer::Sctp, 12),
        33 => transport::ports(cx, payload, Layer::Dccp, 16),
        1 if version == 4 => icmp::icmpv4(cx, payload),
        58 => icmp::icmpv6(cx, payload),
        // IPsec AH (RFC 4302) authenticates without encrypting: step over it.
        51 => {
            if payload.len() < 8 || payload.len() < (payload[1] as usize + 2) * 4 {
                let layer = if version == 4 {
                    Layer::Ipv4
                } else {
                    Layer::Ipv6
                };
                return cx.out.fail(DecodeError::new(layer, Reason::Truncated));
            }
            let len = (payload[1] as usize + 2) * 4;
            if payload[0] == 51 {
                // AH in AH: not decoded further (bounds the recursion).
                return;
            }
            payload_dispatch(cx, payload[0], &payload[len..], version)
        }
        4 => tunnel::ip_in_ip(cx, payload, false),
        41 => tunnel::ip_in_ip(cx, payload, true),
        47 => tunnel::gre(cx, payload),
        _ => {}
    }
}
