//! `--policy FILE`: which ports each host or network may serve (TOML).
//!
//! ```toml
//! [default]                 # hosts not matched below
//! tcp = []
//! udp = []
//!
//! [[hosts]]
//! match = "10.0.0.0/24"     # an address or a CIDR, IPv4 or IPv6
//! tcp = [22, 443, "8000-8099"]
//! udp = [53]
//! ```
//! A host takes the most specific matching `[[hosts]]` entry (longest prefix;
//! on a tie, the first listed), else `[default]`. A transport a rule does not
//! mention allows nothing; `sctp` and `dccp` are accepted too.
use crate::decode::Addr;
use crate::services::Transport;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use toml::Spanned;

/// A policy file that could not be read or understood, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub path: String,
    /// 1-based; 0 when the file could not be read.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for PolicyError {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(rename = "match")]
    matches: Option<Spanned<String>>,
    #[serde(default)]
    tcp: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    udp: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    sctp: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    dccp: Vec<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    default: Option<RuleFile>,
    #[serde(default)]
    hosts: Vec<RuleFile>,
}

/// Allowed ports per transport, as sorted inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    ranges: [Vec<(u16, u16)>; 4],
}

impl Allowed {
    /// The inclusive port ranges allowed for `t`, sorted.
    pub fn ranges(&self, t: Transport) -> &[(u16, u16)] {
        &self.ranges[t as usize]
    }

    /// Whether it allows nothing at all.
    pub fn is_empty(&self) -> bool {
        self.ranges.iter().all(Vec::is_empty)
    }

    pub fn allows(&self, t: Transport, port: u16) -> bool {
        self.ranges[t as usize]
            .iter()
            .any(|&(lo, hi)| lo <= port && port <= hi)
    }
}

/// One `[[hosts]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    /// The text of `match`, for messages.
    pub name: String,
    network: Addr,
    /// Prefix length over the 128-bit (IPv4-mapped) address.
    prefix: u8,
    pub allowed: Allowed,
}

/// A rule's network in its own address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Every address, IPv4 and IPv6 (`::/0`).
    Any,
    V4(std::net::Ipv4Addr, u8),
    V6(std::net::Ipv6Addr, u8),
}

impl HostRule {
    /// Its network as IPv4 or IPv6; `None` for an IPv6 network shorter than
    /// /96 that takes in IPv4-mapped addresses but not all of IPv6 (no
    /// address family can say that).
    pub fn network(&self) -> Option<Network> {
        let mapped = u128::from_be_bytes(crate::decode::v4_mapped(&[0; 4]));
        let covers_v4 = |p: u8| {
            let mask = u128::MAX << (128 - p as u32);
            u128::from_be_bytes(self.network) & mask == mapped & mask
        };
        Some(match self.prefix {
            0 => Network::Any,
            p if p >= 96 && covers_v4(96) => {
                let o = &self.network[12..];
                Network::V4(std::net::Ipv4Addr::new(o[0], o[1], o[2], o[3]), p - 96)
            }
            p if covers_v4(p) => return None,
            p => Network::V6(std::net::Ipv6Addr::from(self.network), p),
        })
    }

    fn matches(&self, a: &Addr) -> bool {
        let (n, h) = (u128::from_be_bytes(self.network), u128::from_be_bytes(*a));
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - self.prefix as u32)
        };
        n & mask == h & mask
    }
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub default: Allowed,
    pub hosts: Vec<HostRule>,
}

/// Which rule decided, for a finding's detail.
pub enum Decision<'a> {
    Allowed,
    Denied { rule: &'a str },
}

impl Policy {
    /// The `[[hosts]]` entry that decides for `host`: the most specific
    /// that matches (on a tie the first); `None` for `[default]`.
    pub fn rule_for(&self, host: &Addr) -> Option<&HostRule> {
        self.hosts.iter().filter(|r| r.matches(host)).fold(
            None::<&HostRule>,
            |best, r| match best {
                Some(b) if b.prefix >= r.prefix => Some(b),
                _ => Some(r),
            },
        )
    }

    /// The `match` text of the entry that decides for `host` (`None`: `[default]`).
    pub fn deciding_rule(&self, host: &Addr) -> Option<&str> {
        self.rule_for(host).map(|r| r.name.as_str())
    }

    pub fn check(&self, host: &Addr, t: Transport, port: u16) -> Decision<'_> {
        let rule = self.rule_for(host);
        let (allowed, name) = match rule {
            Some(r) => (&r.allowed, r.name.as_str()),
            None => (&self.default, "[default]"),
        };
        if allowed.allows(t, port) {
            Decision::Allowed
        } else {
            Decision::Denied { rule: name }
        }
    }

    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            path: path.display().to_string(),
            line: 0,
            column: 0,
            message: e.to_string(),
        })?;
        Policy::parse(&path.display().to_string(), &text)
    }

    pub fn parse(path: &str, text: &str) -> Result<Policy, PolicyError> {
        let at = |offset: usize, message: String| {
            let before = &text[..offset.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            PolicyError {
                path: path.to_string(),
                line,
                column,
                message,
            }
        };
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            at(offset, e.message().trim().to_string())
        })?;
        let allowed = |r: &RuleFile| -> Result<Allowed, PolicyError> {
            let mut a = Allowed::default();
            for (t, specs) in [
                (Transport::Tcp, &r.tcp),
                (Transport::Udp, &r.udp),
                (Transport::Sctp, &r.sctp),
                (Transport::Dccp, &r.dccp),
            ] {
                for s in specs {
                    let range = port_spec(s.get_ref()).map_err(|m| at(s.span().start, m))?;
                    a.ranges[t as usize].push(range);
                }
                a.ranges[t as usize].sort_unstable();
            }
            Ok(a)
        };
        let default = match &file.default {
            Some(d) => {
                if let Some(m) = &d.matches {
                    return Err(at(m.span().start, "[default] takes no `match`".into()));
                }
                allowed(d)?
            }
            None => Allowed::default(),
        };
        let mut hosts = Vec::new();
        for h in &file.hosts {
            let Some(m) = &h.matches else {
                return Err(at(
                    0,
                    "every [[hosts]] entry needs `match = \"ADDRESS or CIDR\"`".into(),
                ));
            };
            let (network, prefix) = parse_cidr(m.get_ref()).map_err(|e| at(m.span().start, e))?;
            hosts.push(HostRule {
                name: m.get_ref().clone(),
                network,
                prefix,
                allowed: allowed(h)?,
            });
        }
        Ok(Policy { default, hosts })
    }
}

/// One entry of a transport's list: a port (`22`) or a range in quotes
/// (`"8000-8099"`, or `"22"`).
fn port_spec(v: &toml::Value) -> Result<(u16, u16), String> {
    const WHAT: &str =
        "a port is a whole number from 0 to 65535 (22), or a range in quotes (\"8000-8099\")";
    match v {
        toml::Value::Integer(i) => match u16::try_from(*i) {
            Ok(p) => Ok((p, p)),
            Err(_) => Err(format!("{i} is not a port: {WHAT}")),
        },
        toml::Value::Float(f) => Err(format!("{f} is not a port: {WHAT}")),
        toml::Value::String(s) => match s.trim().parse::<u16>() {
            Ok(p) => Ok((p, p)),
            Err(_) => parse_range(s),
        },
        other => Err(format!("{other} is not a port: {WHAT}")),
    }
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("'{s}' is not a port or a range like \"8000-8099\""))?;
    let p = |v: &str| {
        v.trim()
            .parse::<u16>()
            .map_err(|_| format!("'{v}' is not a port (0-65535)"))
    };
    let (lo, hi) = (p(a)?, p(b)?);
    if lo > hi {
        return Err(format!("range '{s}' runs backwards"));
    }
    Ok((lo, hi))
}

/// `10.0.0.0/24`, `2001:db8::/32` or a single address; IPv4 is mapped into IPv6 space.
fn parse_cidr(s: &str) -> Result<(Addr, u8), String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("'{addr}' is not an IP address"))?;
    let (bytes, max, offset) = match ip {
        IpAddr::V4(v4) => (crate::decode::v4_mapped(&v4.octets()), 32u8, 96u8),
        IpAddr::V6(v6) => (v6.octets(), 128u8, 0u8),
    };
    let len = match len {
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("'/{l}' is not a prefix length (0-{max})"))?,
        None => max,
    };
    Ok((bytes, offset + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;

    const EXAMPLE: &str = r#"
[default]
tcp = []
udp = []

[[hosts]]
match = "10.0.0.0/24"
tcp = [22, 443, "8000-8099"]
udp = [53]

[[hosts]]
match = "10.0.0.9"
tcp = []
"#;

    fn denied(p: &Policy, ip: [u8; 4], t: Transport, port: u16) -> bool {
        matches!(p.check(&v4_mapped(&ip), t, port), Decision::Denied { .. })
    }

    #[test]
    fn the_issue_example_works() {
        let p = Policy::parse("p.toml", EXAMPLE).unwrap();
        assert!(!denied(&p, [10, 0, 0, 1], Transport::Tcp, 22));
        assert!(!denied(&p, [10, 0, 0, 1], Transport::Tcp, 8050));
        assert!(denied(&p, [10, 0, 0, 1], Transport::Tcp, 8100));
        assert!(!denied(&p, [10, 0, 0, 1], Transport::Udp, 53));
        assert!(
            denied(&p, [10, 0, 1, 1], Transport::Tcp, 22),
            "outside the network: default"
        );
    }

    #[test]
    fn most_specific_rule_wins() {
        let p = Policy::parse("p.toml", EXAMPLE).unwrap();
        assert!(denied(&p, [10, 0, 0, 9], Transport::Tcp, 22));
        match p.check(&v4_mapped(&[10, 0, 0, 9]), Transport::Tcp, 22) {
            Decision::Denied { rule } => assert_eq!(rule, "10.0.0.9"),
            Decision::Allowed => panic!(),
        }
    }

    #[test]
    fn ipv6_networks() {
        let p = Policy::parse(
            "p.toml",
            "[[hosts]]\nmatch = \"2001:db8::/32\"\ntcp = [443]\n",
        )
        .unwrap();
        let a: std::net::Ipv6Addr = "2001:db8::5".parse().unwrap();
        assert!(matches!(
            p.check(&a.octets(), Transport::Tcp, 443),
            Decision::Allowed
        ));
        assert!(matches!(
            p.check(&a.octets(), Transport::Tcp, 80),
            Decision::Denied { .. }
        ));
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = Policy::parse(
            "p.toml",
            "[[hosts]]\nmatch = \"10.0.0.0/24\"\ntcp = [22, \"90-80\"]\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (3, 12), "{e}");
        assert!(
            e.to_string()
                .starts_with("p.toml:3:12: range '90-80' runs backwards"),
            "{e}"
        );
        let e = Policy::parse("p.toml", "[[hosts]]\nmatch = \"10.0.0.0/33\"\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = Policy::parse("p.toml", "[default]\ntpc = [1]\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = Policy::parse("p.toml", "[default\n").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn ports_out_of_range_or_not_whole_say_where_and_why() {
        for (text, col, what) in [
            ("tcp = [22, 70000]", 12, "70000 is not a port"),
            ("tcp = [-1]", 8, "-1 is not a port"),
            ("udp = [22.5]", 8, "22.5 is not a port"),
            ("tcp = [true]", 8, "true is not a port"),
            ("tcp = [\"80\", \"7-x\"]", 14, "'x' is not a port (0-65535)"),
        ] {
            let e = Policy::parse("p.toml", &format!("[default]\n{text}\n")).unwrap_err();
            assert_eq!((e.line, e.column), (2, col), "{text}: {e}");
            assert!(e.message.contains(what), "{text}: {e}");
            assert!(
                e.to_string().starts_with(&format!("p.toml:2:{col}: ")),
                "{e}"
            );
        }
        let p = Policy::parse("p.toml", "[default]\ntcp = [\"22\", 65535, 0]\n").unwrap();
        assert!(!denied(&p, [1, 1, 1, 1], Transport::Tcp, 22));
        assert!(!denied(&p, [1, 1, 1, 1], Transport::Tcp, 0));
    }
}
