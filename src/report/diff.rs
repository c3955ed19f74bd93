//! `portflow diff`: what changed between two periods, from their reports
//! (the JSON report, `docs/SCHEMA.md`, or one built from captures): server
//! ports and hosts that appeared or went, a port whose protocol changed,
//! and volumes, flows or clients that changed by a factor. Each change has a
//! severity, so `--fail-on` can alert on "a new door opened".
use super::table::{human_bytes, plural};
use crate::detect::Severity;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The parts of a report a diff reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Side {
    pub schema: String,
    #[serde(default)]
    pub ports: Vec<PortIn>,
    #[serde(default)]
    pub services: Vec<ServiceIn>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PortIn {
    pub proto: String,
    pub port: u16,
    pub service: Option<String>,
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub clients: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServiceIn {
    pub host: String,
    pub proto: String,
    pub port: u16,
    pub service: Option<String>,
    pub detected: Option<String>,
    pub flows: u64,
    pub clients: u64,
    pub bytes: u64,
}

/// What counts as "changed a lot".
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A count must grow or shrink by this factor (`--factor`)...
    pub factor: f64,
    /// ...and the larger side reach this many flows (or clients), or 1 MB.
    pub min_flows: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            factor: 4.0,
            min_flows: 10,
        }
    }
}

/// One side of a change: the counts then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub flows: u64,
    pub clients: u64,
    pub bytes: u64,
}

/// One change (`docs/SCHEMA.md`, `portflow.diff/1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `new-service`, `gone-service`, `protocol`, `volume`, `new-host`,
    /// `gone-host`, `new-port`, `gone-port`, `port-volume`.
    pub kind: &'static str,
    pub severity: &'static str,
    /// The server (null for port-wide changes).
    pub host: Option<String>,
    pub proto: Option<String>,
    pub port: Option<u16>,
    pub service: Option<String>,
    pub before: Option<Counts>,
    pub after: Option<Counts>,
    pub detail: String,
    #[serde(skip)]
    pub level: Severity,
}

/// The changes from `before` to `after`, most severe first.
pub fn diff(before: &Side, after: &Side, limits: Limits) -> Vec<Change> {
    let mut out = services(before, after, limits);
    out.extend(hosts(before, after));
    out.extend(ports(before, after, limits));
    out.sort_by(|a, b| {
        (
            std::cmp::Reverse(a.level),
            a.kind,
            &a.host,
            &a.proto,
            a.port,
        )
            .cmp(&(
                std::cmp::Reverse(b.level),
                b.kind,
                &b.host,
                &b.proto,
                b.port,
            ))
    });
    out
}

type ServiceKey = (String, String, u16);

fn by_service(s: &Side) -> BTreeMap<ServiceKey, &ServiceIn> {
    s.services
        .iter()
        .map(|v| ((v.host.clone(), v.proto.clone(), v.port), v))
        .collect()
}

fn counts(s: &ServiceIn) -> Counts {
    Counts {
        flows: s.flows,
        clients: s.clients,
        bytes: s.bytes,
    }
}

fn described(c: &Counts) -> String {
    format!(
        "{}, {}, {}",
        plural(c.flows, "flow"),
        plural(c.clients, "client"),
        human_bytes(c.bytes)
    )
}

/// Whether `a` to `b` changed by the factor, the larger reaching `least`.
fn a_lot(a: u64, b: u64, least: u64, l: Limits) -> bool {
    let (lo, hi) = (a.min(b), a.max(b));
    hi >= least && hi as f64 >= lo as f64 * l.factor && hi != lo
}

fn change(kind: &'static str, level: Severity, key: &ServiceKey, service: Option<&str>) -> Change {
    Change {
        kind,
        severity: level.as_str(),
        host: Some(key.0.clone()),
        proto: Some(key.1.clone()),
        port: Some(key.2),
        service: service.map(str::to_string),
        before: None,
        after: None,
        detail: String::new(),
        level,
    }
}

fn services(before: &Side, after: &Side, l: Limits) -> Vec<Change> {
    let (b, a) = (by_service(before), by_service(after));
    let mut out = Vec::new();
    let name = |k: &ServiceKey, s: &ServiceIn| {
        let svc = s
            .service
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        format!("{} {}/{}{svc}", k.0, k.1, k.2)
    };
    for (k, s) in &a {
        let Some(old) = b.get(k) else {
            let mut c = change("new-service", Severity::Medium, k, s.service.as_deref());
            c.after = Some(counts(s));
            c.detail = format!("{} serves now: {}", name(k, s), described(&counts(s)));
            out.push(c);
            continue;
        };
        if s.detected.is_some() && s.detected != old.detected {
            let mut c = change("protocol", Severity::Medium, k, s.service.as_deref());
            (c.before, c.after) = (Some(counts(old)), Some(counts(s)));
            let was = old.detected.as_deref().unwrap_or("nothing recognised");
            let now = s.detected.as_deref().unwrap_or("");
            c.detail = format!("{} spoke {was}, now {now}", name(k, s));
            out.push(c);
        }
        let (x, y) = (counts(old), counts(s));
        if a_lot(x.flows, y.flows, l.min_flows, l)
            || a_lot(x.clients, y.clients, l.min_flows, l)
            || a_lot(x.bytes, y.bytes, 1_000_000, l)
        {
            let mut c = change("volume", Severity::Low, k, s.service.as_deref());
            (c.before, c.after) = (Some(x), Some(y));
            c.detail = format!(
                "{}: {} then, {} now",
                name(k, s),
                described(&x),
                described(&y)
            );
            out.push(c);
        }
    }
    for (k, s) in &b {
        if !a.contains_key(k) {
            let mut c = change("gone-service", Severity::Info, k, s.service.as_deref());
            c.before = Some(counts(s));
            c.detail = format!(
                "{} no longer seen serving (it had {})",
                name(k, s),
                described(&counts(s))
            );
            out.push(c);
        }
    }
    out
}

fn hosts(before: &Side, after: &Side) -> Vec<Change> {
    let set =
        |s: &Side| -> BTreeSet<String> { s.services.iter().map(|v| v.host.clone()).collect() };
    let (b, a) = (set(before), set(after));
    let host_change = |kind, level: Severity, h: &String, detail: String| Change {
        kind,
        severity: level.as_str(),
        host: Some(h.clone()),
        proto: None,
        port: None,
        service: None,
        before: None,
        after: None,
        detail,
        level,
    };
    let mut out = Vec::new();
    for h in a.difference(&b) {
        let ports: Vec<String> = after
            .services
            .iter()
            .filter(|s| &s.host == h)
            .map(|s| format!("{}/{}", s.proto, s.port))
            .collect();
        let detail = format!("a new server: {h} serves {}", ports.join(", "));
        out.push(host_change("new-host", Severity::Medium, h, detail));
    }
    for h in b.difference(&a) {
        let detail = format!("{h} no longer seen serving anything");
        out.push(host_change("gone-host", Severity::Info, h, detail));
    }
    out
}

/// Ports some server answered on (probes nobody answered are the
/// findings' business, not a door), by transport and port.
fn ports(before: &Side, after: &Side, l: Limits) -> Vec<Change> {
    let map = |s: &Side| -> BTreeMap<(String, u16), PortIn> {
        let served: BTreeSet<(&str, u16)> = s
            .services
            .iter()
            .map(|v| (v.proto.as_str(), v.port))
            .collect();
        s.ports
            .iter()
            .filter(|p| served.contains(&(p.proto.as_str(), p.port)))
            .map(|p| ((p.proto.clone(), p.port), p.clone()))
            .collect()
    };
    let (b, a) = (map(before), map(after));
    let port_change = |kind, level: Severity, p: &PortIn| Change {
        kind,
        severity: level.as_str(),
        host: None,
        proto: Some(p.proto.clone()),
        port: Some(p.port),
        service: p.service.clone(),
        before: None,
        after: None,
        detail: String::new(),
        level,
    };
    let c = |p: &PortIn| Counts {
        flows: p.flows,
        clients: p.clients,
        bytes: p.bytes,
    };
    let mut out = Vec::new();
    for (k, p) in &a {
        match b.get(k) {
            None => {
                let mut ch = port_change("new-port", Severity::Low, p);
                ch.after = Some(c(p));
                ch.detail = format!(
                    "{}/{} is served now (all its servers): {}",
                    k.0,
                    k.1,
                    described(&c(p))
                );
                out.push(ch);
            }
            Some(old)
                if a_lot(old.bytes, p.bytes, 1_000_000, l)
                    || a_lot(old.flows, p.flows, l.min_flows, l) =>
            {
                let mut ch = port_change("port-volume", Severity::Low, p);
                (ch.before, ch.after) = (Some(c(old)), Some(c(p)));
                ch.detail = format!(
                    "{}/{}: {} then, {} now",
                    k.0,
                    k.1,
                    described(&c(old)),
                    described(&c(p))
                );
                out.push(ch);
            }
            Some(_) => {}
        }
    }
    for (k, p) in &b {
        if !a.contains_key(k) {
            let mut ch = port_change("gone-port", Severity::Info, p);
            ch.before = Some(c(p));
            ch.detail = format!(
                "no server answers on {}/{} now (it had {})",
                k.0,
                k.1,
                described(&c(p))
            );
            out.push(ch);
        }
    }
    out
}

/// The diff as JSON (`portflow.diff/1`).
#[derive(Serialize)]
pub struct DiffReport<'a> {
    pub schema: &'static str,
    pub before: &'a str,
    pub after: &'a str,
    pub changes: &'a [Change],
}

/// The diff as a table: one line per change, most severe first.
pub fn table(before: &str, after: &str, changes: &[Change]) -> String {
    let mut out = format!(
        "portflow diff: {before} -> {after}: {} changes\n",
        changes.len()
    );
    if changes.is_empty() {
        return out;
    }
    let w = changes
        .iter()
        .map(|c| c.kind.len())
        .max()
        .unwrap_or(4)
        .max(6);
    let _ = writeln!(out, "\n{:<8} {:<w$} detail", "severity", "change");
    for c in changes {
        let _ = writeln!(out, "{:<8} {:<w$} {}", c.severity, c.kind, c.detail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(services: &[(&str, u16, Option<&str>, u64)], ports: &[(u16, u64)]) -> Side {
        Side {
            schema: "portflow.report/1".into(),
            services: services
                .iter()
                .map(|&(host, port, detected, flows)| ServiceIn {
                    host: host.into(),
                    proto: "tcp".into(),
                    port,
                    service: None,
                    detected: detected.map(str::to_string),
                    flows,
                    clients: 1,
                    bytes: flows * 100,
                })
                .collect(),
            ports: ports
                .iter()
                .map(|&(port, flows)| PortIn {
                    proto: "tcp".into(),
                    port,
                    service: None,
                    packets: flows * 2,
                    bytes: flows * 100,
                    flows,
                    clients: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn a_new_door_is_medium_and_a_closed_one_info() {
        let b = side(
            &[
                ("10.0.0.1", 443, Some("tls"), 50),
                ("10.0.0.2", 22, None, 5),
            ],
            &[(443, 50)],
        );
        let a = side(
            &[
                ("10.0.0.1", 443, Some("ssh"), 60),
                ("10.0.0.3", 4444, None, 3),
            ],
            &[(443, 60), (4444, 3)],
        );
        let d = diff(&b, &a, Limits::default());
        let kinds: Vec<(&str, &str)> = d.iter().map(|c| (c.severity, c.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("medium", "new-host"),
                ("medium", "new-service"),
                ("medium", "protocol"),
                ("low", "new-port"),
                ("info", "gone-host"),
                ("info", "gone-service"),
            ]
        );
        assert!(
            d[2].detail.contains("spoke tls, now ssh"),
            "{}",
            d[2].detail
        );
    }

    #[test]
    fn volume_changes_need_the_factor_and_enough_flows() {
        let b = side(&[("10.0.0.1", 80, None, 20)], &[(80, 20)]);
        let small = side(&[("10.0.0.1", 80, None, 60)], &[(80, 60)]);
        assert!(
            diff(&b, &small, Limits::default()).is_empty(),
            "3x is not a lot"
        );
        let big = side(&[("10.0.0.1", 80, None, 100)], &[(80, 100)]);
        let d = diff(&b, &big, Limits::default());
        assert_eq!(
            d.iter().map(|c| c.kind).collect::<Vec<_>>(),
            ["port-volume", "volume"]
        );
        let few = side(&[("10.0.0.1", 80, None, 1)], &[(80, 1)]);
        let fewer = side(&[("10.0.0.1", 80, None, 8)], &[(80, 8)]);
        assert!(
            diff(&few, &fewer, Limits::default()).is_empty(),
            "below 10 flows"
        );
    }
}
