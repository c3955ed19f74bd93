//! `portflow firewall`: the rules that enforce a policy, as an nftables
//! script or an iptables-restore / ip6tables-restore file.
//!
//! For one host (`--host ADDR`): an inbound ruleset from the policy entry
//! that decides for that address. Without a host: a gateway's forward
//! ruleset for the policy's networks, most specific first, so that the
//! entry that decides in the policy decides in the kernel. Both accept
//! established and related traffic, loopback (host), the ICMP and ICMPv6
//! messages a network needs to work (unreachable and packet-too-big for
//! path MTU discovery, time exceeded, parameter problems, echo requests,
//! and neighbour and router discovery), the allowed ports, and drop (and
//! count) the rest. Output is the same for the same input, byte for byte.
use crate::decode::{to_ip, Addr};
use crate::detect::policy::{Allowed, Network, Policy};
use crate::services::Transport;
use std::fmt::{self, Write};

/// The rule language written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One `nft -f` script, IPv4 and IPv6 in one `inet` table.
    Nftables,
    /// `iptables-restore`: IPv4.
    Iptables,
    /// `ip6tables-restore`: IPv6.
    Ip6tables,
}

/// What to write.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: Target,
    /// Inbound rules for this host; `None`: a gateway's forward rules.
    pub host: Option<Addr>,
    /// Log dropped packets (rate-limited) before dropping them.
    pub log: bool,
    /// Write rules that do not allow tcp/22 to the host anyway.
    pub allow_lockout: bool,
}

/// Why no ruleset was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallError {
    /// The host's rule does not allow SSH: loading it could cut the
    /// administrator's own session.
    Lockout { host: String, rule: String },
    /// The policy says something the rules cannot say faithfully.
    Unfaithful(String),
}

impl fmt::Display for FirewallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirewallError::Lockout { host, rule } => write!(
                f,
                "the policy does not allow tcp/22 (ssh) to {host} ({rule}): loading these rules \
                 over SSH would cut your own session. Allow 22 in the policy, or pass \
                 --allow-lockout if you have another way in (a console)"
            ),
            FirewallError::Unfaithful(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for FirewallError {}

/// A ruleset and what the user should know about it.
pub struct Ruleset {
    pub text: String,
    pub warnings: Vec<String>,
}

/// ICMP (IPv4) types a host or network needs to work.
const ICMP: &str = "destination-unreachable, time-exceeded, parameter-problem, echo-request";
/// ICMPv6 types: the same, packet-too-big, and neighbour and router discovery.
const ICMPV6: &str = "destination-unreachable, packet-too-big, time-exceeded, parameter-problem, \
                      echo-request, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, \
                      nd-neighbor-advert";

/// The rules enforcing `policy` (read from `source`) as asked.
pub fn ruleset(policy: &Policy, source: &str, req: &Request) -> Result<Ruleset, FirewallError> {
    let mut warnings = Vec::new();
    let text = match req.host {
        Some(host) => {
            let (allowed, rule) = match policy.rule_for(&host) {
                Some(r) => (&r.allowed, format!("[[hosts]] match = \"{}\"", r.name)),
                None => (&policy.default, "[default]".to_string()),
            };
            let name = to_ip(&host).to_string();
            if !allowed.allows(Transport::Tcp, 22) {
                let lockout = FirewallError::Lockout {
                    host: name.clone(),
                    rule: rule.clone(),
                };
                if !req.allow_lockout {
                    return Err(lockout);
                }
                warnings.push(format!("--allow-lockout: {lockout}"));
            }
            let head = format!("inbound rules for {name} from {source} ({rule})");
            match req.target {
                Target::Nftables => nft_host(&head, allowed, req.log),
                t => ipt_host(&head, allowed, req.log, t == Target::Ip6tables),
            }
        }
        None => {
            let entries = forward_entries(policy)?;
            if req.target != Target::Nftables {
                warnings.push(
                    "an iptables-restore file replaces the whole filter table, the gateway's own \
                     INPUT rules included (its INPUT policy here is ACCEPT); a gateway with rules \
                     of its own is better served by --target nftables, whose table stands apart"
                        .into(),
                );
            }
            let head = format!("forward rules for the networks of {source}");
            match req.target {
                Target::Nftables => nft_forward(&head, &entries, req.log),
                t => ipt_forward(&head, &entries, req.log, t == Target::Ip6tables),
            }
        }
    };
    Ok(Ruleset { text, warnings })
}

/// The policy's entries a gateway enforces, most specific first (on a tie
/// in file order, as the policy decides); refuses what it cannot say.
fn forward_entries(policy: &Policy) -> Result<Vec<(Network, &str, &Allowed)>, FirewallError> {
    if !policy.default.is_empty() {
        return Err(FirewallError::Unfaithful(
            "[default] allows ports to every host not listed, which a gateway cannot tell from \
             the rest of the internet: list the networks in [[hosts]], or write a host's rules \
             with --host"
                .into(),
        ));
    }
    let mut out = Vec::new();
    for r in &policy.hosts {
        let net = r.network().ok_or_else(|| {
            FirewallError::Unfaithful(format!(
                "{}: an IPv6 network that takes in IPv4-mapped addresses but not all of IPv6 \
                 cannot be written as IPv4 or IPv6 rules; split it",
                r.name
            ))
        })?;
        out.push((net, r.name.as_str(), &r.allowed));
    }
    let bits = |n: &Network| match n {
        Network::Any => 0u32,
        Network::V4(_, p) => 96 + *p as u32,
        Network::V6(_, p) => *p as u32,
    };
    out.sort_by_key(|(n, _, _)| std::cmp::Reverse(bits(n)));
    Ok(out)
}

/// `{ 22, 443, 8000-8099 }` for nft, or `None` when nothing is allowed.
fn nft_set(ranges: &[(u16, u16)]) -> Option<String> {
    if ranges.is_empty() {
        return None;
    }
    let items: Vec<String> = ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect();
    Some(format!("{{ {} }}", items.join(", ")))
}

/// The nft rules accepting `allowed`, each prefixed with `cond`.
fn nft_accepts(out: &mut String, cond: &str, allowed: &Allowed) {
    for t in Transport::ALL {
        if let Some(set) = nft_set(allowed.ranges(t)) {
            let _ = writeln!(out, "\t\t{cond}{} dport {set} accept", t.as_str());
        }
    }
}

fn nft_drop(out: &mut String, cond: &str, log: bool) {
    if log {
        let _ = writeln!(
            out,
            "\t\t{cond}limit rate 10/second burst 20 packets log prefix \"portflow drop: \""
        );
    }
    let _ = writeln!(out, "\t\t{cond}counter drop");
}

fn nft_head(out: &mut String, head: &str, chain: &str, policy: &str) {
    let _ = writeln!(out, "#!/usr/sbin/nft -f\n# portflow firewall: {head}.");
    let _ = writeln!(
        out,
        "# Load with `nft -f FILE`: it replaces the table inet portflow and leaves other tables alone.\n"
    );
    out.push_str("table inet portflow\ndelete table inet portflow\n\ntable inet portflow {\n");
    let _ = writeln!(
        out,
        "\tchain {chain} {{\n\t\ttype filter hook {chain} priority filter; policy {policy};"
    );
    out.push_str("\t\tct state established,related accept\n\t\tct state invalid drop\n");
}

fn nft_icmp(out: &mut String) {
    let _ = writeln!(out, "\t\tmeta l4proto icmp icmp type {{ {ICMP} }} accept");
    let _ = writeln!(
        out,
        "\t\tmeta l4proto ipv6-icmp icmpv6 type {{ {ICMPV6} }} accept"
    );
}

fn nft_host(head: &str, allowed: &Allowed, log: bool) -> String {
    let mut out = String::new();
    nft_head(&mut out, head, "input", "drop");
    out.push_str("\t\tiif \"lo\" accept\n");
    nft_icmp(&mut out);
    nft_accepts(&mut out, "", allowed);
    nft_drop(&mut out, "", log);
    out.push_str("\t}\n}\n");
    out
}

fn nft_forward(head: &str, entries: &[(Network, &str, &Allowed)], log: bool) -> String {
    let mut out = String::new();
    nft_head(&mut out, head, "forward", "accept");
    nft_icmp(&mut out);
    for (net, name, allowed) in entries {
        let cond = match net {
            Network::Any => String::new(),
            Network::V4(a, p) => format!("ip daddr {a}/{p} "),
            Network::V6(a, p) => format!("ip6 daddr {a}/{p} "),
        };
        let _ = writeln!(out, "\t\t# {name}");
        nft_accepts(&mut out, &cond, allowed);
        nft_drop(&mut out, &cond, log);
    }
    out.push_str("\t}\n}\n");
    out
}

/// `--dport 22` or `--dport 8000:8099`.
fn ipt_port(lo: u16, hi: u16) -> String {
    if lo == hi {
        format!("--dport {lo}")
    } else {
        format!("--dport {lo}:{hi}")
    }
}

fn ipt_head(out: &mut String, head: &str, v6: bool, input: &str, forward: &str) {
    let tool = if v6 {
        "ip6tables-restore"
    } else {
        "iptables-restore"
    };
    let _ = writeln!(out, "# portflow firewall: {head}.");
    let _ = writeln!(
        out,
        "# Load with `{tool} < FILE`: it replaces the whole filter table ({}).",
        if v6 { "IPv6" } else { "IPv4" }
    );
    let _ = writeln!(
        out,
        "*filter\n:INPUT {input} [0:0]\n:FORWARD {forward} [0:0]\n:OUTPUT ACCEPT [0:0]"
    );
}

fn ipt_icmp(out: &mut String, chain: &str, v6: bool) {
    let (proto, types) = if v6 {
        ("ipv6-icmp --icmpv6-type", ICMPV6)
    } else {
        ("icmp --icmp-type", ICMP)
    };
    for t in types.split(", ").map(str::trim) {
        let t = match t {
            "nd-router-solicit" => "router-solicitation",
            "nd-router-advert" => "router-advertisement",
            "nd-neighbor-solicit" => "neighbour-solicitation",
            "nd-neighbor-advert" => "neighbour-advertisement",
            other => other,
        };
        let _ = writeln!(out, "-A {chain} -p {proto} {t} -j ACCEPT");
    }
}

fn ipt_accepts(out: &mut String, chain: &str, cond: &str, allowed: &Allowed) {
    for t in Transport::ALL {
        for &(lo, hi) in allowed.ranges(t) {
            let _ = writeln!(
                out,
                "-A {chain} {cond}-p {} -m {} {} -j ACCEPT",
                t.as_str(),
                t.as_str(),
                ipt_port(lo, hi)
            );
        }
    }
}

fn ipt_drop(out: &mut String, chain: &str, cond: &str, log: bool) {
    if log {
        let _ = writeln!(
            out,
            "-A {chain} {cond}-m limit --limit 10/second --limit-burst 20 -j LOG --log-prefix \"portflow drop: \""
        );
    }
    let _ = writeln!(out, "-A {chain} {cond}-j DROP");
}

fn ipt_host(head: &str, allowed: &Allowed, log: bool, v6: bool) -> String {
    let mut out = String::new();
    ipt_head(&mut out, head, v6, "DROP", "ACCEPT");
    out.push_str("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n");
    out.push_str("-A INPUT -m conntrack --ctstate INVALID -j DROP\n-A INPUT -i lo -j ACCEPT\n");
    ipt_icmp(&mut out, "INPUT", v6);
    ipt_accepts(&mut out, "INPUT", "", allowed);
    ipt_drop(&mut out, "INPUT", "", log);
    out.push_str("COMMIT\n");
    out
}

fn ipt_forward(head: &str, entries: &[(Network, &str, &Allowed)], log: bool, v6: bool) -> String {
    let mut out = String::new();
    ipt_head(&mut out, head, v6, "ACCEPT", "ACCEPT");
    out.push_str("-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n");
    out.push_str("-A FORWARD -m conntrack --ctstate INVALID -j DROP\n");
    ipt_icmp(&mut out, "FORWARD", v6);
    for (net, name, allowed) in entries {
        let cond = match (net, v6) {
            (Network::Any, _) => String::new(),
            (Network::V4(a, p), false) => format!("-d {a}/{p} "),
            (Network::V6(a, p), true) => format!("-d {a}/{p} "),
            _ => continue,
        };
        let _ = writeln!(out, "# {name}");
        ipt_accepts(&mut out, "FORWARD", &cond, allowed);
        ipt_drop(&mut out, "FORWARD", &cond, log);
    }
    out.push_str("COMMIT\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;

    const POLICY: &str = "[[hosts]]\nmatch = \"10.0.0.0/24\"\ntcp = [22, 443, \"8000-8099\"]\nudp = [53]\n\n[[hosts]]\nmatch = \"10.0.0.9\"\ntcp = [80]\n\n[[hosts]]\nmatch = \"2001:db8::/64\"\ntcp = [22]\n";

    fn req(target: Target, host: Option<[u8; 4]>) -> Request {
        Request {
            target,
            host: host.map(|h| v4_mapped(&h)),
            log: false,
            allow_lockout: false,
        }
    }

    #[test]
    fn a_host_gets_its_deciding_entrys_ports() {
        let p = Policy::parse("p.toml", POLICY).unwrap();
        let r = ruleset(&p, "p.toml", &req(Target::Nftables, Some([10, 0, 0, 1]))).unwrap();
        assert!(
            r.text
                .contains("\t\ttcp dport { 22, 443, 8000-8099 } accept\n"),
            "{}",
            r.text
        );
        assert!(r.text.contains("\t\tudp dport { 53 } accept\n"));
        assert!(r.text.contains("policy drop;"));
        assert!(r.text.contains("nd-neighbor-solicit"));
        let ipt = ruleset(&p, "p.toml", &req(Target::Iptables, Some([10, 0, 0, 1]))).unwrap();
        assert!(ipt
            .text
            .contains("-A INPUT -p tcp -m tcp --dport 8000:8099 -j ACCEPT\n"));
        assert!(ipt.text.ends_with("-A INPUT -j DROP\nCOMMIT\n"));
    }

    #[test]
    fn no_ssh_for_the_host_is_refused_unless_asked() {
        let p = Policy::parse("p.toml", POLICY).unwrap();
        let e = ruleset(&p, "p.toml", &req(Target::Nftables, Some([10, 0, 0, 9])))
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("10.0.0.9 ([[hosts]] match = \"10.0.0.9\")"),
            "{e}"
        );
        let mut anyway = req(Target::Nftables, Some([10, 0, 0, 9]));
        anyway.allow_lockout = true;
        let r = ruleset(&p, "p.toml", &anyway).unwrap();
        assert_eq!(r.warnings.len(), 1);
        assert!(!r.text.contains("dport { 22"));
    }

    #[test]
    fn a_gateway_checks_the_most_specific_network_first() {
        let p = Policy::parse("p.toml", POLICY).unwrap();
        let r = ruleset(&p, "p.toml", &req(Target::Nftables, None)).unwrap();
        let host = r
            .text
            .find("ip daddr 10.0.0.9/32 tcp dport { 80 }")
            .unwrap();
        let net = r.text.find("ip daddr 10.0.0.0/24 tcp dport").unwrap();
        assert!(host < net, "{}", r.text);
        assert!(r
            .text
            .contains("ip6 daddr 2001:db8::/64 tcp dport { 22 } accept"));
        let v6 = ruleset(&p, "p.toml", &req(Target::Ip6tables, None)).unwrap();
        assert!(v6
            .text
            .contains("-A FORWARD -d 2001:db8::/64 -p tcp -m tcp --dport 22 -j ACCEPT"));
        assert!(!v6.text.contains("10.0.0"));
        let with_default = Policy::parse("p.toml", "[default]\ntcp = [80]\n").unwrap();
        assert!(ruleset(&with_default, "p.toml", &req(Target::Nftables, None)).is_err());
        let mapped = Policy::parse("p.toml", "[[hosts]]\nmatch = \"::/80\"\ntcp = [1]\n").unwrap();
        assert!(ruleset(&mapped, "p.toml", &req(Target::Nftables, None)).is_err());
    }
}
