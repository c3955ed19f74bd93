//! `read --ipfix`: a real collector (nfcapd, from Debian's nfdump) receives
//! every flow of the fixtures and of the shared corpus's clean captures, one
//! record per direction, with the packets and bytes `read --flows` gives the
//! same run. nfcapd and nfdump must be installed (`make test` installs them).
mod support;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// One direction of a flow: protocol, source, destination, packets, bytes.
type Record = (String, IpAddr, u16, IpAddr, u16, u64, u64);

/// nfcapd listening on 127.0.0.1:`port`, writing into its own folder.
struct Nfcapd {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
}

impl Nfcapd {
    fn start() -> Nfcapd {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("portflow-nfcapd-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("nfcapd")
            .args([
                "-b",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "3600",
                "-w",
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nfcapd (make test installs nfdump)");
        // Listening once its socket is bound.
        let started = Instant::now();
        while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "nfcapd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nfcapd { child, dir, port }
    }

    /// Stops nfcapd (it writes its file then) and reads what it collected.
    fn collected(mut self) -> Vec<Record> {
        // Time to read what waits in its socket: it stops without reading on.
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let out = Command::new("nfdump")
            .arg("-R")
            .arg(&self.dir)
            .args(["-q", "-6", "-N", "-o", "fmt:%pr %sa %sp %da %dp %pkt %byt"])
            .output()
            .expect("nfdump");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                assert_eq!(f.len(), 7, "{l}");
                // nfdump names some protocols and numbers others.
                let proto = match f[0] {
                    "6" => "tcp".to_string(),
                    "17" => "udp".to_string(),
                    "132" => "sctp".to_string(),
                    "33" => "dccp".to_string(),
                    other => other.to_ascii_lowercase(),
                };
                // An ICMP record's destination "port" is TYPE.CODE.
                let port = |p: &str| p.split('.').next().unwrap().parse().unwrap();
                (
                    proto,
                    f[1].parse().unwrap_or_else(|_| panic!("address in {l}")),
                    port(f[2]),
                    f[3].parse().unwrap(),
                    port(f[4]),
                    f[5].parse().unwrap(),
                    f[6].parse().unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for Nfcapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The records `--flows` lines stand for: client → server and server →
/// client, each when it has packets.
fn records(flows: &str) -> Vec<Record> {
    let mut out = Vec::new();
    for l in flows.lines() {
        let r: Value = serde_json::from_str(l).unwrap();
        let end = |side: &str| {
            (
                r[side]["ip"].as_str().unwrap().parse().unwrap(),
                r[side]["port"].as_u64().unwrap() as u16,
            )
        };
        let ((c, cp), (s, sp)) = (end("client"), end("server"));
        let proto = r["proto"].as_str().unwrap().to_string();
        for (a, ap, b, bp, dir) in [(c, cp, s, sp, "to_server"), (s, sp, c, cp, "to_client")] {
            let packets = r[dir]["packets"].as_u64().unwrap();
            if packets > 0 {
                let bytes = r[dir]["bytes"].as_u64().unwrap();
                out.push((proto.clone(), a, ap, b, bp, packets, bytes));
            }
        }
    }
    out
}

/// How many times each record occurs.
fn tally(v: Vec<Record>) -> BTreeMap<Record, usize> {
    let mut m = BTreeMap::new();
    for r in v {
        *m.entry(r).or_default() += 1;
    }
    m
}

#[test]
fn nfcapd_collects_every_flow_with_its_packets_and_bytes() {
    require!(tool("nfdump"), "nfdump is not installed");
    let (files, _) = clean_captures(true);
    let collector = Nfcapd::start();
    let out = portflow()
        .args(["read", "-q", "--flows", "--ipfix"])
        .arg(format!("127.0.0.1:{}", collector.port))
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("IPFIX records of"), "{said}");
    let expected = records(&stdout(&out));
    let got = collector.collected();
    eprintln!(
        "ipfix: {} captures, {} records sent, {} collected",
        files.len(),
        expected.len(),
        got.len()
    );
    assert!(expected.len() > 1000, "{} records", expected.len());
    let (expected, got) = (tally(expected), tally(got));
    let missing: Vec<_> = expected
        .iter()
        .filter(|(r, n)| got.get(r) != Some(n))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "not collected as sent: {missing:?}");
    assert_eq!(got, expected);
}

#[test]
fn a_collector_that_cannot_be_named_is_refused_before_reading() {
    let f = fixture("generated/eth.pcap");
    let o = portflow()
        .args(["read", "--ipfix", "no-such-host.invalid:4739"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty(), "no report");
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("--ipfix no-such-host.invalid:4739"), "{e}");
    let o = portflow()
        .args(["read", "--ipfix", "4739"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "a port alone is not a collector");
}

#[test]
fn a_collector_that_is_not_listening_is_counted_and_fails_the_run() {
    // A port nobody listens on: loopback answers with ICMP port unreachable,
    // which the connected socket reports on a later send.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = portflow()
        .args(["read", "-q", "--ipfix", &format!("127.0.0.1:{port}")])
        .arg(fixture("generated/scan.pcap"))
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("could not be sent"), "{e}");
    assert!(!stdout(&o).is_empty(), "the report still comes");
}

#[test]
fn softflowd_exports_the_same_flows_with_ip_lengths() {
    // The differences docs/SCHEMA.md states: softflowd counts IP lengths
    // (14 bytes less per Ethernet frame) and exports ICMP flows too; the TCP
    // and UDP records are otherwise the same.
    require!(tool("softflowd"), "softflowd is not installed");
    let file = fixture("generated/eth.pcap");
    let collector = Nfcapd::start();
    let st = Command::new("softflowd")
        .arg("-r")
        .arg(&file)
        .args([
            "-n",
            &format!("127.0.0.1:{}", collector.port),
            "-v",
            "10",
            "-d",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("softflowd");
    assert!(st.success());
    let theirs = collector.collected();
    let out = portflow()
        .args(["read", "-q", "--flows"])
        .arg(&file)
        .output()
        .unwrap();
    let ours = records(&stdout(&out));
    assert!(!ours.is_empty());
    for (proto, a, ap, b, bp, packets, bytes) in &ours {
        let ip_bytes = bytes - 14 * packets;
        let same = (proto.clone(), *a, *ap, *b, *bp, *packets, ip_bytes);
        assert!(
            theirs.contains(&same),
            "softflowd lacks {same:?}: {theirs:?}"
        );
    }
    let icmp = theirs
        .iter()
        .filter(|r| r.0 == "1" || r.0 == "58" || r.0 == "icmp")
        .count();
    assert_eq!(theirs.len(), ours.len() + icmp, "{theirs:?}");
}

/// A fresh folder that the user a root capture switches to can write in
/// (mode 1777, like /tmp).
fn writable_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portflow-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    dir
}

/// `portflow capture lo -f FILTER` with a 2 s UDP timeout, 200 ms intervals,
/// the flows to `dir`/flows.ndjson and to `collector`, the report to
/// `dir`/report.json, and `extra`; started once it listens. Its stderr
/// after that line.
fn stream_capture(
    filter: &str,
    dir: &std::path::Path,
    collector: &Nfcapd,
    extra: &[&str],
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
) {
    let mut cap = portflow()
        .args(["capture", "lo", "-f", filter])
        .args(["--udp-timeout", "2s", "--interval", "200ms", "--flows"])
        .arg(dir.join("flows.ndjson"))
        .args(["--ipfix", &format!("127.0.0.1:{}", collector.port)])
        .args(["--format", "json", "-o"])
        .arg(dir.join("report.json"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(cap.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert!(line.contains("listening on lo"), "{line}");
    (cap, err)
}

/// Waits (10 s at most) until `flows` has `n` lines, then stops the capture
/// with Ctrl-C; its status must be 0. What it said on stderr after its
/// first line.
fn stop_when_streamed(
    mut cap: std::process::Child,
    mut err: std::io::BufReader<std::process::ChildStderr>,
    flows: &std::path::Path,
    n: usize,
) -> String {
    let started = Instant::now();
    while std::fs::read_to_string(flows)
        .unwrap_or_default()
        .lines()
        .count()
        < n
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{n} flows not streamed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(cap.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(cap.wait().unwrap().code(), Some(0), "{rest}");
    rest
}

#[test]
fn a_live_capture_streams_each_flow_as_it_ends_needs_root() {
    require!(is_root(), "capturing needs root");
    require!(tool("nfdump"), "nfdump is not installed");
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let dir = writable_dir("stream");
    let (flows, report) = (dir.join("flows.ndjson"), dir.join("report.json"));
    let collector = Nfcapd::start();
    let filter = format!("udp port {port}");
    let (cap, err) = stream_capture(&filter, &dir, &collector, &[]);
    // Five flows, each three requests and three echoed answers.
    server
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    for _ in 0..5 {
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..3u8 {
            c.send_to(&[i; 100], ("127.0.0.1", port)).unwrap();
            let mut buf = [0u8; 200];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], from).unwrap();
        }
    }
    // Idle for 2 s, each flow ends and is written while the capture runs.
    let rest = stop_when_streamed(cap, err, &flows, 5);
    assert!(rest.contains("5 flows written"), "{rest}");
    let streamed = std::fs::read_to_string(&flows).unwrap();
    let expected = records(&streamed);
    assert_eq!(expected.len(), 10, "both directions of five flows");
    assert!(expected.iter().all(|r| r.5 == 3), "{expected:?}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    // Both ports are ephemeral: a flow may count on the client's port.
    let sum = |k: &str| -> u64 {
        r["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[k].as_u64().unwrap())
            .sum()
    };
    assert_eq!((sum("flows"), sum("packets")), (5, 30));
    assert_eq!(r["live"]["flows_lost"], 0);
    assert_eq!(tally(collector.collected()), tally(expected));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_long_flow_is_reported_in_parts_while_it_lasts_needs_root() {
    require!(is_root(), "capturing needs root");
    require!(tool("nfdump"), "nfdump is not installed");
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let dir = writable_dir("active");
    let flows = dir.join("flows.ndjson");
    let collector = Nfcapd::start();
    let filter = format!("udp dst port {port}");
    let (cap, err) = stream_capture(&filter, &dir, &collector, &["--ipfix-active", "1s"]);
    // One flow, a datagram every 100 ms for 3.5 s.
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..35u8 {
        c.send_to(&[i; 50], ("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    stop_when_streamed(cap, err, &flows, 1);
    let whole = records(&std::fs::read_to_string(&flows).unwrap());
    assert_eq!(
        whole.len(),
        1,
        "the flows file has the flow once, whole: {whole:?}"
    );
    assert_eq!(whole[0].5, 35);
    let parts = collector.collected();
    assert!(
        parts.len() >= 3,
        "reported in parts while it lasted: {parts:?}"
    );
    assert!(parts
        .iter()
        .all(|p| p.1 == whole[0].1 && p.2 == whole[0].2 && p.4 == port));
    let packets: u64 = parts.iter().map(|p| p.5).sum();
    let bytes: u64 = parts.iter().map(|p| p.6).sum();
    assert_eq!((packets, bytes), (whole[0].5, whole[0].6), "{parts:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
