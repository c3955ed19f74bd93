//! The `community_id` of every flow `read --flows` writes equals the one
//! tshark's Community ID dissector (an independent implementation) gives the
//! same conversation, over the fixtures and every clean capture of the shared
//! corpus (`PORTFLOW_CORPUS`, default `../shared/corpus`). The captures are
//! joined into a few pcapng files (mergecap) so that tshark starts a few
//! times, not once per file; both tools read the same joined files. tshark
//! and mergecap must be installed (`make test` installs them).
mod support;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use support::*;

/// A conversation, endpoints in order: protocol number, then the two
/// (address, port) ends.
type Conversation = (u8, (IpAddr, u16), (IpAddr, u16));

fn conversation(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> Conversation {
    (proto, a.min(b), a.max(b))
}

/// The last value of a tshark field that may repeat (comma-separated).
fn last(field: &str) -> &str {
    field.rsplit(',').next().unwrap_or("")
}

/// tshark's Community ID of each conversation in `file`, from the packets it
/// decoded whole with one IP header (a tunnel's packets carry the inner
/// conversation's ID, and a transport header cut short gets an ID without
/// ports: both are left out).
fn tshark_ids(file: &Path) -> BTreeMap<Conversation, BTreeSet<String>> {
    let fields = [
        "ip.proto",
        "ipv6.nxt",
        "ip.src",
        "ip.dst",
        "ipv6.src",
        "ipv6.dst",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.hdr_len",
        "udp.srcport",
        "udp.dstport",
        "udp.length",
        "sctp.srcport",
        "sctp.dstport",
        "sctp.checksum",
        "communityid",
    ];
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(file)
        .args(["--enable-protocol", "communityid", "-T", "fields"])
        .args(["-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark (make test installs it)");
    assert!(out.status.success(), "tshark failed on {}", file.display());
    let mut ids: BTreeMap<Conversation, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != fields.len() || f[15].is_empty() {
            continue;
        }
        let (v4, v6) = (!f[2].is_empty(), !f[4].is_empty());
        if v4 == v6 || f[2..6].iter().any(|x| x.contains(',')) {
            continue; // no IP header, or more than one
        }
        let (src, dst, proto) = if v4 {
            (f[2], f[3], f[0])
        } else {
            (f[4], f[5], f[1])
        };
        let (ports, whole) = match proto {
            "6" => ((f[6], f[7]), f[8]),
            "17" => ((f[9], f[10]), f[11]),
            "132" => ((f[12], f[13]), f[14]),
            _ => continue,
        };
        if whole.is_empty() {
            continue;
        }
        let parse = |a: &str, p: &str| Some((a.parse().ok()?, last(p).parse().ok()?));
        let (Some(a), Some(b)) = (parse(src, ports.0), parse(dst, ports.1)) else {
            continue;
        };
        let c = conversation(proto.parse().unwrap(), a, b);
        ids.entry(c).or_default().insert(f[15].to_string());
    }
    ids
}

/// portflow's flows in `file`: conversation and Community ID.
fn portflow_ids(file: &Path) -> Vec<(Conversation, String)> {
    let out = portflow()
        .args(["read", "--flows", "-q"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", file.display(), stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            let end = |side: &str| {
                (
                    r[side]["ip"].as_str().unwrap().parse().unwrap(),
                    r[side]["port"].as_u64().unwrap() as u16,
                )
            };
            let proto = match r["proto"].as_str().unwrap() {
                "tcp" => 6,
                "udp" => 17,
                "sctp" => 132,
                _ => 33,
            };
            let id = r["community_id"].as_str().unwrap().to_string();
            (conversation(proto, end("client"), end("server")), id)
        })
        .collect()
}

#[test]
fn community_ids_equal_tsharks_over_the_fixtures_and_the_corpus() {
    let (files, corpus) = clean_captures(false);
    let dir = std::env::temp_dir().join(format!("portflow-cid-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut same, mut differ, mut unseen) = (0, Vec::new(), 0);
    for part in joined(&files, &dir) {
        let theirs = tshark_ids(&part);
        for (c, id) in portflow_ids(&part) {
            match theirs.get(&c) {
                None => unseen += 1,
                Some(ids) if ids.contains(&id) => same += 1,
                Some(ids) => differ.push(format!("{c:?}: portflow {id}, tshark {ids:?}")),
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    eprintln!(
        "community id: {} captures, {same} flows the same, {} differ, {unseen} not decoded alike by tshark",
        files.len(),
        differ.len()
    );
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // The corpus has over 6,000 comparable flows; the fixtures about 300
    // (without the corpus only they are compared, and CI fails).
    let least = if corpus { 6000 } else { 200 };
    assert!(same >= least, "only {same} flows compared");
    assert!(unseen * 20 < same, "{unseen} of {same} flows not compared");
}
