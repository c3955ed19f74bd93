//! `--flows`: one JSON object per flow (NDJSON), like a Zeek conn.log.
use super::time::rfc3339;
use crate::decode::ip_text;
use crate::services::{Services, Transport};
use crate::stats::flow::{community_id, FlowRecord};
use crate::stats::Count;
use serde::Serialize;
use std::io::{self, Write};

#[derive(Serialize)]
struct Endpoint {
    ip: String,
    port: u16,
}

/// The flow record's schema (`docs/SCHEMA.md`).
#[derive(Serialize)]
struct FlowLine<'a> {
    proto: Transport,
    client: Endpoint,
    server: Endpoint,
    service: Option<&'a str>,
    to_server: Count,
    to_client: Count,
    first_seen: String,
    last_seen: String,
    duration_s: f64,
    conn_state: &'static str,
    /// The protocol detected from payload (null: none).
    detected: Option<&'static str>,
    /// Cleartext evidence: `http-basic`, `http-authorization`, `login-form`,
    /// `login`, `tls-upgrade`.
    cleartext: Vec<&'static str>,
    /// The flow's Community ID (v1) with the seed asked for.
    community_id: String,
}

/// Writes `flows` as NDJSON, each with its Community ID under `seed`.
pub fn write_flows(
    flows: &[FlowRecord],
    services: &Services,
    seed: u16,
    w: &mut dyn Write,
) -> io::Result<()> {
    for f in flows {
        let (cip, cport) = f.client();
        let (sip, sport) = f.server();
        let line = FlowLine {
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
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}
