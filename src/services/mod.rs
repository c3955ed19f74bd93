//! Service names and port classes.
//!
//! The IANA registry (`data/service-names-port-numbers.csv`, CC0) is compiled into
//! the binary by `build.rs`; nothing is read at run time. A services(5) file given
//! with `--services` overrides or adds names ([`Services::load_overrides`]).

mod etc_services;

use std::collections::HashMap;
use std::fmt;

pub use etc_services::{parse_services_file, ServicesFileError};

/// One registry row as embedded by `build.rs`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RegistryRow {
    /// 0 tcp, 1 udp, 2 sctp, 3 dccp.
    pub transport: u8,
    pub lo: u16,
    pub hi: u16,
    pub name: &'static str,
    pub description: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/iana_services.rs"));

/// A transport protocol that has ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
    Sctp,
    Dccp,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::Tcp,
        Transport::Udp,
        Transport::Sctp,
        Transport::Dccp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Sctp => "sctp",
            Transport::Dccp => "dccp",
        }
    }

    pub fn from_name(s: &str) -> Option<Transport> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Transport::Tcp),
            "udp" => Some(Transport::Udp),
            "sctp" => Some(Transport::Sctp),
            "dccp" => Some(Transport::Dccp),
            _ => None,
        }
    }

    /// The IP protocol number.
    pub fn ip_proto(self) -> u8 {
        match self {
            Transport::Tcp => 6,
            Transport::Udp => 17,
            Transport::Sctp => 132,
            Transport::Dccp => 33,
        }
    }

    pub fn from_ip_proto(p: u8) -> Option<Transport> {
        match p {
            6 => Some(Transport::Tcp),
            17 => Some(Transport::Udp),
            132 => Some(Transport::Sctp),
            33 => Some(Transport::Dccp),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// IANA's three port ranges (RFC 6335 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortClass {
    /// 0-1023, "System Ports".
    WellKnown,
    /// 1024-49151, "User Ports".
    Registered,
    /// 49152-65535, "Dynamic and/or Private Ports".
    Dynamic,
}

impl PortClass {
    pub fn of(port: u16) -> PortClass {
        match port {
            0..=1023 => PortClass::WellKnown,
            1024..=49151 => PortClass::Registered,
            _ => PortClass::Dynamic,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PortClass::WellKnown => "well-known",
            PortClass::Registered => "registered",
            PortClass::Dynamic => "dynamic",
        }
    }
}

/// Where a name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Iana,
    /// A `--services` file.
    Local,
}

/// A resolved service entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceEntry {
    pub transport: Transport,
    pub port: u16,
    /// Last port of a registered range (equal to `port` for single ports).
    pub port_end: u16,
    pub name: String,
    pub description: String,
    pub class: PortClass,
    pub source: Source,
}

/// The service name table: the embedded registry plus local overrides.
#[derive(Debug, Clone, Default)]
pub struct Services {
    overrides: HashMap<(Transport, u16), (String, String)>,
}

impl Services {
    /// The embedded IANA registry alone.
    pub fn iana() -> Services {
        Services::default()
    }

    /// Adds or replaces names from a services(5) file's contents.
    pub fn add_overrides(&mut self, entries: Vec<(Transport, u16, String, String)>) {
        for (t, p, name, comment) in entries {
            self.overrides.insert((t, p), (name, comment));
        }
    }

    /// Loads a services(5) file (`name port/proto [aliases...] [# comment]`).
    pub fn load_overrides(&mut self, path: &std::path::Path) -> Result<(), ServicesFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| ServicesFileError {
            path: path.display().to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        let entries = parse_services_file(&path.display().to_string(), &text)?;
        self.add_overrides(entries);
        Ok(())
    }

    /// The primary name of `port` on `transport`, if any.
    pub fn name(&self, transport: Transport, port: u16) -> Option<&str> {
        if let Some((n, _)) = self.overrides.get(&(transport, port)) {
            return Some(n.as_str());
        }
        iana_primary(transport, port).map(|r| r.name)
    }

    /// Every (name, description) registered for one port: the local entry
    /// first, then the IANA rows (aliases and ranges included).
    pub fn registrations(&self, transport: Transport, port: u16) -> Vec<(&str, &str)> {
        let mut out = Vec::new();
        if let Some((n, d)) = self.overrides.get(&(transport, port)) {
            out.push((n.as_str(), d.as_str()));
        }
        out.extend(iana_rows(transport, port).map(|r| (r.name, r.description)));
        out
    }

    /// Whether the port carries a name (IANA-assigned or local).
    #[inline]
    pub fn is_assigned(&self, transport: Transport, port: u16) -> bool {
        iana_assigned(transport, port)
            || (!self.overrides.is_empty() && self.overrides.contains_key(&(transport, port)))
    }

    /// The entry for one port (the primary name).
    pub fn lookup(&self, transport: Transport, port: u16) -> Option<ServiceEntry> {
        if let Some((n, d)) = self.overrides.get(&(transport, port)) {
            return Some(ServiceEntry {
                transport,
                port,
                port_end: port,
                name: n.clone(),
                description: d.clone(),
                class: PortClass::of(port),
                source: Source::Local,
            });
        }
        iana_primary(transport, port).map(|r| row_entry(r, port))
    }

    /// Every entry for a port on every transport, aliases included.
    pub fn by_port(&self, port: u16) -> Vec<ServiceEntry> {
        let mut out = Vec::new();
        for t in Transport::ALL {
            if let Some(e) = self.lookup(t, port).filter(|e| e.source == Source::Local) {
                out.push(e);
            }
            for r in iana_rows(t, port) {
                out.push(row_entry(r, port));
            }
        }
        out
    }

    /// Every entry whose name equals `name` (case-insensitive).
    pub fn by_name(&self, name: &str) -> Vec<ServiceEntry> {
        let mut out: Vec<ServiceEntry> = self
            .overrides
            .iter()
            .filter(|(_, (n, _))| n.eq_ignore_ascii_case(name))
            .map(|((t, p), (n, d))| ServiceEntry {
                transport: *t,
                port: *p,
                port_end: *p,
                name: n.clone(),
                description: d.clone(),
                class: PortClass::of(*p),
                source: Source::Local,
            })
            .collect();
        for r in IANA_SINGLE.iter().chain(IANA_RANGES.iter()) {
            if r.name.eq_ignore_ascii_case(name) {
                out.push(row_entry(r, r.lo));
            }
        }
        out.sort_by_key(|e| (e.port, e.transport));
        out
    }
}

fn transport_of_code(c: u8) -> Transport {
    Transport::ALL[c as usize]
}

fn row_entry(r: &RegistryRow, port: u16) -> ServiceEntry {
    ServiceEntry {
        transport: transport_of_code(r.transport),
        port: if r.lo == r.hi { r.lo } else { port.max(r.lo) },
        port_end: r.hi,
        name: r.name.to_string(),
        description: r.description.to_string(),
        class: PortClass::of(port),
        source: Source::Iana,
    }
}

#[inline]
fn iana_assigned(t: Transport, port: u16) -> bool {
    IANA_ASSIGNED[t.code() as usize][(port / 64) as usize] & (1u64 << (port % 64)) != 0
}

fn iana_rows(t: Transport, port: u16) -> impl Iterator<Item = &'static RegistryRow> {
    let key = (t.code(), port);
    let start = IANA_SINGLE.partition_point(|r| (r.transport, r.lo) < key);
    let singles = IANA_SINGLE[start..]
        .iter()
        .take_while(move |r| (r.transport, r.lo) == key);
    let ranges = IANA_RANGES
        .iter()
        .filter(move |r| r.transport == key.0 && r.lo <= port && port <= r.hi);
    singles.chain(ranges)
}

fn iana_primary(t: Transport, port: u16) -> Option<&'static RegistryRow> {
    if !iana_assigned(t, port) {
        return None;
    }
    iana_rows(t, port).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_names() {
        let s = Services::iana();
        assert_eq!(s.name(Transport::Tcp, 80), Some("http"));
        assert_eq!(s.name(Transport::Tcp, 443), Some("https"));
        assert_eq!(s.name(Transport::Tcp, 22), Some("ssh"));
        assert_eq!(s.name(Transport::Udp, 53), Some("domain"));
        assert_eq!(s.name(Transport::Tcp, 8080), Some("http-alt"));
        assert_eq!(
            s.name(Transport::Tcp, 4),
            None,
            "unassigned rows carry no name"
        );
    }

    #[test]
    fn ranges_are_resolved() {
        let s = Services::iana();
        assert_eq!(s.name(Transport::Tcp, 6005), Some("x11"));
        assert!(s.is_assigned(Transport::Tcp, 6063));
    }

    #[test]
    fn classes_follow_rfc6335() {
        assert_eq!(PortClass::of(0), PortClass::WellKnown);
        assert_eq!(PortClass::of(1023), PortClass::WellKnown);
        assert_eq!(PortClass::of(1024), PortClass::Registered);
        assert_eq!(PortClass::of(49151), PortClass::Registered);
        assert_eq!(PortClass::of(49152), PortClass::Dynamic);
        assert_eq!(PortClass::of(65535), PortClass::Dynamic);
    }

    #[test]
    fn lookup_by_name_finds_both_transports() {
        let s = Services::iana();
        let e = s.by_name("SSH");
        assert!(e
            .iter()
            .any(|e| e.port == 22 && e.transport == Transport::Tcp));
        let aliases = s.by_port(80);
        assert!(aliases.iter().any(|e| e.name == "www-http"));
        assert_eq!(aliases[0].name, "http");
    }

    #[test]
    fn overrides_win() {
        let mut s = Services::iana();
        s.add_overrides(vec![(
            Transport::Tcp,
            8000,
            "http-dev".into(),
            String::new(),
        )]);
        assert_eq!(s.name(Transport::Tcp, 8000), Some("http-dev"));
        assert_eq!(
            s.lookup(Transport::Tcp, 8000).unwrap().source,
            Source::Local
        );
        assert!(s.is_assigned(Transport::Tcp, 8000));
    }
}
