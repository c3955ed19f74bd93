//! Reports: one [`Report`] value built from an [`Analysis`], rendered as the
//! human table or as JSON (schema in `docs/SCHEMA.md`), so both show the same
//! numbers; and per-flow NDJSON (`--flows`).

pub mod findings;
pub mod flows;
pub mod live;
mod names;
pub mod table;
pub mod time;

use crate::decode::{ip_text, TunnelKind};
use crate::pipeline::Analysis;
use crate::services::{PortClass, Services, Transport};
use crate::stats::{Count, PortKey, PortStats, Summary};
use serde::Serialize;
use std::collections::BTreeMap;

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
    pub ports: Vec<PortReport>,
    /// Hosts and ports that refused datagrams (ICMP port unreachable).
    pub closed_ports: Vec<ClosedPort>,
    /// The open-port inventory: every (host, transport, port) seen serving.
    pub services: Vec<OpenPortReport>,
    /// Per host, connection attempts its closed ports refused.
    pub closed_port_attempts: Vec<ClosedAttempts>,
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
}

/// Which rows a report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Every port row and open port (JSON).
    All,
    /// The first `n` port rows and open ports in the order the human table
    /// shows them (0: all): the table shows no more, and a large capture has
    /// tens of thousands of open ports whose rows (addresses and timestamps as
    /// text) took a tenth of a run to build. Counts and totals stay whole.
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

#[derive(Debug, Clone, Serialize)]
pub struct Generator {
    pub name: &'static str,
    pub version: &'static str,
    /// How this run went; these depend on the machine and `--workers`.
    pub workers: usize,
    pub elapsed_s: f64,
    /// Most flows held in memory at once (sum of the workers' peaks).
    pub peak_flows_in_memory: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputReport {
    pub path: String,
    pub format: &'static str,
    pub compressed: bool,
    pub packets: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaptureSpan {
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub duration_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TotalsReport {
    pub packets: u64,
    pub bytes: u64,
    pub tcp_packets: u64,
    pub tcp_bytes: u64,
    pub udp_packets: u64,
    pub udp_bytes: u64,
    pub sctp_packets: u64,
    pub dccp_packets: u64,
    pub icmp_packets: u64,
    pub ipv4_packets: u64,
    pub ipv6_packets: u64,
    pub other_ip_packets: u64,
    pub non_ip_packets: u64,
    /// Packets with a decode error (some still reached a port; see `decode_error_detail`).
    pub decode_errors: u64,
    /// Packets that reached no port (link failures, transports cut before their ports,
    /// later fragments whose first fragment was not seen).
    pub unattributed_packets: u64,
    pub filtered_out: u64,
    pub truncated_by_snaplen: u64,
    pub fragments: Fragments,
    pub tunnels: BTreeMap<&'static str, u64>,
    pub decode_error_detail: Vec<DecodeErrorRow>,
    pub other_ip: Vec<ProtoRow>,
    pub non_ip: Vec<EthertypeRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fragments {
    pub packets: u64,
    pub attributed: u64,
    pub unattributed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecodeErrorRow {
    pub layer: &'static str,
    pub reason: &'static str,
    pub packets: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProtoRow {
    pub ip_proto: u8,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EthertypeRow {
    /// `0x0806` style; `0x0000` for non-IP frames without an ethertype (802.3, PPP control).
    pub ethertype: String,
    pub packets: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowsSummary {
    pub total: u64,
    /// Flows ended early because the flow table was full (`--flow-cap`).
    pub evicted: u64,
    /// Failed attempts not examined for scans because the per-worker list was full.
    pub attempts_not_examined: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortReport {
    pub proto: Transport,
    pub port: u16,
    pub service: Option<String>,
    pub class: PortClass,
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub clients: u64,
    pub servers: u64,
    pub to_server: Count,
    pub to_client: Count,
    pub first_seen: String,
    pub last_seen: String,
    pub tcp: Option<TcpReport>,
    pub unreachable: u64,
    pub packet_size: Option<Summary>,
    pub handshake_rtt_us: Option<Summary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TcpReport {
    pub syn: u64,
    pub syn_ack: u64,
    pub rst: u64,
    /// Finished flows by Zeek `conn_state`.
    pub states: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenPortReport {
    pub host: String,
    pub proto: Transport,
    pub port: u16,
    pub service: Option<String>,
    pub class: PortClass,
    /// Why the port is taken as open: `handshake`, `answered`, `midstream`.
    pub evidence: Vec<&'static str>,
    /// The protocol detected from payload in most of its flows (null: none).
    pub detected: Option<&'static str>,
    /// Flows per protocol detected on the port.
    pub protocols: BTreeMap<&'static str, u64>,
    pub first_seen: String,
    pub last_seen: String,
    pub flows: u64,
    pub clients: u64,
    pub to_server: Count,
    pub to_client: Count,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClosedAttempts {
    pub host: String,
    /// TCP SYNs answered with a RST.
    pub tcp_rejected: u64,
    /// ICMP/ICMPv6 port-unreachable messages sent by the host.
    pub udp_unreachable: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClosedPort {
    pub proto: Transport,
    pub host: String,
    pub port: u16,
    pub service: Option<String>,
    pub unreachable: u64,
}

fn port_report(k: PortKey, p: &PortStats, services: &Services) -> PortReport {
    PortReport {
        proto: k.transport,
        port: k.port,
        service: services.name(k.transport, k.port).map(str::to_string),
        class: PortClass::of(k.port),
        packets: p.packets(),
        bytes: p.bytes(),
        flows: p.flows,
        clients: p.clients.len(),
        servers: p.servers.len(),
        to_server: p.to_server,
        to_client: p.to_client,
        first_seen: time::rfc3339(p.first_ns),
        last_seen: time::rfc3339(p.last_ns),
        tcp: (k.transport == Transport::Tcp).then(|| TcpReport {
            syn: p.syn,
            syn_ack: p.syn_ack,
            rst: p.rst,
            states: crate::stats::flow::CONN_STATES
                .iter()
                .zip(p.states)
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| (*s, n))
                .collect(),
        }),
        unreachable: p.unreachable,
        packet_size: p.sizes.summary(),
        handshake_rtt_us: p.rtt_us.summary(),
    }
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
    pub fn build(a: &Analysis, services: &Services, rows: Rows) -> Report {
        let t = &a.totals;
        let threads = a.workers;
        let mut used: Vec<(PortKey, &PortStats)> =
            a.ports.iter().filter(|(_, p)| p.packets() > 0).collect();
        let ports_total = used.len();
        if let Some(n) = rows.limit().filter(|&n| n < used.len()) {
            let key = |(k, p): &(PortKey, &PortStats)| (*k, p.bytes(), p.packets());
            used.select_nth_unstable_by(n - 1, |a, b| port_order(key(a), key(b)));
            used.truncate(n);
        }
        let mut ports: Vec<PortReport> =
            par_map(&used, threads, |(k, p)| port_report(*k, p, services));
        // ICMP port-unreachable evidence also counts on the refused port.
        let mut closed: Vec<ClosedPort> = t
            .unreachable
            .iter()
            .map(|(&(tr, host, port), &n)| ClosedPort {
                proto: tr,
                host: ip_text(&host),
                port,
                service: services.name(tr, port).map(str::to_string),
                unreachable: n,
            })
            .collect();
        closed.sort_by(|a, b| (a.proto, a.port, &a.host).cmp(&(b.proto, b.port, &b.host)));
        let mut refused: rustc_hash::FxHashMap<(Transport, u16), u64> = Default::default();
        for c in &closed {
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
        let flows_total: u64 = a.ports.iter().map(|(_, p)| p.flows).sum();
        let mut open: Vec<OpenEntry> = a.inventory.open_ports().collect();
        let services_total = open.len();
        if let Some(n) = rows.limit() {
            top_open(&mut open, n);
        }
        // The key's own order (host bytes, transport, port), compared as integers.
        open.sort_unstable_by_key(|(k, _)| (u128::from_be_bytes(k.host), k.transport, k.port));
        let detected = a.inventory.protocols();
        let services: Vec<OpenPortReport> = par_map(&open, threads, |&(k, o)| {
            let protocols = detected.get(k).map(Vec::as_slice).unwrap_or(&[]);
            OpenPortReport {
                host: ip_text(&k.host),
                proto: k.transport,
                port: k.port,
                service: services.name(k.transport, k.port).map(str::to_string),
                class: PortClass::of(k.port),
                evidence: names::evidence(o.evidence),
                detected: protocols.first().map(|(p, _)| p.as_str()),
                protocols: protocols.iter().map(|(p, n)| (p.as_str(), *n)).collect(),
                first_seen: time::rfc3339(o.span.first_ns),
                last_seen: time::rfc3339(o.span.last_ns),
                flows: o.span.flows,
                clients: o.clients.len(),
                to_server: o.to_server,
                to_client: o.to_client,
                bytes: o.to_server.bytes + o.to_client.bytes,
            }
        });
        let mut attempts: std::collections::BTreeMap<crate::decode::Addr, (u64, u64)> =
            Default::default();
        for (h, n) in &a.inventory.rejected {
            attempts.entry(*h).or_default().0 += n;
        }
        for ((_, h, _), n) in &t.unreachable {
            attempts.entry(*h).or_default().1 += n;
        }
        let closed_port_attempts = attempts
            .into_iter()
            .map(|(h, (r, u))| ClosedAttempts {
                host: ip_text(&h),
                tcp_rejected: r,
                udp_unreachable: u,
            })
            .collect();
        let span_ns = t.last_ns.saturating_sub(t.first_ns);
        Report {
            schema: SCHEMA,
            generator: Generator {
                name: "portflow",
                version: env!("CARGO_PKG_VERSION"),
                workers: a.workers,
                elapsed_s: (a.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
                peak_flows_in_memory: a.peak_flows,
            },
            inputs: a
                .files
                .iter()
                .map(|f| InputReport {
                    path: f.path.clone(),
                    format: f.format,
                    compressed: f.compressed,
                    packets: f.packets,
                    error: f.error.as_ref().map(|e| e.to_string()),
                })
                .collect(),
            capture: CaptureSpan {
                first_seen: (t.first_ns != 0).then(|| time::rfc3339(t.first_ns)),
                last_seen: (t.last_ns != 0).then(|| time::rfc3339(t.last_ns)),
                duration_s: span_ns as f64 / 1e9,
            },
            totals: TotalsReport {
                packets: t.packets,
                bytes: t.bytes,
                tcp_packets: t.transport(Transport::Tcp).packets,
                tcp_bytes: t.transport(Transport::Tcp).bytes,
                udp_packets: t.transport(Transport::Udp).packets,
                udp_bytes: t.transport(Transport::Udp).bytes,
                sctp_packets: t.transport(Transport::Sctp).packets,
                dccp_packets: t.transport(Transport::Dccp).packets,
                icmp_packets: t.icmp.packets,
                ipv4_packets: t.ipv4.packets,
                ipv6_packets: t.ipv6.packets,
                other_ip_packets: t.other_ip.values().map(|c| c.packets).sum(),
                non_ip_packets: t.non_ip.packets,
                decode_errors: t.decode_error_packets,
                unattributed_packets: t.unattributed.packets,
                filtered_out: t.filtered_out,
                truncated_by_snaplen: t.truncated_by_snaplen,
                fragments: Fragments {
                    packets: t.fragments,
                    attributed: t.fragments_attributed,
                    unattributed: t.fragments_unattributed,
                },
                tunnels: TunnelKind::ALL
                    .iter()
                    .filter(|k| t.tunnels[**k as usize] > 0)
                    .map(|k| (k.as_str(), t.tunnels[*k as usize]))
                    .collect(),
                decode_error_detail: t
                    .decode_errors
                    .iter()
                    .map(|(l, r, n)| DecodeErrorRow {
                        layer: l.as_str(),
                        reason: r.as_str(),
                        packets: n,
                    })
                    .collect(),
                other_ip: t
                    .other_ip
                    .iter()
                    .map(|(p, c)| ProtoRow {
                        ip_proto: *p,
                        packets: c.packets,
                        bytes: c.bytes,
                    })
                    .collect(),
                non_ip: t
                    .non_ip_by_ethertype
                    .iter()
                    .map(|(e, n)| EthertypeRow {
                        ethertype: format!("0x{e:04x}"),
                        packets: *n,
                    })
                    .collect(),
            },
            flows: FlowsSummary {
                total: flows_total,
                evicted: a.flows_evicted,
                attempts_not_examined: a.attempts.overflow,
            },
            ports,
            closed_ports: closed,
            services,
            closed_port_attempts,
            findings: Vec::new(),
            live: None,
            ports_total,
            services_total,
        }
    }
}
