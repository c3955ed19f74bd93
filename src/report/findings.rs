//! Findings as the reports show them: one row each, with a sentence that
//! says what was seen (`docs/SCHEMA.md`, `findings`).
use super::table::thousands;
use super::time::rfc3339;
use crate::decode::{ip_text, to_ip};
use crate::detect::{Evidence, Exposure, Finding, Kind, Severity};
use crate::inspect::Protocol;
use crate::services::{Services, Transport};
use serde::Serialize;

/// One finding in the JSON report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingRow {
    /// `unexpected-port`, `service-mismatch`, `port-scan`, `host-sweep`, `odd-flags` or `cleartext`.
    pub kind: &'static str,
    pub severity: &'static str,
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
    pub evidence: EvidenceRow,
    /// Up to 10 client addresses, sorted.
    pub clients: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
    /// Names seen for `host` in the traffic (filled by [`FindingRow::named`]).
    pub host_names: Vec<super::rows::NameRow>,
    /// The finding's severity, for `--fail-on`.
    #[serde(skip)]
    pub level: Severity,
}

/// The counts behind a finding; each kind has the ones that apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EvidenceRow {
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

impl From<Evidence> for EvidenceRow {
    fn from(e: Evidence) -> Self {
        EvidenceRow {
            flows: e.flows,
            clients: e.clients,
            packets: e.packets,
            bytes: e.bytes,
            attempts: e.attempts,
            ports: e.ports,
            hosts: e.hosts,
        }
    }
}

impl FindingRow {
    pub fn new(f: &Finding, services: &Services) -> FindingRow {
        let service = match (f.kind.is_about_a_service(), f.port) {
            (true, Some(port)) => services.name(f.transport, port).map(str::to_string),
            _ => None,
        };
        FindingRow {
            kind: f.kind.name(),
            severity: f.severity.as_str(),
            proto: f.transport,
            port: f.port,
            host: f.host.as_ref().map(ip_text),
            src: f.src.as_ref().map(ip_text),
            service,
            detected: f.detected.map(Protocol::as_str),
            detail: detail(f, services),
            evidence: f.evidence.into(),
            clients: f.clients.iter().map(ip_text).collect(),
            first_seen: rfc3339(f.first_ns),
            last_seen: rfc3339(f.last_ns),
            host_names: Vec::new(),
            level: f.severity,
        }
    }

    /// With the names seen for the finding's host.
    pub fn named(mut self, f: &Finding, names: &crate::stats::names::Names) -> FindingRow {
        if let Some(h) = &f.host {
            self.host_names = super::rows::NameRow::all(names.of(h));
        }
        self
    }
}

/// The sentence that says what a finding saw.
pub fn detail(f: &Finding, services: &Services) -> String {
    let e = &f.evidence;
    let n = |v: Option<u64>| thousands(v.unwrap_or(0));
    let ip = |a: &Option<_>| {
        a.as_ref()
            .map(to_ip)
            .map(|a| a.to_string())
            .unwrap_or_default()
    };
    let (host, src, t) = (ip(&f.host), ip(&f.src), f.transport);
    let port = f.port.unwrap_or(0);
    let name = services.name(t, port);
    match &f.kind {
        Kind::UnexpectedPort { rule } => format!(
            "{host} serves {t}/{port}{}{} to {} client(s), {} flow(s), {} bytes; the policy ({rule}) does not allow it",
            name.map(|n| format!(" ({n})")).unwrap_or_default(),
            f.detected.map(|p| format!(", speaking {p}")).unwrap_or_default(),
            n(e.clients),
            n(e.flows),
            n(e.bytes),
        ),
        Kind::ServiceMismatch { registered } => {
            let registered = match (name, registered) {
                // "registered for ftp", not "for ftp (ftp)".
                (Some(n), Some(q)) if q.as_str().eq_ignore_ascii_case(n) => {
                    format!("registered for {n}")
                }
                (Some(n), Some(q)) => format!("registered for {n} ({q})"),
                (Some(n), None) => format!("registered for {n}"),
                (None, _) => "not registered to any service".to_string(),
            };
            format!(
                "{host} speaks {} on {t}/{port}, {registered}; {} flow(s) from {} client(s)",
                f.detected.map(Protocol::as_str).unwrap_or("-"),
                n(e.flows),
                n(e.clients)
            )
        }
        Kind::Cleartext(what) => format!(
            "{} on {host} {t}/{port}: {} flow(s) from {} client(s)",
            exposure(*what, f.detected),
            n(e.flows),
            n(e.clients)
        ),
        Kind::PortScan {
            distinct,
            window,
            refused,
        } => format!(
            "{src} tried {} distinct {t} ports on {host} within {}s ({} ports in all; {} attempts, {} refused, {} unanswered)",
            thousands(*distinct),
            window.as_secs(),
            n(e.ports),
            n(e.attempts),
            thousands(*refused),
            thousands(e.attempts.unwrap_or(0).saturating_sub(*refused))
        ),
        Kind::HostSweep { distinct, window } => format!(
            "{src} tried {t}/{port} on {} distinct hosts within {}s ({} hosts in all, {} attempts failed or unanswered)",
            thousands(*distinct),
            window.as_secs(),
            n(e.hosts),
            n(e.attempts)
        ),
        Kind::OddFlags { null, fin, xmas } => format!(
            "{src} sent {} NULL, {} FIN and {} Xmas probes (TCP packets no normal stack opens with) to {} port(s) on {} host(s)",
            thousands(*null),
            thousands(*fin),
            thousands(*xmas),
            n(e.ports),
            n(e.hosts)
        ),
    }
}

/// What a `cleartext` finding saw, in words.
fn exposure(what: Exposure, p: Option<Protocol>) -> String {
    let name = p.map(|p| p.as_str().to_uppercase()).unwrap_or_default();
    match what {
        Exposure::TelnetSession => {
            "Telnet session in cleartext (anything typed, passwords included, is readable)".into()
        }
        Exposure::Login => format!("{name} login in cleartext"),
        Exposure::SessionWithoutTls => {
            format!("{name} session without TLS (no credentials seen in its first packets)")
        }
        Exposure::SmtpAuth => "SMTP AUTH without STARTTLS".into(),
        Exposure::HttpBasic => "HTTP Basic credentials in cleartext".into(),
        Exposure::LoginForm => "password or login form sent over plain HTTP".into(),
        Exposure::HttpAuthorization => {
            "HTTP Authorization header (token or digest) in cleartext".into()
        }
        Exposure::RedisAuth => "Redis AUTH in cleartext".into(),
        Exposure::MqttPassword => "MQTT CONNECT with a password in cleartext".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;
    use std::time::Duration;

    fn finding(kind: Kind, evidence: Evidence) -> Finding {
        Finding {
            kind,
            severity: Severity::Medium,
            transport: Transport::Tcp,
            port: Some(445),
            host: Some(v4_mapped(&[10, 0, 1, 1])),
            src: Some(v4_mapped(&[10, 0, 0, 3])),
            detected: None,
            evidence,
            clients: Vec::new(),
            first_ns: 0,
            last_ns: 0,
        }
    }

    #[test]
    fn each_kind_says_what_it_saw() {
        let s = Services::iana();
        let odd = Kind::OddFlags {
            null: 1,
            fin: 0,
            xmas: 1,
        };
        let e = Evidence {
            attempts: Some(2),
            ports: Some(2),
            hosts: Some(1),
            ..Evidence::default()
        };
        assert_eq!(
            detail(&finding(odd, e), &s),
            "10.0.0.3 sent 1 NULL, 0 FIN and 1 Xmas probes (TCP packets no normal stack opens \
             with) to 2 port(s) on 1 host(s)"
        );
        let scan = Kind::PortScan {
            distinct: 20,
            window: Duration::from_secs(300),
            refused: 5,
        };
        let e = Evidence {
            attempts: Some(30),
            ports: Some(25),
            ..Evidence::default()
        };
        assert_eq!(
            detail(&finding(scan, e), &s),
            "10.0.0.3 tried 20 distinct tcp ports on 10.0.1.1 within 300s (25 ports in all; 30 \
             attempts, 5 refused, 25 unanswered)"
        );
        let mismatch = Finding {
            detected: Some(Protocol::Ssh),
            ..finding(
                Kind::ServiceMismatch {
                    registered: Some(Protocol::Smb),
                },
                Evidence {
                    flows: Some(3),
                    clients: Some(2),
                    ..Evidence::default()
                },
            )
        };
        assert_eq!(
            detail(&mismatch, &s),
            "10.0.1.1 speaks ssh on tcp/445, registered for microsoft-ds (smb); 3 flow(s) from 2 \
             client(s)"
        );
        let row = FindingRow::new(&mismatch, &s);
        assert_eq!(row.service.as_deref(), Some("microsoft-ds"));
        assert_eq!(row.host.as_deref(), Some("10.0.1.1"));
        let sweep = FindingRow::new(
            &finding(
                Kind::HostSweep {
                    distinct: 30,
                    window: Duration::from_secs(300),
                },
                Evidence::default(),
            ),
            &s,
        );
        assert_eq!(sweep.service, None, "a scan names no service");
    }

    #[test]
    fn a_mismatch_names_the_registered_service_once() {
        let s = Services::iana();
        let ftp = Finding {
            detected: Some(Protocol::Smtp),
            port: Some(21),
            ..finding(
                Kind::ServiceMismatch {
                    registered: Some(Protocol::Ftp),
                },
                Evidence {
                    flows: Some(6000),
                    clients: Some(2),
                    ..Evidence::default()
                },
            )
        };
        assert_eq!(
            detail(&ftp, &s),
            "10.0.1.1 speaks smtp on tcp/21, registered for ftp; 6,000 flow(s) from 2 client(s)",
            "the name said once, numbers with separators"
        );
    }
}
