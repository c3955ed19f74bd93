//! The rows of a report: one type per part of the JSON report
//! (`docs/SCHEMA.md`), each made from the analysis's typed values.
use super::{names, time};
use crate::decode::{ip_text, TunnelKind};
use crate::inspect::Protocol;
use crate::pipeline::Analysis;
use crate::services::{PortClass, Services, Transport};
use crate::stats::flow::CONN_STATES;
use crate::stats::inventory::{OpenPort, OpenPortKey};
use crate::stats::{Count, PortKey, PortStats, Summary, Totals};
use serde::Serialize;
use std::collections::BTreeMap;

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
    /// The file ends inside its last record (a capture cut short): where,
    /// and that the packets before it are all in the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
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
    /// Names seen for addresses not kept because a table held 65,536 addresses with names.
    pub names_not_kept: u64,
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
    /// Only probes reached it: no server answered any flow (the table folds
    /// such ports into `probes`).
    pub probed_only: bool,
}

/// One source's probes of one host's ports that no server answered
/// (`probes[]`; the table's folded lines).
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRow {
    pub src: String,
    pub dst: String,
    pub proto: Transport,
    /// Distinct ports probed.
    pub ports: u64,
    /// Attempts: refused (RST, or ICMP unreachable) or unanswered.
    pub attempts: u64,
    pub refused: u64,
    pub unanswered: u64,
    pub first_seen: String,
    pub last_seen: String,
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
    /// Names seen for the host in the traffic (at most four, in name order).
    pub names: Vec<NameRow>,
}

/// A name seen for an address, and where (`dns`, `tls-sni`, `http-host`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameRow {
    pub name: String,
    pub source: &'static str,
}

impl NameRow {
    pub fn all(names: &[(String, crate::stats::names::Source)]) -> Vec<NameRow> {
        names
            .iter()
            .map(|(n, s)| NameRow {
                name: n.clone(),
                source: s.as_str(),
            })
            .collect()
    }
}

/// An address and the names seen for it (`names[]`).
#[derive(Debug, Clone, Serialize)]
pub struct AddressNames {
    pub address: String,
    pub names: Vec<NameRow>,
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

impl Generator {
    pub fn new(a: &Analysis) -> Generator {
        Generator {
            name: "portflow",
            version: env!("CARGO_PKG_VERSION"),
            workers: a.workers,
            elapsed_s: (a.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            peak_flows_in_memory: a.peak_flows,
        }
    }
}

impl InputReport {
    /// One row per input file.
    pub fn all(a: &Analysis) -> Vec<InputReport> {
        a.files
            .iter()
            .map(|f| InputReport {
                path: f.path.clone(),
                format: f.format,
                compressed: f.compressed,
                packets: f.packets,
                error: f.error.as_ref().map(|e| e.to_string()),
                warning: f.cut_short.as_ref().map(cut_short),
            })
            .collect()
    }
}

/// What a file cut short inside its last record says.
pub fn cut_short(e: &crate::source::FileError) -> String {
    match e.packets_before {
        0 => format!("{e}; no whole packet came before it"),
        1 => format!("{e}; the one whole packet before it is in the report"),
        n => format!("{e}; the {n} whole packets before it are in the report"),
    }
}

impl CaptureSpan {
    pub fn new(t: &Totals) -> CaptureSpan {
        let span_ns = t.last_ns.saturating_sub(t.first_ns);
        CaptureSpan {
            first_seen: (t.first_ns != 0).then(|| time::rfc3339(t.first_ns)),
            last_seen: (t.last_ns != 0).then(|| time::rfc3339(t.last_ns)),
            duration_s: span_ns as f64 / 1e9,
        }
    }
}

impl TotalsReport {
    pub fn new(t: &Totals) -> TotalsReport {
        TotalsReport {
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
        }
    }
}

/// One port's row (ICMP unreachable counted from its own statistics only).
pub fn port_report(k: PortKey, p: &PortStats, services: &Services) -> PortReport {
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
            states: CONN_STATES
                .iter()
                .zip(p.states)
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| (*s, n))
                .collect(),
        }),
        unreachable: p.unreachable,
        packet_size: p.sizes.summary(),
        handshake_rtt_us: p.rtt_us.summary(),
        probed_only: p.probed_only(k.transport),
    }
}

/// The failed attempts of `attempts`, by source, target and transport, for
/// the pairs that tried at least two ports (a flood's spoofed sources try
/// one each): most ports first.
pub fn probe_rows(attempts: &[crate::stats::attempts::Attempt]) -> Vec<ProbeRow> {
    use crate::decode::Addr;
    use std::collections::HashSet;
    #[derive(Default)]
    struct Group {
        ports: HashSet<u16>,
        attempts: u64,
        refused: u64,
        first: u64,
        last: u64,
    }
    let mut groups: BTreeMap<(Addr, Addr, Transport), Group> = BTreeMap::new();
    for a in attempts.iter().filter(|a| a.odd == 0) {
        let g = groups.entry((a.src, a.dst, a.transport)).or_default();
        g.ports.insert(a.port);
        g.attempts += 1;
        g.refused += a.refused as u64;
        g.first = if g.first == 0 {
            a.ts
        } else {
            g.first.min(a.ts)
        };
        g.last = g.last.max(a.ts);
    }
    let mut rows: Vec<ProbeRow> = groups
        .into_iter()
        .filter(|(_, g)| g.ports.len() >= 2)
        .map(|((src, dst, proto), g)| ProbeRow {
            src: ip_text(&src),
            dst: ip_text(&dst),
            proto,
            ports: g.ports.len() as u64,
            attempts: g.attempts,
            refused: g.refused,
            unanswered: g.attempts - g.refused,
            first_seen: time::rfc3339(g.first),
            last_seen: time::rfc3339(g.last),
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.ports));
    rows
}

/// One open port's row; `protocols` are the flows per protocol detected
/// there, the one most confirmed first.
pub fn open_port_report(
    k: &OpenPortKey,
    o: &OpenPort,
    protocols: &[(Protocol, u64)],
    services: &Services,
    host_names: &[(String, crate::stats::names::Source)],
) -> OpenPortReport {
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
        names: NameRow::all(host_names),
    }
}

/// Hosts and ports that refused datagrams (ICMP port unreachable), by
/// transport, port and host.
pub fn closed_ports(t: &Totals, services: &Services) -> Vec<ClosedPort> {
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
    closed
}

/// Per host, the TCP attempts it refused and the ICMP port-unreachable
/// messages it sent, by host.
pub fn closed_port_attempts(a: &Analysis) -> Vec<ClosedAttempts> {
    let mut attempts: BTreeMap<crate::decode::Addr, (u64, u64)> = BTreeMap::new();
    for (h, n) in &a.inventory.rejected {
        attempts.entry(*h).or_default().0 += n;
    }
    for ((_, h, _), n) in &a.totals.unreachable {
        attempts.entry(*h).or_default().1 += n;
    }
    attempts
        .into_iter()
        .map(|(h, (r, u))| ClosedAttempts {
            host: ip_text(&h),
            tcp_rejected: r,
            udp_unreachable: u,
        })
        .collect()
}
