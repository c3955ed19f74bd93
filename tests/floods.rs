//! Floods: memory stays under the documented ceiling (256 MiB at default
//! settings, docs/BENCHMARKS.md) whatever the number of flows or ports,
//! with evictions counted and no finding invented. Inputs come from the seeded
//! generator and are streamed through standard input (nothing written to
//! disk); peak RSS is the child's own (wait4).
mod support;
use portflow_synth::build::{eth_ip, tcp, v4};
use portflow_synth::write::Pcap;
use serde_json::Value;
use std::io::Write;
use std::process::Stdio;
use support::*;

const CEILING_KIB: i64 = 256 * 1024;

/// Runs `portflow read -q --format json -` on what `feed` writes; the report
/// and the peak RSS in KiB. The child is reaped with wait4 (for its rusage),
/// which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn read_stream(feed: impl FnOnce(&mut dyn FnMut(&[u8])) + Send + 'static) -> (Value, i64) {
    let mut child = portflow()
        .args(["read", "-q", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        feed(&mut |b: &[u8]| stdin.write_all(b).expect("portflow reads its input"));
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out_pipe, &mut v).unwrap();
        v
    });
    writer.join().unwrap();
    let out = reader.join().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status}: {err}"
    );
    (serde_json::from_slice(&out).unwrap(), usage.ru_maxrss)
}

fn kinds(r: &Value) -> Vec<String> {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn syn_flood_of_ten_million_flows_stays_under_the_ceiling_and_hides_no_scan() {
    // 10,000,000 SYNs from random 10.x.y.z sources and ports to 172.16.0.1:80,
    // 10 us apart, none answered; every 20,000th packet a scanner's SYN to the
    // next port of the same host (500 ports in 100 s).
    let (r, rss) = read_stream(|sink| {
        let (server, scanner) = (v4(172, 16, 0, 1), v4(192, 0, 2, 66));
        let scan = |i: u64, t: u64, w: &mut Pcap| {
            if i.is_multiple_of(20_000) {
                let port = 1000 + (i / 20_000) as u16;
                let syn = tcp(scanner, 50_000, server, port, 0x02, 1, 0, &[]);
                w.packet(t, &eth_ip(&syn));
            }
        };
        portflow_synth::scale::syn_flood_with(7, 10_000_000, 80, scan, sink)
    });
    eprintln!("10 M-flow SYN flood: peak RSS {} MiB", rss / 1024);
    assert_eq!(r["totals"]["packets"], 10_000_500u64);
    assert!(rss < CEILING_KIB, "peak RSS {rss} KiB");
    let evicted = r["flows"]["evicted"].as_u64().unwrap();
    assert!(evicted >= 9_000_000, "{evicted} flows evicted");
    // The flood's one-off sources are dropped from the attempts to make room,
    // and counted; the scanner's attempts are kept and make the one finding.
    assert!(r["flows"]["attempts_not_examined"].as_u64().unwrap() > 9_000_000);
    let f = r["findings"].as_array().unwrap();
    let k = kinds(&r);
    assert_eq!(k, vec!["port-scan".to_string()], "{f:?}");
    assert_eq!(f[0]["src"], "192.0.2.66");
    assert_eq!(f[0]["host"], "172.16.0.1");
    assert_eq!(f[0]["severity"], "high");
    assert_eq!(f[0]["evidence"]["ports"], 500, "{}", f[0]["detail"]);
    let port = &r["ports"][0];
    assert_eq!(
        (port["port"].as_u64(), port["tcp"]["syn"].as_u64()),
        (Some(80), Some(10_000_000))
    );
    // Sources are 10.x.y.z at random: 10 M draws from 2^24 addresses give
    // 2^24 * (1 - e^(-10^7 / 2^24)) = 7.53 M distinct; the sketch is within 0.8%
    // (one standard error), allow 3%.
    let clients = port["clients"].as_u64().unwrap() as f64;
    let expected = 16_777_216.0 * (1.0 - (-1e7f64 / 16_777_216.0).exp());
    assert!(
        (clients / expected - 1.0).abs() < 0.03,
        "{clients} distinct clients estimated, {expected:.0} expected"
    );
}

#[test]
fn scan_of_all_65536_ports_is_found_under_the_ceiling() {
    let (r, rss) = read_stream(|sink| {
        let mut w = Pcap::new(1, 65535, false, false);
        let (scanner, target) = (v4(192, 0, 2, 66), v4(198, 51, 100, 7));
        let mut t = portflow_synth::fixtures::T0;
        for port in 0..=65535u16 {
            t += 20_000;
            w.packet(
                t,
                &eth_ip(&tcp(
                    scanner,
                    40_000,
                    target,
                    port,
                    0x02,
                    port as u32,
                    0,
                    &[],
                )),
            );
            // The target refuses every port but 22 and 443, which answer.
            t += 1_000;
            let answer = if port == 22 || port == 443 {
                0x12
            } else {
                0x14
            };
            w.packet(
                t,
                &eth_ip(&tcp(
                    target,
                    port,
                    scanner,
                    40_000,
                    answer,
                    7,
                    port as u32 + 1,
                    &[],
                )),
            );
            if w.buf.len() > 1 << 20 {
                sink(&w.buf);
                w.buf.clear();
            }
        }
        sink(&w.buf);
    });
    eprintln!("65,536-port scan: peak RSS {} MiB", rss / 1024);
    assert!(rss < CEILING_KIB, "peak RSS {rss} KiB");
    assert_eq!(r["totals"]["packets"], 131_072u64);
    let scans: Vec<&Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "port-scan")
        .collect();
    assert_eq!(scans.len(), 1, "{:?}", r["findings"]);
    assert_eq!(scans[0]["src"], "192.0.2.66");
    assert_eq!(scans[0]["severity"], "high");
    let open: Vec<u64> = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["port"].as_u64().unwrap())
        .collect();
    assert_eq!(open, vec![22, 443], "only the ports that answered are open");
    assert_eq!(r["flows"]["evicted"], 0);
}
