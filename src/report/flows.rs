//! `--flows`: one JSON object per flow (NDJSON), like a Zeek conn.log.
use super::time::rfc3339;
use crate::decode::ip_text;
use crate::services::{Services, Transport};
use crate::stats::flow::{community_id, FlowRecord};
use crate::stats::names::Names;
use crate::stats::Count;
use serde::Serialize;
use std::io::{self, Write};

#[derive(Serialize)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
}

/// The flow record's schema (`docs/SCHEMA.md`).
#[derive(Serialize)]
pub struct FlowLine<'a> {
    pub proto: Transport,
    pub client: Endpoint,
    pub server: Endpoint,
    pub service: Option<&'a str>,
    pub to_server: Count,
    pub to_client: Count,
    pub first_seen: String,
    pub last_seen: String,
    pub duration_s: f64,
    pub conn_state: &'static str,
    /// The protocol detected from payload (null: none).
    pub detected: Option<&'static str>,
    /// Cleartext evidence: `http-basic`, `http-authorization`, `login-form`,
    /// `login`, `tls-upgrade`.
    pub cleartext: Vec<&'static str>,
    /// The flow's Community ID (v1) with the seed asked for.
    pub community_id: String,
    /// Names the traffic gave the server's address (`names[]` of the report
    /// says where); empty in a live capture's stream.
    pub server_names: Vec<String>,
}

/// One flow as its record shows it, with its Community ID under `seed`.
pub fn flow_line<'a>(f: &FlowRecord, services: &'a Services, seed: u16) -> FlowLine<'a> {
    let (cip, cport) = f.client();
    let (sip, sport) = f.server();
    FlowLine {
        proto: f.key.transport,
        client: Endpoint {
            ip: ip_text(&cip),
            port: cport,
        },
        server: Endpoint {
            ip: ip_text(&sip),
            port: sport,
        },
        service: services.name(f.key.transport, sport),
        to_server: f.to_server,
        to_client: f.to_client,
        first_seen: rfc3339(f.first_ns),
        last_seen: rfc3339(f.last_ns),
        duration_s: f.last_ns.saturating_sub(f.first_ns) as f64 / 1e9,
        conn_state: f.state.name(),
        detected: f.detected.map(|p| p.as_str()),
        cleartext: super::names::cleartext(f.cleartext),
        community_id: community_id(&f.key, seed),
        server_names: Vec::new(),
    }
}

/// [`flow_line`] with the names seen for the server, when there are names.
pub fn named_flow_line<'a>(
    f: &FlowRecord,
    services: &'a Services,
    seed: u16,
    names: Option<&Names>,
) -> FlowLine<'a> {
    let mut l = flow_line(f, services, seed);
    if let Some(n) = names {
        l.server_names = n.of(&f.server().0).iter().map(|(n, _)| n.clone()).collect();
    }
    l
}

/// Writes `flows` as NDJSON, each with its Community ID under `seed` and
/// the names seen for its server.
pub fn write_flows(
    flows: &[FlowRecord],
    services: &Services,
    seed: u16,
    names: Option<&Names>,
    w: &mut dyn Write,
) -> io::Result<()> {
    for f in flows {
        serde_json::to_writer(&mut *w, &named_flow_line(f, services, seed, names))?;
        w.write_all(b"\n")?;
    }
    Ok(())
}
