//! Flow records as IPFIX messages (RFC 7011) for a NetFlow/IPFIX collector
//! (nfcapd, goflow2, ntopng, ElastiFlow...), with standard IANA information
//! elements only; docs/SCHEMA.md lists them.
//!
//! One record per direction, as softflowd exports: a flow's packets to the
//! server as client → server, its answers as server → client (a direction
//! with no packets gives no record). Both records carry the flow's first and
//! last packet times. `octetDeltaCount` carries portflow's byte counts,
//! which are frame lengths on the wire (link-layer header included), not the
//! IP lengths the element's definition names: an IP-level exporter such as
//! softflowd counts 14 bytes less per Ethernet packet (`layer2OctetDeltaCount`
//! would be exact, but nfdump and other collectors ignore it).
//! Two templates, IPv4 (256) and IPv6 (257), go in the
//! first message and again every [`TEMPLATE_EVERY`] messages, so a collector
//! that starts late or loses one learns them. A message stays under
//! [`MAX_MESSAGE`] bytes, one UDP datagram on any path.
use crate::decode::{mapped_v4, Addr};
use crate::stats::flow::FlowRecord;

/// The largest message built, in bytes (fits a 1,500-byte MTU with IP and
/// UDP headers, also over IPv6).
pub const MAX_MESSAGE: usize = 1400;
/// Messages between two copies of the templates.
pub const TEMPLATE_EVERY: u32 = 32;

const VERSION: u16 = 10;
const TEMPLATE_SET: u16 = 2;
const TEMPLATE_V4: u16 = 256;
const TEMPLATE_V6: u16 = 257;
const HEADER: usize = 16;
const SET_HEADER: usize = 4;

/// (information element id, length): the fields of a record after the two
/// addresses, in order.
const COMMON: [(u16, u16); 9] = [
    (7, 2),   // sourceTransportPort
    (11, 2),  // destinationTransportPort
    (4, 1),   // protocolIdentifier
    (6, 2),   // tcpControlBits
    (1, 8),   // octetDeltaCount
    (2, 8),   // packetDeltaCount
    (152, 8), // flowStartMilliseconds
    (153, 8), // flowEndMilliseconds
    (136, 1), // flowEndReason
];
/// sourceIPv4Address, destinationIPv4Address.
const V4_ADDRESSES: [(u16, u16); 2] = [(8, 4), (12, 4)];
/// sourceIPv6Address, destinationIPv6Address.
const V6_ADDRESSES: [(u16, u16); 2] = [(27, 16), (28, 16)];

/// Bytes of one data record of each template.
const fn record_len(addresses: &[(u16, u16); 2]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < COMMON.len() {
        n += COMMON[i].1 as usize;
        i += 1;
    }
    n + addresses[0].1 as usize + addresses[1].1 as usize
}
const V4_RECORD: usize = record_len(&V4_ADDRESSES);
/// Bytes of the template set: its header, and per template its id, field
/// count and a 4-byte specifier per field.
const TEMPLATE_SET_LEN: usize = SET_HEADER + 2 * (4 + 4 * (2 + COMMON.len()));
const V6_RECORD: usize = record_len(&V6_ADDRESSES);

/// One direction of a flow, as a record.
struct Record<'a> {
    src: &'a Addr,
    dst: &'a Addr,
    sport: u16,
    dport: u16,
    flow: &'a FlowRecord,
    packets: u64,
    bytes: u64,
    flags: u8,
}

/// Builds IPFIX messages of one exporter (observation domain `domain`),
/// numbering them as RFC 7011 says (the sequence number counts the data
/// records sent before each message).
pub struct Exporter {
    domain: u32,
    sequence: u32,
    messages: u32,
    /// Data records waiting, per template ([`TEMPLATES`]: IPv4, IPv6).
    pending: [Vec<u8>; 2],
}

/// The two templates: id and the bytes of one record.
const TEMPLATES: [(u16, usize); 2] = [(TEMPLATE_V4, V4_RECORD), (TEMPLATE_V6, V6_RECORD)];

impl Exporter {
    pub fn new(domain: u32) -> Exporter {
        Exporter {
            domain,
            sequence: 0,
            messages: 0,
            pending: [Vec::new(), Vec::new()],
        }
    }

    /// Adds `flow`'s records; hands every message that fills to `send`
    /// (with `now_s`, seconds since the epoch, as its export time).
    pub fn add(&mut self, flow: &FlowRecord, now_s: u32, send: &mut dyn FnMut(&[u8])) {
        let (client, cport) = flow.client();
        let (server, sport) = flow.server();
        let directions = [
            (
                &client,
                &server,
                cport,
                sport,
                flow.to_server,
                flow.tcp_flags[0],
            ),
            (
                &server,
                &client,
                sport,
                cport,
                flow.to_client,
                flow.tcp_flags[1],
            ),
        ];
        for (src, dst, sp, dp, count, flags) in directions {
            if count.packets == 0 {
                continue;
            }
            let r = Record {
                src,
                dst,
                sport: sp,
                dport: dp,
                flow,
                packets: count.packets,
                bytes: count.bytes,
                flags,
            };
            self.push(&r, now_s, send);
        }
    }

    fn push(&mut self, r: &Record, now_s: u32, send: &mut dyn FnMut(&[u8])) {
        let v4 = mapped_v4(r.src).is_some() && mapped_v4(r.dst).is_some();
        let t = usize::from(!v4);
        // Room for the templates too: whether the next message carries them
        // depends on the other template's messages in between.
        let room = MAX_MESSAGE - HEADER - SET_HEADER - TEMPLATE_SET_LEN;
        if self.pending[t].len() + TEMPLATES[t].1 > room {
            self.flush_one(t, now_s, send);
        }
        let address = if v4 { 12.. } else { 0.. };
        let buf = &mut self.pending[t];
        buf.extend_from_slice(&r.src[address.clone()]);
        buf.extend_from_slice(&r.dst[address]);
        let f = r.flow;
        buf.extend_from_slice(&r.sport.to_be_bytes());
        buf.extend_from_slice(&r.dport.to_be_bytes());
        buf.push(f.key.transport.ip_proto());
        buf.extend_from_slice(&(r.flags as u16).to_be_bytes());
        buf.extend_from_slice(&r.bytes.to_be_bytes());
        buf.extend_from_slice(&r.packets.to_be_bytes());
        buf.extend_from_slice(&(f.first_ns / 1_000_000).to_be_bytes());
        buf.extend_from_slice(&(f.last_ns / 1_000_000).to_be_bytes());
        buf.push(f.end as u8);
    }

    /// Sends the records waiting for template `t` ([`TEMPLATES`]) as one
    /// message.
    fn flush_one(&mut self, t: usize, now_s: u32, send: &mut dyn FnMut(&[u8])) {
        let records = std::mem::take(&mut self.pending[t]);
        if records.is_empty() {
            return;
        }
        let (id, record_len) = TEMPLATES[t];
        let n = (records.len() / record_len) as u32;
        let mut m = Vec::with_capacity(MAX_MESSAGE);
        m.extend_from_slice(&VERSION.to_be_bytes());
        m.extend_from_slice(&[0, 0]); // length, below
        m.extend_from_slice(&now_s.to_be_bytes());
        m.extend_from_slice(&self.sequence.to_be_bytes());
        m.extend_from_slice(&self.domain.to_be_bytes());
        if self.messages.is_multiple_of(TEMPLATE_EVERY) {
            m.extend_from_slice(&template_set());
        }
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&((SET_HEADER + records.len()) as u16).to_be_bytes());
        m.extend_from_slice(&records);
        let len = m.len() as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        send(&m);
        self.sequence = self.sequence.wrapping_add(n);
        self.messages = self.messages.wrapping_add(1);
    }

    /// Sends every record still waiting.
    pub fn flush(&mut self, now_s: u32, send: &mut dyn FnMut(&[u8])) {
        self.flush_one(0, now_s, send);
        self.flush_one(1, now_s, send);
    }

    /// Data records handed over so far.
    pub fn records(&self) -> u32 {
        self.sequence
    }
}

/// The template set: both templates.
fn template_set() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&TEMPLATE_SET.to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    for (id, addresses) in [(TEMPLATE_V4, V4_ADDRESSES), (TEMPLATE_V6, V6_ADDRESSES)] {
        s.extend_from_slice(&id.to_be_bytes());
        let fields = addresses.len() + COMMON.len();
        s.extend_from_slice(&(fields as u16).to_be_bytes());
        for (ie, len) in addresses.iter().chain(COMMON.iter()) {
            s.extend_from_slice(&ie.to_be_bytes());
            s.extend_from_slice(&len.to_be_bytes());
        }
    }
    let len = s.len() as u16;
    s[2..4].copy_from_slice(&len.to_be_bytes());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;
    use crate::services::Transport;
    use crate::stats::flow::{ConnState, EndReason, FlowKey};
    use crate::stats::Count;

    fn flow(i: u16, v6: bool) -> FlowRecord {
        let (c, s) = if v6 {
            let mut a = [0u8; 16];
            a[0] = 0x20;
            a[15] = 1;
            let mut b = a;
            b[15] = 2;
            (a, b)
        } else {
            (v4_mapped(&[10, 0, 0, 1]), v4_mapped(&[10, 0, 0, 2]))
        };
        let (key, from_lo) = FlowKey::new(Transport::Tcp, c, 40000 + i, s, 443);
        FlowRecord {
            key,
            server_is_lo: !from_lo,
            first_ns: 1_700_000_000_123_000_000,
            last_ns: 1_700_000_001_456_000_000,
            to_server: Count {
                packets: 5,
                bytes: 500,
            },
            to_client: Count {
                packets: if i.is_multiple_of(2) { 4 } else { 0 },
                bytes: 4000,
            },
            state: ConnState::SF,
            detected: None,
            cleartext: 0,
            end: EndReason::EndOfFlow,
            tcp_flags: [0x03, 0x13],
        }
    }

    /// Walks a message's sets: (set id, set body) in order, checking lengths.
    fn sets(m: &[u8]) -> Vec<(u16, Vec<u8>)> {
        assert_eq!(u16::from_be_bytes([m[0], m[1]]), 10);
        assert_eq!(u16::from_be_bytes([m[2], m[3]]) as usize, m.len());
        let mut at = HEADER;
        let mut out = Vec::new();
        while at < m.len() {
            let id = u16::from_be_bytes([m[at], m[at + 1]]);
            let len = u16::from_be_bytes([m[at + 2], m[at + 3]]) as usize;
            assert!(len >= SET_HEADER && at + len <= m.len());
            out.push((id, m[at + SET_HEADER..at + len].to_vec()));
            at += len;
        }
        out
    }

    #[test]
    fn messages_hold_whole_records_numbered_with_templates_first_and_again() {
        let mut e = Exporter::new(7);
        let mut messages = Vec::new();
        let mut send = |m: &[u8]| messages.push(m.to_vec());
        for i in 0..2000 {
            e.add(&flow(i, i.is_multiple_of(3)), 1_700_000_002, &mut send);
        }
        e.flush(1_700_000_002, &mut send);
        // 2,000 flows, 1,000 of which answered: 3,000 records.
        assert_eq!(e.records(), 3000);
        let (mut seq, mut records) = (0u32, 0u32);
        for (n, m) in messages.iter().enumerate() {
            assert!(m.len() <= MAX_MESSAGE);
            assert_eq!(
                u32::from_be_bytes(m[8..12].try_into().unwrap()),
                seq,
                "message {n}"
            );
            assert_eq!(u32::from_be_bytes(m[12..16].try_into().unwrap()), 7);
            let s = sets(m);
            let templates = s.iter().filter(|(id, _)| *id == TEMPLATE_SET).count();
            assert_eq!(
                templates,
                usize::from((n as u32).is_multiple_of(TEMPLATE_EVERY)),
                "message {n}"
            );
            for (id, body) in &s {
                let len = match *id {
                    TEMPLATE_V4 => V4_RECORD,
                    TEMPLATE_V6 => V6_RECORD,
                    _ => continue,
                };
                assert_eq!(body.len() % len, 0);
                seq += (body.len() / len) as u32;
                records += (body.len() / len) as u32;
            }
        }
        assert_eq!(records, 3000);
    }

    #[test]
    fn a_v4_record_says_who_sent_what() {
        let mut e = Exporter::new(1);
        let mut messages = Vec::new();
        e.add(&flow(0, false), 5, &mut |m: &[u8]| {
            messages.push(m.to_vec())
        });
        e.flush(5, &mut |m: &[u8]| messages.push(m.to_vec()));
        let s = sets(&messages[0]);
        let (_, data) = s.iter().find(|(id, _)| *id == TEMPLATE_V4).unwrap();
        assert_eq!(data.len(), 2 * V4_RECORD);
        let r = &data[..V4_RECORD];
        assert_eq!(&r[0..4], &[10, 0, 0, 1], "client to server first");
        assert_eq!(&r[4..8], &[10, 0, 0, 2]);
        assert_eq!(u16::from_be_bytes([r[8], r[9]]), 40000);
        assert_eq!(u16::from_be_bytes([r[10], r[11]]), 443);
        assert_eq!(r[12], 6);
        assert_eq!(u16::from_be_bytes([r[13], r[14]]), 0x03);
        assert_eq!(u64::from_be_bytes(r[15..23].try_into().unwrap()), 500);
        assert_eq!(u64::from_be_bytes(r[23..31].try_into().unwrap()), 5);
        assert_eq!(
            u64::from_be_bytes(r[31..39].try_into().unwrap()),
            1_700_000_000_123
        );
        assert_eq!(r[47], EndReason::EndOfFlow as u8);
        assert_eq!(template_set().len(), TEMPLATE_SET_LEN);
        let t = &s[0].1;
        // Template 256: 11 fields, the first sourceIPv4Address (8) of 4 bytes.
        assert_eq!(&t[0..8], &[1, 0, 0, 11, 0, 8, 0, 4]);
    }
}
