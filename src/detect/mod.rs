//! Findings: what should not be there. Pure functions over the merged
//! statistics, so findings are the same for any worker count. A finding is a
//! typed value (its kind with the facts behind it, addresses, nanosecond
//! times); the report turns it into text and JSON.
//!
//! - `unexpected-port`: a service outside the `--policy` ([`policy`]);
//! - `port-scan`, `host-sweep`, `odd-flags` ([`scan`]);
//! - `service-mismatch`, `cleartext` ([`payload`], on what payload inspection
//!   found in the first packets of each flow).
//!
//! A live capture raises them while it runs too ([`watch`]).

pub mod learn;
pub mod payload;
pub mod policy;
pub mod scan;
pub mod watch;

use crate::decode::{ip_text, Addr};
use crate::inspect::Protocol;
use crate::services::{Services, Transport};
use crate::stats::attempts::Attempt;
use crate::stats::distinct::Distinct;
use crate::stats::inventory::{Inventory, OpenPortKey, Span};
use policy::{Decision, Policy};
use std::time::Duration;

/// How much a finding matters. Ordered: `info` < `low` < `medium` < `high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
    ];

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evidence {
    pub flows: Option<u64>,
    pub clients: Option<u64>,
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    /// Failed or unanswered attempts (scans), or probes (odd flags).
    pub attempts: Option<u64>,
    /// Distinct ports tried.
    pub ports: Option<u64>,
    /// Distinct hosts tried.
    pub hosts: Option<u64>,
}

/// What a `cleartext` finding saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// A Telnet session: anything typed is readable.
    TelnetSession,
    /// A login command (FTP, POP3, IMAP) before any upgrade to TLS.
    Login,
    /// An FTP, POP3 or IMAP session that never upgraded to TLS, with no login
    /// in its first packets.
    SessionWithoutTls,
    /// SMTP AUTH before STARTTLS.
    SmtpAuth,
    /// HTTP `Authorization: Basic`.
    HttpBasic,
    /// A password field or login path in a plain HTTP request.
    LoginForm,
    /// An HTTP `Authorization` header with another scheme (token, digest).
    HttpAuthorization,
    /// Redis AUTH.
    RedisAuth,
    /// MQTT CONNECT carrying a password.
    MqttPassword,
}

/// What kind of finding, with the facts only that kind has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A host serves a port the policy does not allow; `rule` names the
    /// policy entry that decided.
    UnexpectedPort { rule: String },
    /// A port speaks another protocol than the one it is registered for;
    /// `registered` is that one, when portflow recognises it.
    ServiceMismatch { registered: Option<Protocol> },
    /// Credentials or a session in cleartext.
    Cleartext(Exposure),
    /// One source failed to reach at least the threshold of ports of one host
    /// within `window`: `distinct` ports in its densest window, `refused` of
    /// its attempts refused (the rest unanswered).
    PortScan {
        distinct: u64,
        window: Duration,
        refused: u64,
    },
    /// One source failed to reach one port on at least the threshold of
    /// hosts within `window`: `distinct` hosts in its densest window.
    HostSweep { distinct: u64, window: Duration },
    /// NULL, FIN and Xmas probes from one source.
    OddFlags { null: u64, fin: u64, xmas: u64 },
}

impl Kind {
    /// Every kind's name.
    pub const NAMES: [&'static str; 6] = [
        "unexpected-port",
        "service-mismatch",
        "cleartext",
        "port-scan",
        "host-sweep",
        "odd-flags",
    ];

    /// The kind's name in reports (`docs/SCHEMA.md`).
    pub fn name(&self) -> &'static str {
        match self {
            Kind::UnexpectedPort { .. } => "unexpected-port",
            Kind::ServiceMismatch { .. } => "service-mismatch",
            Kind::Cleartext(_) => "cleartext",
            Kind::PortScan { .. } => "port-scan",
            Kind::HostSweep { .. } => "host-sweep",
            Kind::OddFlags { .. } => "odd-flags",
        }
    }

    /// Whether the finding is about a server port (and so names its service).
    pub fn is_about_a_service(&self) -> bool {
        matches!(
            self,
            Kind::UnexpectedPort { .. } | Kind::ServiceMismatch { .. } | Kind::Cleartext(_)
        )
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    pub severity: Severity,
    pub transport: Transport,
    /// The port concerned; `None` when a finding spans ports (a port scan).
    pub port: Option<u16>,
    /// The host concerned; `None` when a finding spans hosts (a sweep).
    pub host: Option<Addr>,
    /// The source, for findings about who did something (scans).
    pub src: Option<Addr>,
    /// The protocol payload inspection found on that port, if any.
    pub detected: Option<Protocol>,
    pub evidence: Evidence,
    /// Up to 10 client addresses, the lowest.
    pub clients: Vec<Addr>,
    /// Packet times of the first and last packet or attempt behind it.
    pub first_ns: u64,
    pub last_ns: u64,
}

/// Scan thresholds (`--scan-ports`, `--sweep-hosts`, `--scan-window`); Zeek's
/// defaults.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub ports: usize,
    pub hosts: usize,
    pub window: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            ports: 15,
            hosts: 25,
            window: Duration::from_secs(300),
        }
    }
}

/// Every finding of an analysis, most severe first ([`sort`]): policy
/// violations (with a policy), scans among the failed `attempts` (which this
/// sorts), protocol mismatches and cleartext.
pub fn findings(
    inventory: &Inventory,
    attempts: &mut [Attempt],
    policy: Option<&Policy>,
    services: &Services,
    thresholds: Thresholds,
) -> Vec<Finding> {
    let mut all = policy
        .map(|p| unexpected_ports(inventory, p))
        .unwrap_or_default();
    all.extend(scan::scans(attempts, thresholds));
    all.extend(payload::service_mismatches(inventory, services));
    all.extend(payload::cleartext(inventory));
    sort(&mut all);
    all
}

/// A server port a finding is about, with what was seen there: the common
/// part of `unexpected-port`, `service-mismatch` and `cleartext` findings.
pub(crate) struct PortSite<'a> {
    pub key: &'a OpenPortKey,
    pub detected: Option<Protocol>,
    pub span: Span,
    pub packets: u64,
    pub bytes: u64,
}

impl PortSite<'_> {
    /// A finding on this port; `flows` and `clients` are those showing it.
    pub fn finding(
        &self,
        kind: Kind,
        severity: Severity,
        flows: u64,
        clients: &Distinct,
    ) -> Finding {
        let k = self.key;
        Finding {
            kind,
            severity,
            transport: k.transport,
            port: Some(k.port),
            host: Some(k.host),
            src: None,
            detected: self.detected,
            evidence: Evidence {
                flows: Some(flows),
                clients: Some(clients.len()),
                packets: Some(self.packets),
                bytes: Some(self.bytes),
                ..Evidence::default()
            },
            clients: clients.lowest(),
            first_ns: self.span.first_ns,
            last_ns: self.span.last_ns,
        }
    }
}

/// Services seen serving outside the policy.
pub fn unexpected_ports(inv: &Inventory, policy: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    for (k, o) in inv.open_ports() {
        let Decision::Denied { rule } = policy.check(&k.host, k.transport, k.port) else {
            continue;
        };
        let site = PortSite {
            key: k,
            detected: inv.protocols_of(k).first().map(|(p, _)| *p),
            span: o.span,
            packets: o.to_server.packets + o.to_client.packets,
            bytes: o.to_server.bytes + o.to_client.bytes,
        };
        let kind = Kind::UnexpectedPort {
            rule: rule.to_string(),
        };
        out.push(site.finding(kind, Severity::Medium, o.span.flows, &o.clients));
    }
    sort(&mut out);
    out
}

/// Most severe first, then by kind, host (as its text sorts), transport and
/// port; findings equal on all of these keep their order.
pub fn sort(f: &mut [Finding]) {
    f.sort_by_cached_key(|f| {
        (
            std::cmp::Reverse(f.severity),
            f.kind.name(),
            f.host.as_ref().map(ip_text),
            f.transport,
            f.port,
        )
    });
}
