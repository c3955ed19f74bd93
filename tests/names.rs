//! Names for addresses from the traffic itself, against tshark's view of the
//! same fields (`tls.handshake.extensions_server_name`, `http.host`,
//! `dns.a`/`dns.aaaa`) over the fixtures and every clean capture of the
//! shared corpus (`PORTFLOW_CORPUS`). portflow looks at the first payload
//! packet of each direction of a flow, so the comparison takes tshark's first
//! ClientHello or request of each TCP stream and first answer of each UDP
//! stream; an address with more than four names in tshark's view is left
//! out (portflow keeps four).
mod support;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use support::*;

/// (address, name, source) as tshark sees them: the first of each stream.
fn tshark_names(file: &Path) -> BTreeSet<(String, String, &'static str)> {
    let fields = [
        "tcp.stream",
        "udp.stream",
        "ip.dst",
        "ipv6.dst",
        "tls.handshake.extensions_server_name",
        "http.host",
        "dns.a",
        "dns.aaaa",
        "dns.flags.rcode",
        "udp.srcport",
        "ip.proto",
        "ipv6.nxt",
        "frame.protocols",
    ];
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(file).args([
        "-Y",
        "(tcp && tls.handshake.type == 1) || http.request || (dns.flags.response == 1 && udp)",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark (make test installs it)");
    let mut seen_streams = BTreeSet::new();
    let mut names = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != fields.len() || f[2..4].iter().any(|x| x.contains(',')) {
            continue; // tunnelled: more than one IP header
        }
        if f[12].starts_with("arcnet") {
            continue; // a link type portflow does not decode (counted as such)
        }
        let stream = if f[0].is_empty() {
            format!("u{}", f[1])
        } else {
            format!("t{}", f[0])
        };
        if !seen_streams.insert(stream) {
            continue;
        }
        let dst = if f[2].is_empty() { f[3] } else { f[2] };
        if !f[4].is_empty() && !f[4].contains(',') {
            names.insert((dst.to_string(), f[4].to_ascii_lowercase(), "tls-sni"));
        } else if !f[5].is_empty() {
            let host = f[5].split(':').next().unwrap().to_ascii_lowercase();
            let literal =
                host.chars().all(|c| c.is_ascii_digit() || c == '.') || f[5].starts_with('[');
            if !literal {
                names.insert((dst.to_string(), host, "http-host"));
            }
        } else if f[8] == "0" && matches!(f[9], "53" | "5353" | "5355") {
            for a in f[6]
                .split(',')
                .chain(f[7].split(','))
                .filter(|a| !a.is_empty())
            {
                names.insert((a.to_string(), String::new(), "dns"));
            }
        }
    }
    names
}

/// (address, name, source) in portflow's `names[]`.
fn portflow_names(file: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let r: Value = json_report(&[file], &[]);
    r["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let names = a["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| {
                    let text = |k: &str| n[k].as_str().unwrap().to_string();
                    (text("name"), text("source"))
                })
                .collect();
            (a["address"].as_str().unwrap().to_string(), names)
        })
        .collect()
}

#[test]
fn names_agree_with_tshark_over_the_fixtures_and_the_corpus() {
    require!(tool("tshark"), "tshark is not installed");
    let (files, corpus) = clean_captures(false);
    let dir = std::env::temp_dir().join(format!("portflow-names-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut same, mut missed) = (BTreeMap::<&str, u64>::new(), Vec::new());
    for part in joined(&files, &dir) {
        let theirs = tshark_names(&part);
        let mine = portflow_names(&part);
        let mut per_address: BTreeMap<&str, usize> = BTreeMap::new();
        for (a, _, _) in &theirs {
            *per_address.entry(a.as_str()).or_default() += 1;
        }
        for (addr, name, source) in &theirs {
            if per_address[addr.as_str()] > 4 {
                continue;
            }
            let found = mine.get(addr).is_some_and(|ns| {
                ns.iter()
                    .any(|(n, s)| s == source && (source == &"dns" || n == name))
            });
            if found {
                *same.entry(source).or_default() += 1;
            } else {
                missed.push(format!("{}: {addr} {name} ({source})", part.display()));
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let total: u64 = same.values().sum();
    eprintln!("names: {same:?} agree with tshark, {} missed", missed.len());
    for m in missed.iter().take(20) {
        eprintln!("  missed {m}");
    }
    if corpus {
        for source in ["tls-sni", "http-host", "dns"] {
            assert!(
                same.get(source).copied().unwrap_or(0) >= 10,
                "{source}: {same:?}"
            );
        }
    }
    assert!(total > 0);
    assert!(
        missed.len() as u64 * 50 <= total,
        "more than 2% missed: {missed:#?}"
    );
}
