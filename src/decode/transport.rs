//! TCP, UDP (and the UDP tunnels it leads to), SCTP and DCCP ports.
use super::{be16, tunnel, Cx, DecodeError, Kind, Layer, Reason};

pub(crate) fn tcp(cx: &mut Cx, data: &[u8]) {
    if data.len() < 4 {
        return cx.out.fail(DecodeError::new(Layer::Tcp, Reason::Truncated));
    }
    set_ports(cx, data);
    if data.len() < 14 {
        // Ports are known, flags are not: the packet still counts for its flow.
        return cx.out.fail(DecodeError::new(Layer::Tcp, Reason::Truncated));
    }
    cx.out.tcp_flags = data[13];
    let doff = (data[12] >> 4) as usize * 4;
    if doff < 20 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Tcp, Reason::BadHeaderLength));
    }
    if data.len() < doff {
        if !cx.ip_cut {
            // The datagram is all there and its TCP header claims more.
            return cx
                .out
                .fail(DecodeError::new(Layer::Tcp, Reason::BadHeaderLength));
        }
        // Cut short by the snaplen inside options: no payload to point at.
        cx.out.payload_offset = cx.offset_of(data) + data.len() as u32;
        cx.out.payload_len = 0;
        return;
    }
    set_payload(cx, &data[doff..]);
}

pub(crate) fn udp(cx: &mut Cx, data: &[u8]) {
    if data.len() < 4 {
        return cx.out.fail(DecodeError::new(Layer::Udp, Reason::Truncated));
    }
    set_ports(cx, data);
    if data.len() < 8 {
        return cx.out.fail(DecodeError::new(Layer::Udp, Reason::Truncated));
    }
    let payload = &data[8..];
    set_payload(cx, payload);
    let (sp, dp) = (cx.out.sport, cx.out.dport);
    tunnel::udp_tunnel(cx, sp, dp, payload);
}

/// Transports of which portflow reads only the two ports (SCTP, DCCP).
pub(crate) fn ports(cx: &mut Cx, data: &[u8], layer: Layer, header_len: usize) {
    if data.len() < 4 {
        return cx.out.fail(DecodeError::new(layer, Reason::Truncated));
    }
    set_ports(cx, data);
    if data.len() >= header_len {
        set_payload(cx, &data[header_len..]);
    }
}

#[inline]
fn set_ports(cx: &mut Cx, data: &[u8]) {
    let o = &mut *cx.out;
    o.kind = Kind::Transport;
    o.sport = be16(data, 0);
    o.dport = be16(data, 2);
    o.tcp_flags = 0;
}

#[inline]
fn set_payload(cx: &mut Cx, payload: &[u8]) {
    cx.out.payload_offset = cx.offset_of(payload);
    cx.out.payload_len = payload.len() as u32;
}
