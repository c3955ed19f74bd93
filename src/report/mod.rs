//! Reports: one [`Report`] value built from an [`Analysis`], rendered as the
//! human table or as JSON (schema in `docs/SCHEMA.md`), so both show the same
//! numbers; and per-flow NDJSON (`--flows`).

pub mod csv;
pub mod diff;
pub mod findings;
pub mod firewall;
pub mod flows;
pub mod ipfix;
pub mod learned;
pub mod live;
pub mod metrics;
mod names;
mod rows;
pub mod table;
pub mod time;
pub mod timeline;

use crate::decode::ip_text;
use crate::pipeline::Analysis;
use crate::services::{Services, Transport};
use crate::stats::{PortKey, PortStats};
use serde::Serialize;

pub use rows::{
    closed_port_attempts, closed_ports, cut_short, open_port_report, port_report, AddressNames,
    CaptureSpan, ClosedAttempts, ClosedPort, DecodeErrorRow, EthertypeRow, FlowsSummary, Fragments,
    Generator, InputReport, NameRow, OpenPortReport, PortReport, ProbeRow, ProtoRow, TcpReport,
    TotalsReport,
};

/// The JSON report's schema name and version.
pub const SCHEMA: &str = "portflow.report/1";

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub generator: Generator,
    pub inputs: Vec<InputReport>,
    pub capture: CaptureSpan,
    pub totals: TotalsReport,
    pub flows: FlowsSummary,
    /// Packets and bytes per time bucket, and where the findings fall (null without packets).
    pub timeline: Option<timeline::TimelineReport>,
    pub ports: Vec<PortReport>,
    /// Hosts and ports that refused datagrams (ICMP port unreachable).
    pub closed_ports: Vec<ClosedPort>,
    /// The open-port inventory: every (host, transport, port) seen serving.
    pub services: Vec<OpenPortReport>,
    /// Per host, connection attempts its closed ports refused.
    pub closed_port_attempts: Vec<ClosedAttempts>,
    /// Every address a name was seen for, in address order.
    pub names: Vec<AddressNames>,
    /// Sources that probed two or more ports of a host that no server
    /// answered, most ports first.
    pub probes: Vec<ProbeRow>,
    /// What should not be there, most severe first (`--policy` enables `unexpected-port`).
    pub findings: Vec<findings::FindingRow>,
    /// Live capture only: the interface, libpcap's counters, drops, why it stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<crate::pipeline::live::LiveSummary>,
    /// Port rows and open ports in all, when the report holds only the first
    /// rows ([`Rows::Top`]); the lengths of `ports` and `services` otherwise.
    #[serde(skip)]
    pub ports_total: usize,
    #[serde(skip)]
    pub services_total: usize,
    /// Ports only probes reached; the table folds them into `probes`
    /// (its rows leave them out), JSON keeps them with `probed_only`.
    #[serde(skip)]
    pub probed_only_ports: usize,
}

/// Which rows a report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Every port row and open port (JSON).
    All,
    /// The first `n` port rows and open ports in the order the human table
    /// shows them (0: all): the table shows no more, and a large capture has
    /// tens of thousands of open ports whose rows (addresses and timestamps as
    /// text) are not worth building to drop. Counts and totals stay whole.
    Top(usize),
}

impl Rows {
    fn limit(self) -> Option<usize> {
        match self {
            Rows::Top(n) if n > 0 => Some(n),
            _ => None,
        }
    }
}

/// The human table's order of port rows: most bytes, then most packets,
/// then protocol and port.
fn port_order(a: (PortKey, u64, u64), b: (PortKey, u64, u64)) -> std::cmp::Ordering {
    (b.1, b.2)
        .cmp(&(a.1, a.2))
        .then((a.0.transport, a.0.port).cmp(&(b.0.transport, b.0.port)))
}

type OpenEntry<'a> = (
    &'a crate::stats::inventory::OpenPortKey,
    &'a crate::stats::inventory::OpenPort,
);

/// Keeps the first `n` open ports in the human table's order (most bytes,
/// then host as text, port, protocol: [`table`]); only the ports tied with the
/// `n`-th on bytes have their address written out to compare.
fn top_open(open: &mut Vec<OpenEntry>, n: usize) {
    if n >= open.len() {
        return;
    }
    let bytes = |e: &OpenEntry| e.1.to_server.bytes + e.1.to_client.bytes;
    open.select_nth_unstable_by(n - 1, |a, b| bytes(b).cmp(&bytes(a)));
    let cut = bytes(&open[n - 1]);
    let mut tied: Vec<(String, OpenEntry)> = open
        .iter()
        .filter(|e| bytes(e) == cut)
        .map(|e| (ip_text(&e.0.host), *e))
        .collect();
    tied.sort_unstable_by(|a, b| {
        (&a.0, a.1 .0.port, a.1 .0.transport).cmp(&(&b.0, b.1 .0.port, b.1 .0.transport))
    });
    open.retain(|e| bytes(e) > cut);
    let room = n - open.len();
    open.extend(tied.into_iter().take(room).map(|(_, e)| e));
}

/// `f` over `items` in order, on up to `threads` threads for long lists (a
/// report can have hundreds of thousands of rows, each a few strings).
fn par_map<T: Sync, U: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    const MIN_PER_THREAD: usize = 4096;
    let threads = threads.min(items.len() / MIN_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let rest: Vec<_> = items
            .chunks(chunk)
            .skip(1)
            .map(|c| s.spawn(move || c.iter().map(f).collect::<Vec<U>>()))
            .collect();
        let mut out: Vec<U> = Vec::with_capacity(items.len());
        out.extend(items[..chunk].iter().map(f));
        for h in rest {
            out.extend(h.join().expect("report thread"));
        }
        out
    })
}

impl Report {
    /// The report of an analysis, with the rows `rows` asks for and no
    /// findings yet.
    pub fn build(a: &Analysis, services: &Services, rows: Rows) -> Report {
        let closed = closed_ports(&a.totals, services);
        let (ports, ports_total, probed_only_ports) = port_rows(a, services, rows, &closed);
        let (services_rows, services_total) = open_port_rows(a, services, rows);
        Report {
            schema: SCHEMA,
            generator: Generator::new(a),
            inputs: InputReport::all(a),
            capture: CaptureSpan::new(&a.totals),
            totals: TotalsReport::new(&a.totals),
            flows: FlowsSummary {
                total: a.ports.iter().map(|(_, p)| p.flows).sum(),
                evicted: a.flows_evicted,
                attempts_not_examined: a.attempts.overflow,
                names_not_kept: a.names.dropped,
            },
            timeline: timeline::TimelineReport::new(a),
            ports,
            closed_ports: closed,
            services: services_rows,
            closed_port_attempts: closed_port_attempts(a),
            names: a
                .names
                .all()
                .into_iter()
                .map(|(addr, n)| AddressNames {
                    address: ip_text(addr),
                    names: NameRow::all(n),
                })
                .collect(),
            probes: rows::probe_rows(&a.attempts.list),
            findings: Vec::new(),
            live: None,
            ports_total,
            services_total,
            probed_only_ports,
        }
    }
}

/// The port rows `rows` asks for, in the table's order, with ICMP
/// port-unreachable evidence counted on the refused port too; how many
/// ports carried traffic in all, and how many only probes reached (the
/// table's rows leave those out: it folds them into lines of probes).
fn port_rows(
    a: &Analysis,
    services: &Services,
    rows: Rows,
    closed: &[ClosedPort],
) -> (Vec<PortReport>, usize, usize) {
    let mut used: Vec<(PortKey, &PortStats)> =
        a.ports.iter().filter(|(_, p)| p.packets() > 0).collect();
    let probed = |(k, p): &(PortKey, &PortStats)| p.probed_only(k.transport);
    let probed_only = used.iter().filter(|u| probed(u)).count();
    if matches!(rows, Rows::Top(_)) {
        used.retain(|u| !probed(u));
    }
    let total = used.len();
    if let Some(n) = rows.limit().filter(|&n| n < used.len()) {
        let key = |(k, p): &(PortKey, &PortStats)| (*k, p.bytes(), p.packets());
        used.select_nth_unstable_by(n - 1, |a, b| port_order(key(a), key(b)));
        used.truncate(n);
    }
    let mut ports: Vec<PortReport> =
        par_map(&used, a.workers, |(k, p)| port_report(*k, p, services));
    let mut refused: rustc_hash::FxHashMap<(Transport, u16), u64> = Default::default();
    for c in closed {
        *refused.entry((c.proto, c.port)).or_default() += c.unreachable;
    }
    for p in &mut ports {
        p.unreachable += refused.get(&(p.proto, p.port)).copied().unwrap_or(0);
    }
    // (proto, port) is unique, so the unstable sort gives the one order
    // without moving rows to a buffer and back.
    let key = |r: &PortReport| {
        let k = PortKey {
            transport: r.proto,
            port: r.port,
        };
        (k, r.bytes, r.packets)
    };
    ports.sort_unstable_by(|x, y| port_order(key(x), key(y)));
    (ports, total, probed_only)
}

/// The open-port rows `rows` asks for, by host, transport and port; and how
/// many open ports there are in all.
fn open_port_rows(a: &Analysis, services: &Services, rows: Rows) -> (Vec<OpenPortReport>, usize) {
    let mut open: Vec<OpenEntry> = a.inventory.open_ports().collect();
    let total = open.len();
    if let Some(n) = rows.limit() {
        top_open(&mut open, n);
    }
    // The key's own order (host bytes, transport, port), compared as integers.
    open.sort_unstable_by_key(|(k, _)| (u128::from_be_bytes(k.host), k.transport, k.port));
    let detected = a.inventory.protocols();
    let rows = par_map(&open, a.workers, |&(k, o)| {
        let protocols = detected.get(k).map(Vec::as_slice).unwrap_or(&[]);
        open_port_report(k, o, protocols, services, a.names.of(&k.host))
    });
    (rows, total)
}
