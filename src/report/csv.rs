//! The report's tables and the flows as CSV (RFC 4180, a header row first):
//! the numbers of the JSON report, one table per file, for spreadsheets and
//! tools that load CSV. Columns are listed in `docs/SCHEMA.md`.
use super::flows::{named_flow_line, FlowLine};
use super::rows::{OpenPortReport, PortReport};
use super::Report;
use crate::services::Services;
use crate::stats::flow::FlowRecord;
use crate::stats::hist::Summary;
use crate::stats::Count;
use std::io::{self, Write};

/// Which of the report's tables a CSV file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Per (transport, port): the port table.
    Ports,
    /// The open-port inventory: per (host, transport, port) seen serving.
    Services,
    /// The findings, most severe first.
    Findings,
    /// Hosts and ports that answered with ICMP port unreachable.
    ClosedPorts,
}

fn csv_error(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Percentile columns of a histogram summary (empty when there is none).
fn percentiles(s: Option<&Summary>) -> [String; 4] {
    match s {
        Some(s) => [s.p50, s.p90, s.p99, s.max].map(|v| v.to_string()),
        None => Default::default(),
    }
}

/// Writes one table of `report` as CSV.
pub fn write_table(report: &Report, table: Table, w: &mut dyn Write) -> io::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    match table {
        Table::Ports => ports(report, &mut out),
        Table::Services => services(report, &mut out),
        Table::Findings => findings(report, &mut out),
        Table::ClosedPorts => closed_ports(report, &mut out),
    }
    .map_err(csv_error)?;
    out.flush()
}

type Out<'a> = csv::Writer<&'a mut dyn Write>;

const PORT_COLUMNS: [&str; 28] = [
    "proto",
    "port",
    "service",
    "class",
    "packets",
    "bytes",
    "flows",
    "clients",
    "servers",
    "to_server_packets",
    "to_server_bytes",
    "to_client_packets",
    "to_client_bytes",
    "first_seen",
    "last_seen",
    "tcp_syn",
    "tcp_syn_ack",
    "tcp_rst",
    "unreachable",
    "size_p50",
    "size_p90",
    "size_p99",
    "size_max",
    "handshake_rtt_us_p50",
    "handshake_rtt_us_p90",
    "handshake_rtt_us_p99",
    "handshake_rtt_us_max",
    "probed_only",
];

fn port_row(p: &PortReport) -> Vec<String> {
    let tcp = p.tcp.as_ref();
    let mut row = vec![
        p.proto.as_str().to_string(),
        p.port.to_string(),
        opt(p.service.as_ref()),
        p.class.as_str().to_string(),
        p.packets.to_string(),
        p.bytes.to_string(),
        p.flows.to_string(),
        p.clients.to_string(),
        p.servers.to_string(),
    ];
    row.extend(directions(p.to_server, p.to_client));
    row.extend([
        p.first_seen.clone(),
        p.last_seen.clone(),
        opt(tcp.map(|t| t.syn)),
        opt(tcp.map(|t| t.syn_ack)),
        opt(tcp.map(|t| t.rst)),
        p.unreachable.to_string(),
    ]);
    row.extend(percentiles(p.packet_size.as_ref()));
    row.extend(percentiles(p.handshake_rtt_us.as_ref()));
    row.push(p.probed_only.to_string());
    row
}

fn ports(r: &Report, out: &mut Out) -> csv::Result<()> {
    out.write_record(PORT_COLUMNS)?;
    for p in &r.ports {
        out.write_record(port_row(p))?;
    }
    Ok(())
}

/// Packets and bytes to the server, then to the client.
fn directions(to_server: Count, to_client: Count) -> [String; 4] {
    [to_server, to_client]
        .map(|c| [c.packets.to_string(), c.bytes.to_string()])
        .concat()
        .try_into()
        .expect("four columns")
}

fn service_row(s: &OpenPortReport) -> Vec<String> {
    let mut row = vec![
        s.host.clone(),
        s.proto.as_str().to_string(),
        s.port.to_string(),
        opt(s.service.as_ref()),
        s.class.as_str().to_string(),
        s.evidence.join(";"),
        opt(s.detected),
        s.protocols
            .iter()
            .map(|(p, n)| format!("{p}={n}"))
            .collect::<Vec<_>>()
            .join(";"),
        s.flows.to_string(),
        s.clients.to_string(),
    ];
    row.extend(directions(s.to_server, s.to_client));
    row.extend([
        s.bytes.to_string(),
        s.first_seen.clone(),
        s.last_seen.clone(),
    ]);
    row
}

fn services(r: &Report, out: &mut Out) -> csv::Result<()> {
    out.write_record([
        "host",
        "proto",
        "port",
        "service",
        "class",
        "evidence",
        "detected",
        "protocols",
        "flows",
        "clients",
        "to_server_packets",
        "to_server_bytes",
        "to_client_packets",
        "to_client_bytes",
        "bytes",
        "first_seen",
        "last_seen",
    ])?;
    for s in &r.services {
        out.write_record(service_row(s))?;
    }
    Ok(())
}

fn findings(r: &Report, out: &mut Out) -> csv::Result<()> {
    out.write_record([
        "kind",
        "severity",
        "proto",
        "port",
        "host",
        "src",
        "service",
        "detected",
        "detail",
        "flows",
        "clients",
        "packets",
        "bytes",
        "attempts",
        "ports",
        "hosts",
        "client_addresses",
        "first_seen",
        "last_seen",
    ])?;
    for f in &r.findings {
        let e = &f.evidence;
        out.write_record([
            f.kind.to_string(),
            f.severity.to_string(),
            f.proto.as_str().to_string(),
            opt(f.port),
            opt(f.host.as_ref()),
            opt(f.src.as_ref()),
            opt(f.service.as_ref()),
            opt(f.detected),
            f.detail.clone(),
            opt(e.flows),
            opt(e.clients),
            opt(e.packets),
            opt(e.bytes),
            opt(e.attempts),
            opt(e.ports),
            opt(e.hosts),
            f.clients.join(";"),
            f.first_seen.clone(),
            f.last_seen.clone(),
        ])?;
    }
    Ok(())
}

fn closed_ports(r: &Report, out: &mut Out) -> csv::Result<()> {
    out.write_record(["proto", "host", "port", "service", "unreachable"])?;
    for c in &r.closed_ports {
        out.write_record([
            c.proto.as_str().to_string(),
            c.host.clone(),
            c.port.to_string(),
            opt(c.service.as_ref()),
            c.unreachable.to_string(),
        ])?;
    }
    Ok(())
}

/// Writes `flows` as CSV, the columns of the `--flows` records flattened.
pub fn write_flows(
    flows: &[FlowRecord],
    services: &Services,
    seed: u16,
    names: Option<&crate::stats::names::Names>,
    w: &mut dyn Write,
) -> io::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    let write = |out: &mut Out| -> csv::Result<()> {
        out.write_record([
            "proto",
            "client_ip",
            "client_port",
            "server_ip",
            "server_port",
            "service",
            "to_server_packets",
            "to_server_bytes",
            "to_client_packets",
            "to_client_bytes",
            "first_seen",
            "last_seen",
            "duration_s",
            "conn_state",
            "detected",
            "cleartext",
            "community_id",
            "server_names",
        ])?;
        for f in flows {
            let l: FlowLine = named_flow_line(f, services, seed, names);
            out.write_record([
                l.proto.as_str().to_string(),
                l.client.ip,
                l.client.port.to_string(),
                l.server.ip,
                l.server.port.to_string(),
                opt(l.service),
                l.to_server.packets.to_string(),
                l.to_server.bytes.to_string(),
                l.to_client.packets.to_string(),
                l.to_client.bytes.to_string(),
                l.first_seen,
                l.last_seen,
                l.duration_s.to_string(),
                l.conn_state.to_string(),
                opt(l.detected),
                l.cleartext.join(";"),
                l.community_id,
                l.server_names.join(";"),
            ])?;
        }
        Ok(())
    };
    write(&mut out).map_err(csv_error)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_port_row_fills_every_column() {
        let p = PortReport {
            proto: crate::services::Transport::Udp,
            port: 53,
            service: Some("domain, \"dns\"".into()),
            class: crate::services::PortClass::WellKnown,
            packets: 2,
            bytes: 244,
            flows: 1,
            clients: 1,
            servers: 1,
            to_server: crate::stats::Count {
                packets: 1,
                bytes: 82,
            },
            to_client: crate::stats::Count {
                packets: 1,
                bytes: 162,
            },
            first_seen: "a".into(),
            last_seen: "b".into(),
            tcp: None,
            unreachable: 0,
            packet_size: None,
            handshake_rtt_us: None,
            probed_only: false,
        };
        assert_eq!(port_row(&p).len(), PORT_COLUMNS.len());
        let mut buf = Vec::new();
        {
            let w: &mut dyn Write = &mut buf;
            let mut out = csv::Writer::from_writer(w);
            out.write_record(port_row(&p)).unwrap();
            out.flush().unwrap();
        }
        // RFC 4180 quoting: a comma or a quote puts the field in quotes,
        // quotes doubled.
        let line = String::from_utf8(buf).unwrap();
        assert!(
            line.starts_with("udp,53,\"domain, \"\"dns\"\"\",well-known,2,244,"),
            "{line}"
        );
    }
}
