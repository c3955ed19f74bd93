//! Flows: the per-packet record a worker accounts, which side is the
//! service, per-flow state, idle timeouts, a bounded table, and what a flow
//! contributes when it ends.
//!
//! A worker owns one [`FlowTable`] and its port statistics; the pipeline's
//! reader shards packets by a symmetric flow hash ([`FlowKey::shard_hash`]),
//! so both directions of a flow meet in one table.
//!
//! - `key`: the canonical flow key and its hash;
//! - `packet`: the per-packet record, and the records that are not packets;
//! - `server`: which side is the service, and the servers seen answering;
//! - `state`: one flow's counters, TCP history, Zeek state and timeouts;
//! - `table`: accounting packets into flows and ports;
//! - `evict`: making room in a full table;
//! - `ending`: what a flow contributes when it ends, and the end of input.

mod community_id;
mod ending;
mod evict;
mod key;
mod packet;
mod server;
mod state;
mod table;

#[cfg(test)]
mod tests;

pub use community_id::community_id;
pub use ending::{EndReason, FlowRecord};
pub use key::FlowKey;
pub use packet::{
    FlowPacket, CONTROL, HINT_FRESH, KNOWN_HI_SERVER, KNOWN_LO_SERVER, LATER_FRAGMENT, SERVER,
    SWEEP,
};
pub use server::{lo_is_server, server_score, KnownServers, SERVERS_CAP};
pub use state::{ConnState, Timeouts, CONN_STATES};
pub use table::{FlowTable, Observed, MIN_FLOWS};
