//! ICMP and ICMPv6; a "port unreachable" error's quoted header is read, as
//! evidence of a closed port.
use super::{be16, v4_mapped, Cx, DecodeError, Kind, Layer, Reason, Unreachable};

pub(crate) fn icmpv4(cx: &mut Cx, data: &[u8]) {
    cx.out.kind = Kind::Icmp;
    if data.len() < 8 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Icmp, Reason::Truncated));
    }
    // Type 3 (destination unreachable), code 3 (port unreachable).
    if data[0] == 3 && data[1] == 3 {
        let q = &data[8..];
        if q.len() < 20 || q[0] >> 4 != 4 {
            return;
        }
        let ihl = (q[0] & 0x0f) as usize * 4;
        if ihl < 20 || q.len() < ihl + 4 {
            return;
        }
        cx.out.unreachable = Unreachable {
            valid: true,
            proto: q[9],
            host: v4_mapped(&q[16..20]),
            port: be16(q, ihl + 2),
        };
    }
}

pub(crate) fn icmpv6(cx: &mut Cx, data: &[u8]) {
    cx.out.kind = Kind::Icmp;
    if data.len() < 8 {
        return cx
            .out
            .fail(DecodeError::new(Layer::Icmpv6, Reason::Truncated));
    }
    // Type 1 (destination unreachable), code 4 (port unreachable).
    if data[0] == 1 && data[1] == 4 {
        let q = &data[8..];
        if q.len() < 44 || q[0] >> 4 != 6 {
            return;
        }
        let mut host = [0u8; 16];
        host.copy_from_slice(&q[24..40]);
        cx.out.unreachable = Unreachable {
            valid: true,
            proto: q[6],
            host,
            port: be16(q, 42),
        };
    }
}
