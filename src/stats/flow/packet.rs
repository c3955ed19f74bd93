//! The per-packet record a worker accounts: what the pipeline's reader
//! decoded of one packet, with the reader's hints, or a sweep marker.
use super::FlowKey;

/// One packet as a worker accounts it (64 bytes: a batch of 1,024 is 64 KiB).
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowPacket {
    pub key: FlowKey,
    pub ts: u64,
    pub wire_len: u32,
    /// The packet travels from `key.lo` to `key.hi`.
    pub from_lo: bool,
    pub tcp_flags: u8,
    /// [`HINT_FRESH`], or what a record that is not a packet is ([`CONTROL`]).
    pub hints: u8,
    /// Where the packet's payload prefix (at most
    /// [`INSPECT_BYTES`](crate::inspect::INSPECT_BYTES)) is in the bytes handed
    /// over with the record, and its length (0: none, or not handed over).
    pub payload_at: u32,
    pub payload_len: u16,
    /// The low half of `key.shard_hash()` ([`crate::stats::flowmap::key_hash`]),
    /// computed once by the reader; the worker's table is keyed by it.
    pub hash: u32,
}

/// Which endpoint of a new flow has been seen answering a handshake (a
/// SYN-ACK source), as the flow's table knows: the server when the flow
/// starts without one ([`super::lo_is_server`]).
pub const KNOWN_LO_SERVER: u8 = 1;
pub const KNOWN_HI_SERVER: u8 = 2;
/// The reader saw the flow's first packet (or one that took the flow's slot in
/// its first-packets table): the flow is most likely new to the worker, which
/// then fetches the per-flow part of both ports' statistics early. Only speed
/// depends on it.
pub const HINT_FRESH: u8 = 4;
/// Not a packet: endpoint `key.lo`:`key.lo_port` answered a handshake (a
/// SYN-ACK) in a flow another worker owns. Sent to every other worker at
/// the SYN-ACK's place in the packet sequence, so every table learns the
/// same servers in the same order whatever the number of workers.
pub const SERVER: u8 = 0x20;
/// Not a packet: end the flows idle at `ts` (sent by the reader to every
/// worker at the same point of the packet sequence, so which flows end does
/// not depend on how flows are spread over workers).
pub const SWEEP: u8 = 0x80;
/// Not a packet: the place of a later IP fragment whose ports become known
/// only after the packets before it (reading on several threads); the
/// pipeline puts the packet there, and a table skips the record.
pub const LATER_FRAGMENT: u8 = 0x10;
/// The records that are not packets.
pub const CONTROL: u8 = SWEEP | SERVER | LATER_FRAGMENT;

impl FlowPacket {
    /// A packet record with its hash filled in (for tests and benchmarks; the
    /// reader fills the fields itself).
    pub fn new(key: FlowKey, from_lo: bool, ts: u64, wire_len: u32, tcp_flags: u8) -> FlowPacket {
        FlowPacket {
            key,
            ts,
            wire_len,
            from_lo,
            tcp_flags,
            hash: crate::stats::flowmap::key_hash(&key),
            ..FlowPacket::default()
        }
    }

    /// The payload prefix this record carries, from the payload bytes handed
    /// over with it (empty for most packets).
    #[inline]
    pub fn payload<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        let at = self.payload_at as usize;
        bytes.get(at..at + self.payload_len as usize).unwrap_or(&[])
    }

    /// Whether this record is a packet (not a control record).
    #[inline]
    pub fn is_packet(&self) -> bool {
        self.hints & CONTROL == 0
    }

    /// A record telling a worker that `addr`:`port` answered a handshake ([`SERVER`]).
    pub fn server(addr: crate::decode::Addr, port: u16) -> FlowPacket {
        let key = FlowKey {
            lo: addr,
            lo_port: port,
            ..FlowKey::default()
        };
        FlowPacket {
            key,
            hints: SERVER,
            ..FlowPacket::default()
        }
    }

    /// A marker that ends the flows idle at packet time `ts`.
    pub fn sweep_marker(ts: u64) -> FlowPacket {
        FlowPacket {
            ts,
            hints: SWEEP,
            ..FlowPacket::default()
        }
    }
}
