//! A worker's flows: the table it accounts packets into, ports included.
use super::ending::{ending, tcp_flags, EndReason, Ending};
use super::evict::Carried;
use super::server::{lo_is_server, KnownServers};
use super::state::{update, Flow};
use super::{FlowKey, FlowPacket, FlowRecord, Timeouts, CONTROL, HINT_FRESH, SERVER, SWEEP};
use crate::decode::tcp_flags as F;
use crate::hint::prefetch;
use crate::services::{Services, Transport};
use crate::stats::attempts::{Attempt, Attempts, ATTEMPTS_CAP};
use crate::stats::flowmap::FlowMap;
use crate::stats::inventory::Inventory;
use crate::stats::names::Names;
use crate::stats::PortTable;
use std::sync::Arc;

/// One worker's flows and ports. Flows end when idle (packet time), on a new
/// SYN after a close, when the table is full ([`Self::make_room`]) and at the
/// end of input; what an ending flow contributes goes to the port counters,
/// the inventory, the scan attempts and (with `keep_records`) the records.
pub struct FlowTable {
    pub(super) flows: FlowMap<Flow>,
    pub ports: PortTable,
    services: Arc<Services>,
    pub(super) timeouts: Timeouts,
    /// Most flows held at once.
    pub(super) cap: usize,
    /// Finished flows, kept only when `keep_records`.
    pub records: Vec<FlowRecord>,
    keep_records: bool,
    /// Flows removed because the table was full (not idle).
    pub evicted: u64,
    /// Most flows held at once.
    pub peak_flows: usize,
    /// Open ports and refused attempts, from finished flows.
    pub inventory: Inventory,
    /// Connection attempts that failed or got no answer, and odd-flag probes (for scan findings).
    pub attempts: Attempts,
    /// What payload inspection found in flows evicted while still open, for
    /// their continuation (made when the first eviction happens).
    pub(super) carried: Option<Carried>,
    /// Endpoints seen answering a handshake, for flows that start without one.
    pub servers: KnownServers,
    /// Names seen for addresses (DNS answers, TLS SNI, HTTP Host).
    pub names: Names,
}

/// What the flows that ended added to a table's inventory and scan
/// attempts since it was last taken ([`FlowTable::take_observed`]): what a
/// live capture raises findings from while it runs.
#[derive(Debug, Default)]
pub struct Observed {
    pub inventory: Inventory,
    pub attempts: Vec<Attempt>,
}

impl Observed {
    pub fn is_empty(&self) -> bool {
        self.inventory.is_empty() && self.attempts.is_empty()
    }
}

/// The fewest flows a table holds, whatever share of `--flow-cap` it gets.
pub const MIN_FLOWS: usize = 16;

impl FlowTable {
    /// An empty table that holds at most `cap` flows (at least
    /// [`MIN_FLOWS`]), keeping
    /// a record of each finished flow when `keep_records` (`--flows`).
    pub fn new(
        services: Arc<Services>,
        timeouts: Timeouts,
        cap: usize,
        keep_records: bool,
    ) -> Self {
        let cap = cap.max(MIN_FLOWS);
        FlowTable {
            flows: FlowMap::with_capacity(cap),
            ports: PortTable::default(),
            services,
            timeouts,
            cap,
            records: Vec::new(),
            keep_records,
            evicted: 0,
            peak_flows: 0,
            inventory: Inventory::default(),
            attempts: Attempts::with_cap(ATTEMPTS_CAP),
            carried: None,
            servers: KnownServers::default(),
            names: Names::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Accounts packet records in order; `payload` holds the payload prefixes
    /// they point to ([`FlowPacket::payload_at`]). What each packet will touch
    /// is fetched into the cache a few packets ahead, since with many flows
    /// and ports it is not there: 16 ahead the record itself (written on the
    /// reader's core); 8 ahead the flow table's control bytes and the port
    /// table's entries for both ports (which one is the service is known only
    /// from the flow); 4 ahead, those being in cache, the slot the flow's
    /// probe ends at, the per-port counters the entries point to and, for a
    /// packet the reader marked [`HINT_FRESH`], the per-flow fields of both
    /// ports' statistics. (A payload is looked at for a flow's first few
    /// packets only, which the flow decides: it is not fetched ahead.)
    pub fn account_batch(&mut self, pkts: &[FlowPacket], payload: &[u8]) {
        const AHEAD: usize = 4;
        let first = |me: &Self, p: &FlowPacket| {
            me.flows.prefetch_ctrl(p.hash);
            me.ports.prefetch_entry(p.key.transport, p.key.lo_port);
            me.ports.prefetch_entry(p.key.transport, p.key.hi_port);
        };
        let second = |me: &Self, p: &FlowPacket| {
            me.flows.prefetch_slot(p.hash);
            if p.hints & HINT_FRESH != 0 {
                me.ports.prefetch_per_flow(p.key.transport, p.key.lo_port);
                me.ports.prefetch_per_flow(p.key.transport, p.key.hi_port);
            }
            me.ports.prefetch(p.key.transport, p.key.lo_port);
            me.ports.prefetch(p.key.transport, p.key.hi_port);
        };
        for p in pkts.iter().take(2 * AHEAD) {
            first(self, p);
        }
        for p in pkts.iter().take(AHEAD) {
            second(self, p);
        }
        for (i, p) in pkts.iter().enumerate() {
            // The records themselves were written on the reader's core.
            if let Some(next) = pkts.get(i + 4 * AHEAD) {
                prefetch((next as *const FlowPacket).cast());
            }
            if let Some(next) = pkts.get(i + 2 * AHEAD) {
                first(self, next);
            }
            if let Some(next) = pkts.get(i + AHEAD) {
                second(self, next);
            }
            self.account(p, p.payload(payload));
        }
    }

    /// Accounts one packet (or takes a record that is not one: a sweep, a
    /// server learned); `payload` is the packet's payload prefix
    /// ([`FlowPacket::payload`]), empty when it has none or it was not
    /// handed over.
    #[inline]
    pub fn account(&mut self, p: &FlowPacket, payload: &[u8]) {
        let now = p.ts;
        if p.hints & CONTROL != 0 {
            if p.hints & SWEEP != 0 {
                self.sweep(now);
            } else if p.hints & SERVER != 0 {
                self.servers.learn(p.key.lo, p.key.lo_port);
            }
            return;
        }
        let t = p.key.transport;
        let syn_ack = p.tcp_flags & (F::SYN | F::ACK);
        let syn_only = syn_ack == F::SYN && t == Transport::Tcp;
        if syn_ack == F::SYN | F::ACK && t == Transport::Tcp {
            let (addr, port) = p.key.source(p.from_lo);
            self.servers.learn(addr, port);
        }
        // Fast path, one hash look-up: a packet of a live flow.
        let timeouts = self.timeouts;
        let restart = match self.flows.get_mut(&p.key, p.hash) {
            Some(f) => {
                let idle = timeouts.expired(t, f, now);
                if !(idle || (syn_only && f.closed())) {
                    update(f, &mut self.ports, &mut self.names, p, payload);
                    return;
                }
                true
            }
            None => false,
        };
        if restart {
            let f = self.flows.remove(&p.key, p.hash).expect("present");
            self.finish(p.key, f, EndReason::IdleTimeout);
        }
        if self.flows.len() >= self.cap {
            self.make_room(now);
        }
        let known = if t == Transport::Tcp && p.tcp_flags & F::SYN == 0 {
            self.servers.known(&p.key)
        } else {
            0
        };
        let server_is_lo = lo_is_server(&self.services, p, known);
        let mut f = Flow::starting(p, server_is_lo);
        if !syn_only {
            if let Some(c) = self.carried.as_mut() {
                f.inspect = c.take(&p.key, p.hash).unwrap_or_default();
            }
        }
        let ((server, sport), (client, _)) = p.key.sides(server_is_lo);
        let ps = self.ports.get_mut(t, sport);
        ps.flows += 1;
        ps.clients.insert(client);
        ps.servers.insert(server);
        update(&mut f, &mut self.ports, &mut self.names, p, payload);
        self.flows.insert_new(p.key, p.hash, f);
        self.peak_flows = self.peak_flows.max(self.flows.len());
    }

    /// Ends flow `f`, which the table ends because of `cause`.
    pub(super) fn finish(&mut self, key: FlowKey, f: Flow, cause: EndReason) {
        let e = ending(key, &f);
        self.apply(key, &f, e, true, cause);
    }

    /// Adds what ending flow `f` contributes to the port counters, the scan
    /// attempts, the flow records and (when `observe`) the inventory.
    pub(super) fn apply(
        &mut self,
        key: FlowKey,
        f: &Flow,
        e: Ending,
        observe: bool,
        cause: EndReason,
    ) {
        if key.transport == Transport::Tcp {
            self.ports.get_mut(key.transport, e.outcome.key.port).states[e.state.index()] += 1;
        }
        if let Some(a) = e.attempt {
            self.attempts.push(a);
        }
        if self.keep_records {
            self.records
                .push(record(key, f, &e, EndReason::of(f, cause)));
        }
        if observe {
            self.inventory.observe(e.outcome);
        }
    }

    /// Moves out what ended flows added to the inventory and the scan
    /// attempts so far (the counts of attempts not kept stay).
    pub fn take_observed(&mut self) -> Observed {
        Observed {
            inventory: std::mem::take(&mut self.inventory),
            attempts: std::mem::take(&mut self.attempts.list),
        }
    }

    /// Adds back what [`Self::take_observed`] took and could not hand on,
    /// as if it had never left (its attempts are the older ones).
    pub fn give_back(&mut self, o: Observed) {
        self.inventory.merge(o.inventory);
        let newer = std::mem::replace(&mut self.attempts.list, o.attempts);
        self.attempts.list.extend(newer);
    }

    /// Ends flows idle at packet time `now`.
    pub fn sweep(&mut self, now: u64) {
        self.end_idle_and_evict(now, 0, None);
    }

    /// Ends every flow (end of input).
    pub fn finish_all(&mut self) {
        self.finish_all_on(1);
    }

    /// Hands `f` the record of every open flow that started at or before
    /// `started_by`, as it stands (`end`: [`EndReason::ActiveTimeout`]),
    /// leaving the flows as they are: a live capture's long flows, reported
    /// while they last.
    pub fn open_since(&self, started_by: u64, mut f: impl FnMut(FlowRecord)) {
        for (key, flow) in self.flows.iter() {
            if flow.first <= started_by {
                let e = ending(*key, flow);
                f(record(*key, flow, &e, EndReason::ActiveTimeout));
            }
        }
    }
}

/// The record of flow `f` with what ending it gives, ended for `end`.
fn record(key: FlowKey, f: &Flow, e: &Ending, end: EndReason) -> FlowRecord {
    FlowRecord {
        key,
        server_is_lo: f.server_is_lo,
        first_ns: f.first,
        last_ns: f.last,
        to_server: f.dir[0].count(),
        to_client: f.dir[1].count(),
        state: e.state,
        detected: e.outcome.detected,
        cleartext: e.outcome.cleartext,
        end,
        tcp_flags: tcp_flags(&key, f),
    }
}
