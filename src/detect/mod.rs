//! Findings: what should not be there. Pure functions over the merged
//! statistics, so findings are the same for any worker count.
//!
//! - `unexpected-port`: a service outside the `--policy` ([`policy`]);
//! - `port-scan`, `host-sweep`, `odd-flags` ([`scan`]);
//! - `service-mismatch`, `cleartext` ([`payload`], on what [`protocol`]
//!   detected in the first packets of each flow).

pub mod payload;
pub mod policy;
pub mod scan;

use crate::decode::{ip_text, to_ip};
use crate::report::time::rfc3339;
use crate::services::{Services, Transport};
use crate::stats::distinct::Distinct;
use crate::stats::inventory::{Inventory, OpenPortKey, Span};
use policy::{Decision, Policy};
use serde::Serialize;

/// How much a finding matters. Ordered: `info` < `low` < `medium` < `high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// Counts behind a finding; each kind fills the ones that apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Failed or unanswered attempts (scans), or probes (odd flags).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u64>,
    /// Distinct ports tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<u64>,
    /// Distinct hosts tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<u64>,
}

/// One finding (`docs/SCHEMA.md`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `unexpected-port`, `service-mismatch`, `port-scan`, `host-sweep`, `odd-flags` or `cleartext`.
    pub kind: &'static str,
    pub severity: Severity,
    pub proto: Transport,
    /// The port concerned; null when a finding spans ports (a port scan).
    pub port: Option<u16>,
    /// The host concerned; null when a finding spans hosts (a sweep).
    pub host: Option<String>,
    /// The source, for findings about who did something (scans); null otherwise.
    pub src: Option<String>,
    pub service: Option<String>,
    /// The protocol detected from payload on that port, if any.
    pub detected: Option<&'static str>,
    pub detail: String,
    pub evidence: Evidence,
    /// Up to 10 client addresses, sorted.
    pub clients: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
}

/// A server port a finding is about, with what was seen there: the common
/// part of `unexpected-port`, `service-mismatch` and `cleartext` findings.
pub(crate) struct PortSite<'a> {
    pub key: &'a OpenPortKey,
    pub services: &'a Services,
    pub detected: Option<&'static str>,
    pub span: Span,
    pub packets: u64,
    pub bytes: u64,
}

impl PortSite<'_> {
    /// A finding on this port; `flows` and `clients` are those showing it.
    pub fn finding(
        &self,
        kind: &'static str,
        severity: Severity,
        flows: u64,
        clients: &Distinct,
        detail: String,
    ) -> Finding {
        let k = self.key;
        Finding {
            kind,
            severity,
            proto: k.transport,
            port: Some(k.port),
            host: Some(ip_text(&k.host)),
            src: None,
            service: self.services.name(k.transport, k.port).map(str::to_string),
            detected: self.detected,
            detail,
            evidence: Evidence {
                flows: Some(flows),
                clients: Some(clients.len()),
                packets: Some(self.packets),
                bytes: Some(self.bytes),
                ..Evidence::default()
            },
            clients: clients.lowest().iter().map(ip_text).collect(),
            first_seen: rfc3339(self.span.first_ns),
            last_seen: rfc3339(self.span.last_ns),
        }
    }
}

/// Services seen serving outside the policy.
pub fn unexpected_ports(inv: &Inventory, policy: &Policy, services: &Services) -> Vec<Finding> {
    let mut out = Vec::new();
    for (k, o) in inv.open_ports() {
        let Decision::Denied { rule } = policy.check(&k.host, k.transport, k.port) else {
            continue;
        };
        let site = PortSite {
            key: k,
            services,
            detected: inv.protocols_of(k).first().map(|(p, _)| p.as_str()),
            span: o.span,
            packets: o.to_server.packets + o.to_client.packets,
            bytes: o.to_server.bytes + o.to_client.bytes,
        };
        let name = services.name(k.transport, k.port);
        let detail = format!(
            "{} serves {}/{}{}{} to {} client(s), {} flow(s), {} bytes; the policy ({rule}) does not allow it",
            to_ip(&k.host),
            k.transport,
            k.port,
            name.map(|n| format!(" ({n})")).unwrap_or_default(),
            site.detected.map(|p| format!(", speaking {p}")).unwrap_or_default(),
            o.clients.len(),
            o.span.flows,
            site.bytes,
        );
        out.push(site.finding(
            "unexpected-port",
            Severity::Medium,
            o.span.flows,
            &o.clients,
            detail,
        ));
    }
    sort(&mut out);
    out
}

/// Most severe first, then by kind, host, transport and port.
pub fn sort(f: &mut [Finding]) {
    f.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.kind.cmp(b.kind))
            .then(a.host.cmp(&b.host))
            .then((a.proto, a.port).cmp(&(b.proto, b.port)))
    });
}
