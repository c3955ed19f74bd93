//! Shared helpers for the end-to-end tests: running the binary, and tshark as
//! an independent oracle.
#![allow(dead_code)]

pub mod netns;
pub mod sweep;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Whether this process runs as root (live captures, namespaces, mounts).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether command `name` can be run here.
pub fn tool(name: &str) -> bool {
    Command::new(name).arg("--version").output().is_ok()
}

/// Whether a test can run here (`ok`). When it cannot: in CI (the `CI`
/// variable is set, as `.ci/run` sets it) the test fails, since CI provides
/// root, every tool and the corpus; elsewhere it says why on stderr and
/// returns false, and the test returns without checking anything
/// (`make test`, as root, runs everything).
pub fn can_run(ok: bool, why: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{why}, and CI must run every test (the CI variable is set)");
    }
    eprintln!("skipped: {why} (make test as root runs it)");
    false
}

/// Returns from the test unless it can run here ([`can_run`]).
#[macro_export]
macro_rules! require {
    ($ok:expr, $why:expr) => {
        if !$crate::support::can_run($ok, $why) {
            return;
        }
    };
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared corpus: `PORTFLOW_CORPUS`, or `../shared/corpus`.
pub fn corpus_dir() -> PathBuf {
    std::env::var("PORTFLOW_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("../shared/corpus"))
}

/// Every file below `dir` but notes (`.md`, `.tsv`), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.extension().is_some_and(|x| x == "md" || x == "tsv") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// Captures to compare with another tool: the fixtures (not the damaged
/// `bad-*` ones, nor gzip files with `gz` false) and the shared corpus's
/// clean files (its INDEX.tsv); whether the corpus was there
/// ([`can_run`]: in CI it must be).
pub fn clean_captures(gz: bool) -> (Vec<PathBuf>, bool) {
    let mut files: Vec<PathBuf> = files_under(&fixture("generated"))
        .into_iter()
        .chain(files_under(&fixture("corpus")))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.starts_with("bad-") && !name.ends_with(".txt") && (gz || !name.ends_with(".gz"))
        })
        .collect();
    let corpus = corpus_dir();
    let index = std::fs::read_to_string(corpus.join("INDEX.tsv"));
    let present = can_run(
        index.is_ok(),
        "the shared corpus is not there (PORTFLOW_CORPUS)",
    );
    for line in index.iter().flat_map(|i| i.lines().skip(1)) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() > 14 && f[13] == "clean" && f[14] == "ok" {
            files.push(corpus.join(f[0]));
        }
    }
    (files, present)
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("fixtures").join(name)
}

pub fn portflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portflow"))
}

/// Runs portflow with `args`; returns the output whatever the exit status.
pub fn run(args: &[&str]) -> Output {
    portflow().args(args).output().expect("run portflow")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A report's service or finding as "host proto/port".
pub fn host_port(v: &serde_json::Value) -> String {
    format!(
        "{} {}/{}",
        v["host"].as_str().unwrap_or("-"),
        v["proto"].as_str().unwrap_or("-"),
        v["port"]
    )
}

/// JSON report of `files` (panics with stderr if portflow fails).
pub fn json_report(files: &[&Path], extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<String> = vec!["read".into(), "-q".into(), "--format".into(), "json".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(files.iter().map(|p| p.display().to_string()));
    let o = portflow().args(&args).output().expect("run portflow");
    assert!(
        o.status.success(),
        "portflow {args:?} failed: {}",
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).expect("valid JSON")
}

/// A flow as both tools can name it: transport and the two endpoints, sorted.
pub type FlowId = (String, String, String);

/// Per-flow (packets, bytes) and the totals.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub packets: u64,
    pub bytes: u64,
    pub flows: BTreeMap<FlowId, (u64, u64)>,
}

fn flow_id(proto: &str, a: String, b: String) -> FlowId {
    if a <= b {
        (proto.into(), a, b)
    } else {
        (proto.into(), b, a)
    }
}

fn endpoint(ip: &str, port: &str) -> String {
    // Normalise IPv6 text through std so both tools' spellings meet.
    let ip: std::net::IpAddr = ip.parse().unwrap_or_else(|_| panic!("bad ip {ip}"));
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        v4 => format!("{v4}:{port}"),
    }
}

/// portflow's per-flow counts (from `--flows`) and totals (from the JSON report).
pub fn portflow_counts(file: &Path) -> Result<Counts, String> {
    let o = run(&["read", "-q", "--flows", &file.display().to_string()]);
    if !o.status.success() {
        return Err(stderr(&o));
    }
    let mut c = Counts::default();
    for line in stdout(&o).lines() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let ep = |k: &str| endpoint(v[k]["ip"].as_str().unwrap(), &v[k]["port"].to_string());
        let id = flow_id(v["proto"].as_str().unwrap(), ep("client"), ep("server"));
        let e = c.flows.entry(id).or_default();
        for d in ["to_server", "to_client"] {
            e.0 += v[d]["packets"].as_u64().unwrap();
            e.1 += v[d]["bytes"].as_u64().unwrap();
        }
    }
    let r = json_report(&[file], &[]);
    c.packets = r["totals"]["packets"].as_u64().unwrap();
    c.bytes = r["totals"]["bytes"].as_u64().unwrap();
    Ok(c)
}

pub const TSHARK_FIELDS: &[&str] = &[
    "frame.len",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "sctp.srcport",
    "sctp.dstport",
    "dccp.srcport",
    "dccp.dstport",
    "ip.id",
    "ip.frag_offset",
    "ipv6.fraghdr.ident",
    "ipv6.fraghdr.offset",
];

/// tshark's fields of every packet of `file` (pcapng custom blocks left out:
/// they are records to tshark but carry no packet), one line each.
fn tshark_fields(file: &Path) -> Result<String, String> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(file);
    cmd.args([
        "-o",
        "ip.defragment:FALSE",
        "-o",
        "ipv6.defragment:FALSE",
        "-T",
        "fields",
    ]);
    cmd.args(["-Y", "!frame.cb_pen"]);
    cmd.args([
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-E",
        "separator=\t",
    ]);
    for f in TSHARK_FIELDS {
        cmd.args(["-e", f]);
    }
    let o = cmd
        .output()
        .map_err(|e| format!("cannot run tshark (install it: apt-get install tshark): {e}"))?;
    if !o.status.success() && o.stdout.is_empty() {
        return Err(format!(
            "tshark failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// (transport, source port, destination port).
type Ports = (String, String, String);

/// What tshark shows of an IP packet: its innermost addresses, its transport
/// ports if it has any, and which datagram it is a fragment of at which
/// offset.
struct IpPacket {
    src: String,
    dst: String,
    ports: Option<Ports>,
    frag: Option<(String, u64)>,
}

/// One packet as tshark shows it: its length, and what it shows of it as an
/// IP packet (`None` for packets that are no flow's: ICMP, non-IP).
fn tshark_packet(line: &str) -> (u64, Option<IpPacket>) {
    let f: Vec<&str> = line.split('\t').collect();
    let get = |i: usize| -> Vec<&str> {
        f.get(i)
            .map(|s| s.split('|').filter(|x| !x.is_empty()).collect())
            .unwrap_or_default()
    };
    let len: u64 = f[0].parse().unwrap_or(0);
    let protos: Vec<&str> = f.get(1).map(|s| s.split(':').collect()).unwrap_or_default();
    if protos.iter().any(|p| *p == "icmp" || *p == "icmpv6") {
        return (len, None);
    }
    let Some(ip_at) = protos.iter().rposition(|p| *p == "ip" || *p == "ipv6") else {
        return (len, None);
    };
    let v6 = protos[ip_at] == "ipv6";
    let (src, dst) = if v6 {
        (get(4), get(5))
    } else {
        (get(2), get(3))
    };
    let (Some(src), Some(dst)) = (src.last(), dst.last()) else {
        return (len, None);
    };
    let transport = protos[ip_at..]
        .iter()
        .rposition(|p| matches!(*p, "tcp" | "udp" | "sctp" | "dccp"))
        .map(|i| protos[ip_at + i]);
    let (ident, offset) = if v6 {
        (get(16), get(17))
    } else {
        (get(14), get(15))
    };
    let frag = ident.last().map(|id| {
        let offset = offset.last().and_then(|s| s.parse().ok()).unwrap_or(0);
        (id.to_string(), offset)
    });
    let ports = transport.and_then(|t| {
        let (sp, dp) = match t {
            "tcp" => (get(6), get(7)),
            "udp" => (get(8), get(9)),
            "sctp" => (get(10), get(11)),
            _ => (get(12), get(13)),
        };
        Some((
            t.to_string(),
            sp.last()?.to_string(),
            dp.last()?.to_string(),
        ))
    });
    let (src, dst) = (src.to_string(), dst.to_string());
    (
        len,
        Some(IpPacket {
            src,
            dst,
            ports,
            frag,
        }),
    )
}

/// tshark's view: every packet's length; for TCP/UDP packets, the innermost
/// IP addresses and ports. Later IP fragments are given the ports of their
/// first fragment when it was seen (as portflow does; tshark with
/// defragmentation off shows no ports on them). ICMP packets, which quote a
/// transport header, are not flow packets.
pub fn tshark_counts(file: &Path) -> Result<Counts, String> {
    let text = tshark_fields(file)?;
    let mut c = Counts::default();
    let mut frags: BTreeMap<(String, String, String), Ports> = BTreeMap::new();
    for line in text.lines() {
        let (len, packet) = tshark_packet(line);
        c.packets += 1;
        c.bytes += len;
        let Some(IpPacket {
            src,
            dst,
            ports,
            frag,
        }) = packet
        else {
            continue;
        };
        let key = |id: String| (src.clone(), dst.clone(), id);
        let ports = match (ports, frag) {
            (Some(p), Some((id, 0))) => {
                frags.insert(key(id), p.clone());
                Some(p)
            }
            (Some(p), _) => Some(p),
            (None, Some((id, offset))) if offset > 0 => frags.get(&key(id)).cloned(),
            (None, _) => None,
        };
        let Some((t, sp, dp)) = ports else { continue };
        let e = c
            .flows
            .entry(flow_id(&t, endpoint(&src, &sp), endpoint(&dst, &dp)))
            .or_default();
        e.0 += 1;
        e.1 += len;
    }
    Ok(c)
}

/// Differences between portflow's and tshark's counts, one line each.
pub fn diff(ours: &Counts, theirs: &Counts) -> Vec<String> {
    let mut out = Vec::new();
    if (ours.packets, ours.bytes) != (theirs.packets, theirs.bytes) {
        out.push(format!(
            "totals: portflow {} packets {} bytes, tshark {} packets {} bytes",
            ours.packets, ours.bytes, theirs.packets, theirs.bytes
        ));
    }
    for (k, v) in &theirs.flows {
        match ours.flows.get(k) {
            Some(o) if o == v => {}
            Some(o) => out.push(format!("{k:?}: portflow {o:?}, tshark {v:?}")),
            None => out.push(format!("{k:?}: missing in portflow (tshark {v:?})")),
        }
    }
    for (k, v) in &ours.flows {
        if !theirs.flows.contains_key(k) {
            out.push(format!("{k:?}: only in portflow {v:?}"));
        }
    }
    out
}

/// Selected numeric fields of every `ports[]` entry of a JSON report, keyed by
/// (proto, port) and sorted, for comparing two reports.
pub fn port_fields(r: &serde_json::Value, fields: &[&str]) -> Vec<(String, u64, Vec<u64>)> {
    let mut v: Vec<_> = r["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            let vals = fields
                .iter()
                .map(|f| {
                    f.split('.')
                        .fold(p, |v, k| &v[k])
                        .as_u64()
                        .unwrap_or_else(|| panic!("{f} in {p}"))
                })
                .collect();
            (
                p["proto"].as_str().unwrap().to_string(),
                p["port"].as_u64().unwrap(),
                vals,
            )
        })
        .collect();
    v.sort();
    v
}

/// Joins `files` into pcapng files of at most 300 captures each, in `dir`.
pub fn joined(files: &[PathBuf], dir: &Path) -> Vec<PathBuf> {
    files
        .chunks(300)
        .enumerate()
        .map(|(i, part)| {
            let out = dir.join(format!("part-{i}.pcapng"));
            let st = std::process::Command::new("mergecap")
                .args(["-a", "-F", "pcapng", "-w"])
                .arg(&out)
                .args(part)
                .status()
                .expect("mergecap (make test installs wireshark-common)");
            assert!(st.success(), "mergecap failed on part {i}");
            out
        })
        .collect()
}
