//! The end of a flow: what it contributes (its record, its outcome for the
//! inventory, a failed attempt for the scan findings), and ending every flow
//! still open at the end of input.
use super::state::{
    conn_state, Flow, ORIG_FIN, ORIG_RST, ORIG_SEEN, ORIG_SYN, RESP_FIN, RESP_RST, RESP_SEEN,
    RESP_SYNACK,
};
use super::{ConnState, FlowKey, FlowTable};
use crate::decode::tcp_flags as F;
use crate::decode::Addr;
use crate::inspect::Protocol;
use crate::services::Transport;
use crate::stats::attempts::{odd_probe, Attempt};
use crate::stats::flowmap::FlowMap;
use crate::stats::inventory::{FlowOutcome, OpenPortKey, ANSWERED, HANDSHAKE, MIDSTREAM};
use crate::stats::Count;

/// A finished flow, as written by `--flows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    pub key: FlowKey,
    pub server_is_lo: bool,
    pub first_ns: u64,
    pub last_ns: u64,
    pub to_server: Count,
    pub to_client: Count,
    pub state: ConnState,
    /// The application protocol detected from payload.
    pub detected: Option<Protocol>,
    /// [`crate::inspect::clear`] bits.
    pub cleartext: u8,
    /// Why it ended.
    pub end: EndReason,
    /// TCP flags seen [to the server, to the client]: SYN, FIN and RST, and
    /// SYN|ACK of the server's handshake answer (the table keeps no others);
    /// 0 for other transports.
    pub tcp_flags: [u8; 2],
}

/// Why a flow ended, as IPFIX's flowEndReason numbers it (RFC 7011's IANA
/// registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Idle for longer than its timeout.
    IdleTimeout = 1,
    /// Still open: a report of a long flow while it lasts.
    ActiveTimeout = 2,
    /// Closed: FIN both ways, or a RST.
    EndOfFlow = 3,
    /// Still open when the input ended.
    ForcedEnd = 4,
    /// Evicted to make room (`--flow-cap`).
    LackOfResources = 5,
}

impl EndReason {
    /// The reason flow `f` ended for, when the table ended it because of
    /// `cause`: a closed flow ended because it was closed.
    pub(super) fn of(f: &Flow, cause: EndReason) -> EndReason {
        if f.closed() {
            EndReason::EndOfFlow
        } else {
            cause
        }
    }
}

/// The TCP flags flow `f`'s history records, [to the server, to the client].
pub(super) fn tcp_flags(key: &FlowKey, f: &Flow) -> [u8; 2] {
    if key.transport != Transport::Tcp {
        return [0, 0];
    }
    let h = f.history;
    let bit = |mask: u16, flags: u8| if h & mask != 0 { flags } else { 0 };
    [
        bit(ORIG_SYN, F::SYN) | bit(ORIG_FIN, F::FIN) | bit(ORIG_RST, F::RST),
        bit(RESP_SYNACK, F::SYN | F::ACK) | bit(RESP_FIN, F::FIN) | bit(RESP_RST, F::RST),
    ]
}

impl FlowRecord {
    pub fn client(&self) -> (Addr, u16) {
        self.key.sides(self.server_is_lo).1
    }

    pub fn server(&self) -> (Addr, u16) {
        self.key.sides(self.server_is_lo).0
    }
}

/// What ending one flow contributes, from the flow alone.
pub(super) struct Ending {
    pub(super) state: ConnState,
    pub(super) outcome: FlowOutcome,
    /// A failed or unanswered attempt, or an odd-flag probe.
    pub(super) attempt: Option<Attempt>,
}

/// The server port flow `f` counts on in the inventory.
fn open_port_key(key: &FlowKey, f: &Flow) -> OpenPortKey {
    let (host, port) = key.sides(f.server_is_lo).0;
    OpenPortKey {
        host,
        transport: key.transport,
        port,
    }
}

/// What ending flow `f` contributes (its state, its outcome for the
/// inventory, an attempt for the scan findings).
pub(super) fn ending(key: FlowKey, f: &Flow) -> Ending {
    let state = conn_state(key.transport, f.history);
    let open = open_port_key(&key, f);
    let client = key.sides(f.server_is_lo).1 .0;
    let h = f.history;
    let both_ways = h & ORIG_SEEN != 0 && h & RESP_SEEN != 0;
    let evidence = match key.transport {
        Transport::Tcp if h & RESP_SYNACK != 0 => HANDSHAKE,
        Transport::Tcp if h & (ORIG_SYN | RESP_SYNACK) == 0 && both_ways => MIDSTREAM,
        Transport::Tcp => 0,
        _ if h & RESP_SEEN != 0 => ANSWERED,
        _ => 0,
    };
    let probe = match key.transport {
        Transport::Tcp if h & RESP_SYNACK == 0 => match state {
            ConnState::S0 | ConnState::REJ | ConnState::RSTOS0 | ConnState::SH => Some(0),
            ConnState::OTH if h & ORIG_SEEN != 0 => odd_probe(f.first_flags),
            _ => None,
        },
        Transport::Tcp => None,
        _ if h & RESP_SEEN == 0 => Some(0),
        _ => None,
    };
    Ending {
        state,
        attempt: probe.map(|odd| Attempt {
            src: client,
            dst: open.host,
            ts: f.first,
            port: open.port,
            transport: key.transport,
            odd,
            refused: state == ConnState::REJ,
        }),
        outcome: FlowOutcome {
            key: open,
            client,
            first_ns: f.first,
            last_ns: f.last,
            to_server: f.dir[0].count(),
            to_client: f.dir[1].count(),
            evidence,
            rejected: state == ConnState::REJ,
            detected: f.inspect.protocol(),
            cleartext: f.inspect.clear,
            confirmed: f.inspect.server_confirms(),
        },
    }
}

/// The part of the inventory (by key hash, out of 2^64) the second ending
/// thread observes: 70%, since this one also ends every flow and adds its port
/// counters, attempts and records; with half, the second thread waits.
const ENDING_SHARE: u64 = (u64::MAX / 10) * 7;

/// Open flows at the end of input from which they are ended on two threads.
pub(super) const PARALLEL_END_MIN: usize = 16_384;

impl FlowTable {
    /// Ends every flow (end of input), on two threads when `threads` allows
    /// and there are many. The flows still open when a capture ends are often
    /// most of its flows, and ending them is mostly inventory updates (hash
    /// look-ups and client sets, cache misses), while the reader's core idles. A second thread takes the inventory entries of most server ports
    /// ([`ENDING_SHARE`], split by a hash of the key, so each entry has one
    /// writer and nothing needs merging but two disjoint maps); this thread
    /// does the rest, in slot order as before, so counters, attempts and
    /// records come out the same.
    pub fn finish_all_on(&mut self, threads: usize) {
        let mut flows = std::mem::replace(&mut self.flows, FlowMap::with_capacity(1));
        if threads < 2 || flows.len() < PARALLEL_END_MIN {
            flows.drain(|k, f| self.finish(k, f, EndReason::ForcedEnd));
            return;
        }
        let theirs = |k: &OpenPortKey| {
            use std::hash::BuildHasher;
            rustc_hash::FxBuildHasher.hash_one(k) < ENDING_SHARE
        };
        let mut part = self.inventory.split_off(theirs);
        let all = &flows;
        let apart = std::thread::scope(|s| {
            let other = std::thread::Builder::new()
                .name("portflow-ending".into())
                .spawn_scoped(s, || {
                    for (k, f) in all.iter() {
                        if theirs(&open_port_key(k, f)) {
                            part.observe(ending(*k, f).outcome);
                        }
                    }
                });
            // No thread (a process or memory limit): end them all here.
            let Ok(other) = other else {
                return false;
            };
            for (k, f) in all.iter() {
                let e = ending(*k, f);
                let mine = !theirs(&e.outcome.key);
                self.apply(*k, f, e, mine, EndReason::ForcedEnd);
            }
            other.join().expect("flow-ending thread");
            true
        });
        if apart {
            self.inventory.join_apart(part);
        } else {
            self.inventory.merge(part);
            flows.drain(|k, f| self.finish(k, f, EndReason::ForcedEnd));
        }
    }
}
