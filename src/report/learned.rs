//! A learned policy as the TOML file a reviewer reads (docs/POLICY.md):
//! one line per port with its evidence as a comment, the ports below the
//! thresholds commented out; and `--update`, which adds what was learned to
//! an existing policy through `toml_edit`, keeping the user's edits,
//! comments and layout.
use super::table::plural;
use super::time::rfc3339;
use crate::decode::Addr;
use crate::detect::learn::{Entry, Learned, SeenPort};
use crate::detect::policy::{Decision, Policy, PolicyError};
use crate::services::Transport;
use std::fmt::Write;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

/// A time to the second, for comments.
fn when(ns: u64) -> String {
    let t = rfc3339(ns);
    match t.find('.') {
        Some(i) => format!("{}Z", &t[..i]),
        None => t,
    }
}

/// The evidence of one port, as its comment says it.
pub fn evidence(p: &SeenPort, l: &Learned) -> String {
    let mut s = p.service.clone().unwrap_or_else(|| "no IANA name".into());
    if let Some(d) = p.detected {
        let _ = write!(s, "; detected {d}");
    }
    let _ = write!(
        s,
        "; {}, {}",
        plural(p.flows, "flow"),
        plural(p.clients, "client")
    );
    if p.hosts > 1 {
        let _ = write!(s, " over {} hosts", p.hosts);
    }
    let _ = write!(s, "; {} to {}", when(p.first_ns), when(p.last_ns));
    let th = l.thresholds;
    if !p.allowed {
        if p.flows < th.min_flows {
            let _ = write!(s, " (below --min-flows {})", th.min_flows);
        } else {
            let _ = write!(s, " (below --min-clients {})", th.min_clients);
        }
    }
    s
}

/// The whole policy file; `source` says what it was learned from.
pub fn policy_text(l: &Learned, source: &str) -> String {
    let th = l.thresholds;
    let mut out = String::new();
    let _ = writeln!(out, "# Learned by `portflow learn` from {source}.");
    let _ = writeln!(
        out,
        "# A port is allowed when it was served in at least {} and to at least {} \
         (--min-flows, --min-clients);",
        plural(th.min_flows, "flow"),
        plural(th.min_clients, "client")
    );
    let _ = writeln!(
        out,
        "# ports below that are listed commented out. Review every line before enforcing it \
         (portflow firewall)."
    );
    if let Some(g) = l.group {
        let _ = writeln!(
            out,
            "# Hosts of one /{} (IPv4) or /{} (IPv6) network serving the same ports are one entry.",
            g.v4, g.v6
        );
    }
    out.push_str("\n[default]  # hosts not listed below may serve nothing\ntcp = []\nudp = []\n");
    for e in &l.entries {
        out.push('\n');
        entry_text(&mut out, e, l);
    }
    out
}

fn entry_text(out: &mut String, e: &Entry, l: &Learned) {
    let _ = write!(out, "[[hosts]]\nmatch = \"{}\"", e.matches);
    if e.hosts > 1 {
        let _ = write!(out, "  # {} hosts", e.hosts);
    }
    out.push('\n');
    for t in Transport::ALL {
        let ports: Vec<&SeenPort> = e.ports.iter().filter(|p| p.transport == t).collect();
        if ports.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{} = [", t.as_str());
        for p in ports {
            let hash = if p.allowed { "" } else { "# " };
            let _ = writeln!(out, "    {hash}{},  # {}", p.port, evidence(p, l));
        }
        out.push_str("]\n");
    }
}

/// Adds what `l` allows and `existing` (the text of `path`) does not to
/// that policy, keeping everything the file has. A port goes into the
/// entry whose `match` is the learned entry's; with none, into a new entry
/// that first repeats the ports of the rule deciding for that host today
/// (a new, more specific entry would otherwise take them away). Ports
/// below the thresholds are added commented out where a port is added.
pub fn update(existing: &str, path: &str, l: &Learned) -> Result<String, PolicyError> {
    let policy = Policy::parse(path, existing)?;
    let mut doc: DocumentMut = existing
        .parse()
        .map_err(|e: toml_edit::TomlError| PolicyError {
            path: path.to_string(),
            line: 0,
            column: 0,
            message: e.to_string(),
        })?;
    for e in &l.entries {
        let Some(addr) = first_address(&e.matches) else {
            continue;
        };
        let new: Vec<&SeenPort> = e
            .ports
            .iter()
            .filter(|p| p.allowed)
            .filter(|p| {
                matches!(
                    policy.check(&addr, p.transport, p.port),
                    Decision::Denied { .. }
                )
            })
            .collect();
        if new.is_empty() {
            continue;
        }
        let table = entry_table(&mut doc, &policy, &e.matches, &addr);
        for t in Transport::ALL {
            let mine: Vec<&SeenPort> = e.ports.iter().filter(|p| p.transport == t).collect();
            if !new.iter().any(|p| p.transport == t) {
                continue;
            }
            let array = table
                .entry(t.as_str())
                .or_insert(Item::Value(Value::Array(Array::new())))
                .as_array_mut();
            if let Some(a) = array {
                let denied = |p: &SeenPort| {
                    matches!(
                        policy.check(&addr, p.transport, p.port),
                        Decision::Denied { .. }
                    )
                };
                for p in mine
                    .into_iter()
                    .filter(|p| new.contains(p) || (!p.allowed && denied(p)))
                {
                    append(a, p, &evidence(p, l));
                }
            }
        }
    }
    let mut text = doc.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// The address a `match` names (a network's own address).
fn first_address(m: &str) -> Option<Addr> {
    let a: std::net::IpAddr = m.split('/').next()?.trim().parse().ok()?;
    Some(crate::decode::from_ip(a))
}

/// The `[[hosts]]` table whose `match` is `matches`, made (after the others)
/// when there is none, repeating the ports of the rule that decides for
/// `addr` today.
fn entry_table<'d>(
    doc: &'d mut DocumentMut,
    policy: &Policy,
    matches: &str,
    addr: &Addr,
) -> &'d mut Table {
    if doc
        .get("hosts")
        .and_then(Item::as_array_of_tables)
        .is_none()
    {
        doc.insert("hosts", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    let existing = doc["hosts"].as_array_of_tables().and_then(|hosts| {
        hosts
            .iter()
            .position(|t| t.get("match").and_then(Item::as_str) == Some(matches))
    });
    if let Some(i) = existing {
        return doc["hosts"]
            .as_array_of_tables_mut()
            .and_then(|h| h.get_mut(i))
            .expect("found above");
    }
    let deciding = policy.deciding_rule(addr);
    let copied: Option<Table> = {
        let source = match deciding {
            Some(name) => doc["hosts"].as_array_of_tables().and_then(|hosts| {
                hosts
                    .iter()
                    .find(|t| t.get("match").and_then(Item::as_str) == Some(name))
            }),
            None => doc.get("default").and_then(Item::as_table),
        };
        source.map(|t| {
            let mut c = Table::new();
            for (k, v) in t.iter().filter(|(k, _)| *k != "match") {
                c.insert(k, v.clone());
            }
            c
        })
    };
    let hosts = doc["hosts"].as_array_of_tables_mut().expect("made above");
    let mut t = Table::new();
    t.insert("match", toml_edit::value(matches));
    let from = deciding.unwrap_or("[default]");
    let repeats = copied.as_ref().is_some_and(|c| !c.is_empty());
    t.decor_mut().set_prefix(if repeats {
        format!(
            "\n# Added by `portflow learn --update`: repeats the ports of {from}, which decided\n\
             # for this host before (a new entry would otherwise take them away), then adds those learned.\n"
        )
    } else {
        "\n# Added by `portflow learn --update`.\n".to_string()
    });
    if let Some(c) = copied {
        for (k, v) in c.iter() {
            t.insert(k, v.clone());
        }
    }
    hosts.push(t);
    let last = hosts.len() - 1;
    hosts.get_mut(last).expect("pushed")
}

/// Appends one port to a transport's list: a port learned, or one below
/// the thresholds as a comment (once: not when the list mentions it).
fn append(a: &mut Array, p: &SeenPort, comment: &str) {
    let trailing = a.trailing().as_str().unwrap_or("").to_string();
    if !p.allowed {
        if a.to_string().contains(&format!("# {},", p.port)) {
            return;
        }
        let lead = if trailing.ends_with('\n') { "" } else { "\n" };
        a.set_trailing(format!("{trailing}{lead}    # {},  # {comment}\n", p.port));
        return;
    }
    let lead = if a.is_empty() && trailing.is_empty() {
        "\n    ".to_string()
    } else if trailing.ends_with('\n') {
        format!("{trailing}    ")
    } else {
        format!("{trailing} ")
    };
    let mut v = Value::from(p.port as i64);
    v.decor_mut().set_prefix(lead);
    v.decor_mut().set_suffix("");
    a.push_formatted(v);
    a.set_trailing_comma(true);
    a.set_trailing(format!("  # {comment}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;
    use crate::detect::learn::{seen_port as seen, Thresholds};

    fn learned(entries: Vec<(&str, Vec<SeenPort>)>) -> Learned {
        Learned {
            entries: entries
                .into_iter()
                .map(|(m, ports)| Entry {
                    matches: m.into(),
                    hosts: 1,
                    ports,
                })
                .collect(),
            thresholds: Thresholds::default(),
            group: None,
        }
    }

    fn allowed(p: &Policy, ip: [u8; 4], t: Transport, port: u16) -> bool {
        matches!(p.check(&v4_mapped(&ip), t, port), Decision::Allowed)
    }

    #[test]
    fn the_file_allows_what_was_learned_and_lists_the_rest_commented_out() {
        let l = learned(vec![(
            "10.0.0.1",
            vec![
                seen(Transport::Tcp, 22, 5),
                seen(Transport::Tcp, 8080, 1),
                seen(Transport::Udp, 53, 3),
            ],
        )]);
        let text = policy_text(&l, "test");
        let p = Policy::parse("learned.toml", &text).unwrap();
        assert!(allowed(&p, [10, 0, 0, 1], Transport::Tcp, 22));
        assert!(allowed(&p, [10, 0, 0, 1], Transport::Udp, 53));
        assert!(!allowed(&p, [10, 0, 0, 1], Transport::Tcp, 8080));
        assert!(!allowed(&p, [10, 0, 0, 2], Transport::Tcp, 22));
        assert!(
            text.contains("    # 8080,  # no IANA name; 1 flow, 1 client;"),
            "{text}"
        );
        assert!(text.contains("(below --min-flows 2)"), "{text}");
    }

    #[test]
    fn update_keeps_the_users_text_and_adds_only_what_is_new() {
        let mine = "# my policy\n[default]\ntcp = []\n\n[[hosts]]\nmatch = \"10.0.0.0/24\"  # office\ntcp = [22, 443]  # admins\n\n[[hosts]]\nmatch = \"10.0.0.1\"\ntcp = [\n    22,  # ssh\n]\n";
        let l = learned(vec![
            (
                "10.0.0.1",
                vec![seen(Transport::Tcp, 22, 5), seen(Transport::Tcp, 80, 5)],
            ),
            (
                "10.0.0.7",
                vec![seen(Transport::Tcp, 443, 5), seen(Transport::Udp, 161, 9)],
            ),
            ("10.0.0.8", vec![seen(Transport::Tcp, 22, 5)]),
            ("10.0.0.9", vec![seen(Transport::Tcp, 9999, 1)]),
        ]);
        let text = update(mine, "p.toml", &l).unwrap();
        for kept in ["# my policy", "# office", "# admins", "22,  # ssh"] {
            assert!(text.contains(kept), "{kept} in\n{text}");
        }
        let p = Policy::parse("p.toml", &text).unwrap();
        assert!(allowed(&p, [10, 0, 0, 1], Transport::Tcp, 80), "{text}");
        assert!(allowed(&p, [10, 0, 0, 1], Transport::Tcp, 22));
        // 10.0.0.7 gets an entry of its own for udp/161 that keeps the
        // network's 22 and 443.
        for port in [22, 443] {
            assert!(allowed(&p, [10, 0, 0, 7], Transport::Tcp, port), "{text}");
        }
        assert!(allowed(&p, [10, 0, 0, 7], Transport::Udp, 161), "{text}");
        assert!(text.contains("repeats the ports of 10.0.0.0/24"), "{text}");
        assert!(
            !text.contains("match = \"10.0.0.8\""),
            "already allowed: nothing to add\n{text}"
        );
        assert!(!text.contains("10.0.0.9"), "nothing allowed, nothing added");
        let again = update(&text, "p.toml", &l).unwrap();
        assert_eq!(
            again, text,
            "a second update of the same traffic changes nothing"
        );
    }
}
