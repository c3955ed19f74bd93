//! Signatures of protocols over UDP (DHCP, DTLS, QUIC, SIP, BitTorrent, DNS,
//! NTP), and the DNS message check TCP shares.
use super::bytes::{be16, be32, find_ci};
use super::{tcp::sip_or_http, Guess, Protocol, INSPECT_BYTES};

/// The protocol one UDP payload prefix names.
pub(super) fn identify(p: &[u8]) -> Option<Guess> {
    let strong = |x| Some((x, true));
    if dhcp(p) {
        return strong(Protocol::Dhcp);
    }
    if dtls_record(p) {
        return strong(Protocol::Tls);
    }
    if let Some(g) = quic(p) {
        return Some(g);
    }
    if let Some(g) = sip_or_http(true, p).or_else(|| sip_or_http(false, p)) {
        if g.0 == Protocol::Sip {
            return Some(g);
        }
    }
    if bittorrent_udp(p) {
        return strong(Protocol::Bittorrent);
    }
    if dns_message(p) {
        return strong(Protocol::Dns);
    }
    if ike(p) {
        return None; // IKE headers can pass for NTP
    }
    ntp(p)
}

/// An ISAKMP/IKE header: version 1.0 or 2.0, a known exchange type and a
/// length equal to the datagram (after an optional non-ESP marker).
fn ike(p: &[u8]) -> bool {
    let p = if p.len() >= 4 && p[..4] == [0, 0, 0, 0] {
        &p[4..]
    } else {
        p
    };
    p.len() >= 28
        && matches!(p[17], 0x10 | 0x20)
        && matches!(p[18], 1..=5 | 32..=37)
        && be32(p, 24) as usize == p.len()
}

/// A DTLS 1.0/1.2 record (content type, version FEFF/FEFD, epoch, sequence,
/// length): TLS over UDP, reported as `tls`.
fn dtls_record(p: &[u8]) -> bool {
    p.len() >= 13
        && (20..=25).contains(&p[0])
        && p[1] == 0xfe
        && matches!(p[2], 0xff | 0xfd | 0xfc)
        && (13 + be16(p, 11) as usize <= p.len() || p.len() == INSPECT_BYTES)
        && be16(p, 11) > 0
}

/// A DNS message: a sane header and a question (or, for multicast DNS
/// announcements, a first answer) whose name parses.
pub(super) fn dns_message(p: &[u8]) -> bool {
    if p.len() < 12 {
        return false;
    }
    let flags = be16(p, 2);
    let opcode = (flags >> 11) & 0xf;
    let z = flags & 0x0040;
    let (qd, an, ns, ar) = (be16(p, 4), be16(p, 6), be16(p, 8), be16(p, 10));
    if opcode > 6 || opcode == 3 || z != 0 || an > 256 || ns > 256 || ar > 256 {
        return false;
    }
    let is_response = flags & 0x8000 != 0;
    if !(qd == 1 || (qd == 0 && is_response && an >= 1)) {
        return false;
    }
    let Some(end) = dns_name(p, 12) else {
        return false;
    };
    if end + 4 > p.len() {
        return false;
    }
    let (qtype, class) = (be16(p, end), be16(p, end + 2) & 0x7fff);
    qtype != 0 && matches!(class, 1 | 3 | 4 | 254 | 255)
}

/// Where a (possibly compressed) domain name starting at `at` ends.
fn dns_name(p: &[u8], mut at: usize) -> Option<usize> {
    let mut total = 0;
    loop {
        let l = *p.get(at)? as usize;
        if l == 0 {
            return Some(at + 1);
        }
        if l & 0xc0 == 0xc0 {
            p.get(at + 1)?;
            return (((l & 0x3f) << 8 | p[at + 1] as usize) < at).then_some(at + 2);
        }
        if l > 63 {
            return None;
        }
        let label = p.get(at + 1..at + 1 + l)?;
        if !label.iter().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'*' | b'.' | b' ' | b'\'')
                || *b >= 0x80
        }) {
            return None;
        }
        total += l + 1;
        if total > 255 {
            return None;
        }
        at += 1 + l;
    }
}

/// A BOOTP/DHCP message with the DHCP magic cookie.
fn dhcp(p: &[u8]) -> bool {
    p.len() >= 240
        && matches!(p[0], 1 | 2)
        && p[2] <= 16
        && p[3] <= 16
        && be32(p, 236) == 0x6382_5363
}

/// A QUIC long-header packet of a known version (v1, v2, drafts, Google QUIC)
/// with sane connection ID lengths, or a version negotiation.
fn quic(p: &[u8]) -> Option<Guess> {
    if p.len() < 7 || p[0] & 0x80 == 0 {
        return None;
    }
    let version = be32(p, 1);
    let known = version == 1
        || version == 0x6b33_43cf
        || version >> 8 == 0xff_0000
        || (version & 0xffff_ff00 == 0x5130_3400 || version & 0xffff_ff00 == 0x5130_3500);
    let negotiation = version == 0;
    if !(known || negotiation) {
        return None;
    }
    if known && p[0] & 0x40 == 0 && version >> 24 != 0x51 {
        return None; // the fixed bit
    }
    if version >> 24 == 0x51 {
        return Some((Protocol::Quic, p.len() >= 1200));
    }
    let dcid = p[5] as usize;
    let scid_at = 6 + dcid;
    let scid = *p.get(scid_at)? as usize;
    if dcid > 20 || scid > 20 || scid_at + 1 + scid > p.len() {
        return None;
    }
    if negotiation {
        let rest = p.len() - scid_at - 1 - scid;
        return (rest >= 4 && rest.is_multiple_of(4)).then_some((Protocol::Quic, false));
    }
    Some((Protocol::Quic, true))
}

/// The BitTorrent DHT (bencoded KRPC) or a UDP tracker connect request.
fn bittorrent_udp(p: &[u8]) -> bool {
    if p.len() >= 16 && be32(p, 0) == 0x417 && be32(p, 4) == 0x2710_1980 && be32(p, 8) == 0 {
        return true;
    }
    p.first() == Some(&b'd')
        && p.len() >= 20
        && find_ci(&p[..p.len().min(48)], b"2:id20:").is_some()
        && (find_ci(p, b"1:y1:q").is_some()
            || find_ci(p, b"1:y1:r").is_some()
            || find_ci(p, b"1:y1:e").is_some())
}

/// NTP: modes 1-5 (time), 6 (control, ntpq) or 7 (private, ntpdc `monlist`).
fn ntp(p: &[u8]) -> Option<Guess> {
    let b = *p.first()?;
    let (vn, mode) = ((b >> 3) & 7, b & 7);
    if !(1..=4).contains(&vn) {
        return None;
    }
    match mode {
        1..=5 if p.len() >= 48 && (p.len() - 48).is_multiple_of(4) && p.len() <= 48 + 4 * 64 => {
            let (stratum, poll) = (p[1], p[2] as i8);
            let transmit = be32(p, 40) | be32(p, 44);
            // Root delay and dispersion are seconds in 16.16 fixed point: a
            // real clock's are well under 16 s.
            let (delay, dispersion) = (be32(p, 4), be32(p, 8));
            (stratum <= 16
                && (-6..=17).contains(&poll)
                && transmit != 0
                && delay < 0x0010_0000
                && dispersion < 0x0010_0000)
                .then_some((Protocol::Ntp, true))
        }
        6 if p.len() >= 12 && p[1] & 0x1f != 0 && (p.len() - 12).is_multiple_of(4) => {
            Some((Protocol::Ntp, false))
        }
        7 if p.len() >= 8 && matches!(p[2], 0..=3) => Some((Protocol::Ntp, false)),
        _ => None,
    }
}
