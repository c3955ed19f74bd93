//! How packets cross from the reader to a worker: batches of packet records
//! with the payload prefixes some of them carry, made up front and recycled.
use crate::inspect::INSPECT_BYTES;
use crate::stats::flow::FlowPacket;

/// Packets per batch handed to a worker.
pub const BATCH: usize = 1024;

/// A batch of packet records and the payload prefixes some of them carry
/// ([`FlowPacket::payload`]).
#[derive(Debug, Default)]
pub struct Batch {
    pub pkts: Vec<FlowPacket>,
    pub bytes: Vec<u8>,
}

impl Batch {
    /// Room for `n` packets and the most payload bytes they can carry
    /// ([`INSPECT_BYTES`] each): reserved, not touched, so only the bytes a
    /// batch really carries become resident, and it never grows.
    pub fn with_capacity(n: usize) -> Batch {
        Batch {
            pkts: Vec::with_capacity(n),
            bytes: Vec::with_capacity(n * INSPECT_BYTES),
        }
    }

    pub fn clear(&mut self) {
        self.pkts.clear();
        self.bytes.clear();
    }

    pub fn len(&self) -> usize {
        self.pkts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pkts.is_empty()
    }
}
