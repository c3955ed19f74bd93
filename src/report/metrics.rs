//! `capture --metrics`: the live capture's counters as Prometheus metrics
//! (OpenMetrics text through the `prometheus-client` crate), updated once
//! per interval from the same numbers as the live view; docs/SCHEMA.md lists
//! every metric.
//!
//! Cardinality is bounded: at most `top` ports get series of their own, the
//! busiest by bytes when they are first seen with room left; every other
//! port's traffic is counted under `port="other"` of its transport. A port
//! keeps its series once it has one, and its series counts from that moment
//! (what it carried before stays in `other`), so every series only grows
//! and, per transport, the port series and `other` add up to the traffic.
use crate::detect::{Finding, Kind, Severity};
use crate::pipeline::live::{CaptureSnapshot, PortLive};
use crate::services::Services;
use crate::stats::PortKey;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::collections::{HashMap, HashSet};

/// Ports with series of their own by default (`--metrics-top`).
pub const DEFAULT_TOP: usize = 100;

/// The media type of what [`Metrics::encode`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The media type of what [`Metrics::encode_text`] writes.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum Direction {
    to_server,
    to_client,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabels {
    proto: &'static str,
    /// The port number, or `other`.
    port: String,
    /// The IANA name of the port (empty when none, and for `other`).
    service: String,
    direction: Direction,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabels {
    proto: &'static str,
    port: String,
    service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    kind: &'static str,
    severity: &'static str,
}

/// What was counted at the previous update, to count only what is new.
#[derive(Default, Clone, Copy)]
struct Seen {
    to_server: (u64, u64),
    to_client: (u64, u64),
    flows: u64,
}

/// The metrics of one capture.
pub struct Metrics {
    registry: Registry,
    packets: Family<PortLabels, Counter>,
    bytes: Family<PortLabels, Counter>,
    flows: Family<FlowLabels, Counter>,
    ports_seen: Gauge,
    findings: Family<FindingLabels, Counter>,
    health: Health,
    /// Ports with series of their own.
    own: HashSet<PortKey>,
    top: usize,
    seen: HashMap<PortKey, Seen>,
    capture: CaptureSnapshot,
}

/// The capture's own counters.
#[derive(Default)]
struct Health {
    packets: Counter,
    bytes: Counter,
    decode_errors: Counter,
    received: Counter,
    dropped_kernel: Counter,
    dropped_interface: Counter,
    dropped_queue: Counter,
    threads: Gauge,
}

impl Metrics {
    /// Empty metrics for a capture on `interface` with `threads` capture
    /// threads; at most `top` ports get series of their own.
    pub fn new(interface: &str, threads: usize, top: usize) -> Metrics {
        let mut registry = Registry::with_prefix("portflow");
        let info = Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("interface", interface.to_string()),
        ]);
        registry.register(
            "build",
            "portflow's version and the interface it captures",
            info,
        );
        let m = Metrics {
            registry,
            packets: Family::default(),
            bytes: Family::default(),
            flows: Family::default(),
            ports_seen: Gauge::default(),
            findings: Family::default(),
            health: Health::default(),
            own: HashSet::new(),
            top,
            seen: HashMap::new(),
            capture: CaptureSnapshot::default(),
        };
        m.health.threads.set(threads as i64);
        // Every kind and severity from the start, so that a first finding
        // is an increase and not a new series.
        for kind in Kind::NAMES {
            for s in Severity::ALL {
                let labels = FindingLabels {
                    kind,
                    severity: s.as_str(),
                };
                drop(m.findings.get_or_create(&labels));
            }
        }
        m.register()
    }

    fn register(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "port_packets",
            "Packets of flows to a service port, by direction (port=\"other\": ports past --metrics-top)",
            self.packets.clone(),
        );
        r.register_with_unit(
            "port",
            "Bytes (wire length) of flows to a service port, by direction",
            Unit::Bytes,
            self.bytes.clone(),
        );
        r.register("port_flows", "Flows to a service port", self.flows.clone());
        r.register(
            "ports_seen",
            "Service ports (transport and port) that carried traffic so far",
            self.ports_seen.clone(),
        );
        r.register(
            "findings",
            "Findings raised, by kind and severity (again when a finding's severity rises)",
            self.findings.clone(),
        );
        let h = &self.health;
        r.register("packets", "Packets analysed", h.packets.clone());
        r.register_with_unit(
            "packet",
            "Bytes (wire length) of the packets analysed",
            Unit::Bytes,
            h.bytes.clone(),
        );
        let counters = [
            (
                "decode_error_packets",
                "Packets with a decode error",
                &h.decode_errors,
            ),
            (
                "capture_received_packets",
                "Packets the kernel passed to the capture sockets (on loopback each twice)",
                &h.received,
            ),
            (
                "capture_kernel_dropped_packets",
                "Packets the kernel dropped because a capture ring was full",
                &h.dropped_kernel,
            ),
            (
                "capture_interface_dropped_packets",
                "Packets the interface or its driver dropped",
                &h.dropped_interface,
            ),
            (
                "capture_queue_dropped_packets",
                "Packets dropped between threads (always 0: each capture thread accounts its own)",
                &h.dropped_queue,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        r.register(
            "capture_threads",
            "Capture threads, each with its own socket in the fanout group",
            h.threads.clone(),
        );
        self
    }

    /// Counts what the capture saw since the last update: the ports'
    /// cumulative counters and the capture's totals at one tick.
    pub fn update<'a>(
        &mut self,
        ports: impl IntoIterator<Item = &'a PortLive>,
        capture: &CaptureSnapshot,
        services: &Services,
    ) {
        let mut ports: Vec<&PortLive> = ports.into_iter().collect();
        // Room left goes to the busiest ports not yet with a series.
        ports.sort_by_key(|p| {
            (
                std::cmp::Reverse(p.to_server.bytes + p.to_client.bytes),
                p.key,
            )
        });
        for p in &ports {
            if self.own.len() < self.top && !self.own.contains(&p.key) {
                self.own.insert(p.key);
            }
        }
        for p in ports {
            self.count_port(p, services);
        }
        self.ports_seen.set(self.seen.len() as i64);
        self.count_capture(capture);
    }

    fn count_port(&mut self, p: &PortLive, services: &Services) {
        let was = self.seen.insert(
            p.key,
            Seen {
                to_server: (p.to_server.packets, p.to_server.bytes),
                to_client: (p.to_client.packets, p.to_client.bytes),
                flows: p.flows,
            },
        );
        let was = was.unwrap_or_default();
        let proto = p.key.transport.as_str();
        let (port, service) = if self.own.contains(&p.key) {
            let name = services.name(p.key.transport, p.key.port).unwrap_or("");
            (p.key.port.to_string(), name.to_string())
        } else {
            ("other".to_string(), String::new())
        };
        for (direction, now, before) in [
            (Direction::to_server, p.to_server, was.to_server),
            (Direction::to_client, p.to_client, was.to_client),
        ] {
            let labels = PortLabels {
                proto,
                port: port.clone(),
                service: service.clone(),
                direction,
            };
            self.packets
                .get_or_create(&labels)
                .inc_by(now.packets.saturating_sub(before.0));
            self.bytes
                .get_or_create(&labels)
                .inc_by(now.bytes.saturating_sub(before.1));
        }
        self.flows
            .get_or_create(&FlowLabels {
                proto,
                port,
                service,
            })
            .inc_by(p.flows.saturating_sub(was.flows));
    }

    fn count_capture(&mut self, c: &CaptureSnapshot) {
        let was = std::mem::replace(&mut self.capture, *c);
        let h = &self.health;
        let grow = |counter: &Counter, now: u64, before: u64| {
            counter.inc_by(now.saturating_sub(before));
        };
        grow(&h.packets, c.packets, was.packets);
        grow(&h.bytes, c.bytes, was.bytes);
        grow(&h.decode_errors, c.decode_errors, was.decode_errors);
        grow(&h.received, c.counters.received, was.counters.received);
        grow(
            &h.dropped_kernel,
            c.counters.dropped_kernel,
            was.counters.dropped_kernel,
        );
        grow(
            &h.dropped_interface,
            c.counters.dropped_interface,
            was.counters.dropped_interface,
        );
        grow(&h.dropped_queue, c.dropped_queue, was.dropped_queue);
    }

    /// Counts findings just raised ([`crate::detect::watch::Watch`]).
    pub fn raised(&mut self, found: &[Finding]) {
        for f in found {
            let labels = FindingLabels {
                kind: f.kind.name(),
                severity: f.severity.as_str(),
            };
            self.findings.get_or_create(&labels).inc();
        }
    }

    /// The exposition (OpenMetrics text, [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The exposition in Prometheus's text format 0.0.4 ([`TEXT_CONTENT_TYPE`]),
    /// for clients that do not ask for OpenMetrics (`promtool`, `curl`).
    pub fn encode_text(&self) -> String {
        to_text_format(&self.encode())
    }
}

/// OpenMetrics text as Prometheus text 0.0.4: a counter family is named with
/// its `_total` samples' name, an info family becomes a gauge named with its
/// `_info` sample, and `# UNIT` and `# EOF` lines go.
fn to_text_format(open_metrics: &str) -> String {
    // Family name -> (its name in the text format, its type there).
    let mut families: HashMap<&str, (String, &str)> = HashMap::new();
    for line in open_metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let renamed = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                other => (name.to_string(), other),
            };
            families.insert(name, renamed);
        }
    }
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("HELP", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("TYPE", r)));
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        match meta {
            Some((what, rest)) => {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let (renamed, kind) = families
                    .get(name)
                    .cloned()
                    .unwrap_or((name.to_string(), "untyped"));
                let text = if what == "TYPE" { kind } else { text };
                out.push_str(&format!("# {what} {renamed} {text}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::Transport;
    use crate::stats::Count;

    /// The series the port metrics can have at most with `top` ports of their
    /// own: packets and bytes per direction and flows, for each own port and for
    /// `other` of each transport.
    pub fn port_series_bound(top: usize) -> usize {
        (top + Transport::ALL.len()) * 5
    }

    fn port(transport: Transport, port: u16, packets: u64) -> PortLive {
        PortLive {
            key: PortKey { transport, port },
            to_server: Count {
                packets,
                bytes: packets * 100,
            },
            to_client: Count {
                packets: packets / 2,
                bytes: packets * 10,
            },
            flows: 1,
        }
    }

    /// `metric{labels} value` lines of the exposition for `name`.
    fn values(m: &Metrics, name: &str) -> Vec<(String, u64)> {
        m.encode()
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .map(|l| {
                let (labels, v) = l.rsplit_once(' ').unwrap();
                (labels.to_string(), v.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn ports_past_the_top_fold_into_other_and_every_series_only_grows() {
        let services = Services::iana();
        let mut m = Metrics::new("eth0", 2, 2);
        let c = CaptureSnapshot::default();
        let tick1 = [port(Transport::Tcp, 443, 50), port(Transport::Tcp, 80, 10)];
        m.update(&tick1, &c, &services);
        // A third port comes when there is no room: it is "other".
        let tick2 = [
            port(Transport::Tcp, 443, 60),
            port(Transport::Tcp, 80, 10),
            port(Transport::Tcp, 8080, 500),
            port(Transport::Udp, 53, 4),
        ];
        m.update(&tick2, &c, &services);
        let packets = values(&m, "portflow_port_packets_total");
        let total: u64 = packets.iter().map(|(_, v)| v).sum();
        let want: u64 = tick2
            .iter()
            .map(|p| p.to_server.packets + p.to_client.packets)
            .sum();
        assert_eq!(total, want, "series add up to the traffic: {packets:?}");
        let other = |proto: &str| {
            packets
                .iter()
                .filter(|(l, _)| l.contains("port=\"other\"") && l.contains(proto))
                .map(|(_, v)| v)
                .sum::<u64>()
        };
        assert_eq!(other("tcp"), 750, "8080's 500 + 250");
        assert_eq!(other("udp"), 6);
        assert!(packets.iter().any(|(l, v)| l.contains("port=\"443\"")
            && l.contains("service=\"https\"")
            && *v == 60));
        assert!(m.encode().contains("portflow_ports_seen 4"));
        assert!(m.encode().ends_with("# EOF\n"));
        let bound = port_series_bound(2);
        let series = m
            .encode()
            .lines()
            .filter(|l| l.starts_with("portflow_port_") && !l.starts_with("portflow_port_s"))
            .count();
        assert!(series <= bound, "{series} > {bound}");
    }

    #[test]
    fn capture_counters_follow_the_snapshots() {
        let services = Services::iana();
        let mut m = Metrics::new("lo", 1, 10);
        let mut c = CaptureSnapshot {
            packets: 10,
            bytes: 1000,
            ..CaptureSnapshot::default()
        };
        c.counters.received = 20;
        m.update(&[], &c, &services);
        c.packets = 15;
        c.counters.received = 30;
        c.counters.dropped_kernel = 2;
        m.update(&[], &c, &services);
        let text = m.encode();
        for line in [
            "portflow_packets_total 15",
            "portflow_packet_bytes_total 1000",
            "portflow_capture_received_packets_total 30",
            "portflow_capture_kernel_dropped_packets_total 2",
            "portflow_capture_threads 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.contains("portflow_build_info{version=\""));
        let classic = m.encode_text();
        for line in [
            "# TYPE portflow_packets_total counter",
            "# HELP portflow_packets_total Packets analysed.",
            "# TYPE portflow_build_info gauge",
            "# TYPE portflow_capture_threads gauge",
            "portflow_packets_total 15",
        ] {
            assert!(classic.contains(line), "{line} in\n{classic}");
        }
        assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"));
    }

    #[test]
    fn findings_count_by_kind_and_severity_from_zero() {
        use crate::detect::{Evidence, Finding, Kind, Severity};
        let m0 = Metrics::new("lo", 1, 10);
        let zero = values(&m0, "portflow_findings_total");
        assert_eq!(zero.len(), Kind::NAMES.len() * Severity::ALL.len());
        assert!(zero.iter().all(|(_, v)| *v == 0));
        let mut m = Metrics::new("lo", 1, 10);
        let scan = Finding {
            kind: Kind::OddFlags {
                null: 1,
                fin: 0,
                xmas: 0,
            },
            severity: Severity::Medium,
            transport: Transport::Tcp,
            port: None,
            host: None,
            src: None,
            detected: None,
            evidence: Evidence::default(),
            clients: Vec::new(),
            first_ns: 0,
            last_ns: 0,
        };
        m.raised(&[scan.clone(), scan]);
        let v = values(&m, "portflow_findings_total");
        let odd: Vec<_> = v.iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(
            odd,
            [&(
                "portflow_findings_total{kind=\"odd-flags\",severity=\"medium\"}".to_string(),
                2
            )]
        );
    }
}
