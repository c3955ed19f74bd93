//! Reading on every thread gives the same report for any thread count
//! (`read --workers 1..4`): over every fixture and every file of the shared
//! corpus (`PORTFLOW_CORPUS`, default `../shared/corpus`) one by one, over
//! all of the corpus's legacy pcap files read as one capture, and over a
//! capture whose payloads hold pcap records (so guessed chunk boundaries are
//! wrong and chunks are read again). Small captures are cut into many
//! chunks (`PORTFLOW_CHUNK_BYTES`), so chunk boundaries fall inside flows,
//! fragmented datagrams and handshakes.
mod support;

use portflow::decode::LinkType;
use portflow::source::PcapFormat;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::*;

/// Everything a run prints, with the one field that may differ (wall time)
/// blanked, and its exit status.
fn outcome(o: &Output) -> (Option<i32>, String, String) {
    let out = stdout(o);
    let out = match serde_json::from_str::<serde_json::Value>(&out) {
        Ok(mut v) => {
            // Wall time, the thread count, and the flows held at once (a sum
            // over the threads' tables) are the run's, not the capture's.
            v["generator"] = serde_json::Value::Null;
            v.to_string()
        }
        Err(_) => out,
    };
    (o.status.code(), out, stderr(o))
}

/// `portflow read -q ARGS FILES --workers N`, with chunks of `chunk` bytes.
fn read(files: &[PathBuf], args: &[&str], workers: usize, chunk: usize) -> Output {
    let mut cmd = portflow();
    cmd.env("PORTFLOW_CHUNK_BYTES", chunk.to_string())
        .args(["read", "-q", "--workers", &workers.to_string()])
        .args(args)
        .args(files);
    cmd.output().expect("run portflow")
}

/// Checks that 2, 3 and 4 threads give what 1 gives; returns the outcome.
fn same_for_1_to_4(
    files: &[PathBuf],
    args: &[&str],
    chunk: usize,
) -> (Option<i32>, String, String) {
    let one = outcome(&read(files, args, 1, chunk));
    for n in 2..=4 {
        let other = outcome(&read(files, args, n, chunk));
        if one != other {
            let shown = |v: &Vec<PathBuf>| match &v[..] {
                [f] => f.display().to_string(),
                all => format!("{} files", all.len()),
            };
            panic!(
                "{} {args:?}: --workers {n} differs from --workers 1: status {:?} and {:?}; \
                 stdout {}; stderr {}",
                shown(&files.to_vec()),
                one.0,
                other.0,
                first_difference(&one.1, &other.1),
                first_difference(&one.2, &other.2),
            );
        }
    }
    one
}

/// Where `a` and `b` first differ, with some context; "same" if they do not.
fn first_difference(a: &str, b: &str) -> String {
    let Some(at) = a
        .bytes()
        .zip(b.bytes())
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then_some(a.len().min(b.len())))
    else {
        return "same".into();
    };
    let around = |s: &str| {
        let from = at.saturating_sub(150);
        let to = (at + 150).min(s.len());
        String::from_utf8_lossy(&s.as_bytes()[from.min(to)..to]).into_owned()
    };
    format!("differs at byte {at}: {:?} / {:?}", around(a), around(b))
}

/// Checks every file on its own, on two threads at a time.
fn each_file(files: &[PathBuf], chunk: usize) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(f) = files.get(i) else { return };
                same_for_1_to_4(std::slice::from_ref(f), &["--format", "json"], chunk);
            });
        }
    });
}

fn is_legacy_pcap(p: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && matches!(
            u32::from_le_bytes(magic),
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0xa1b2_cd34 | 0x34cd_b2a1
        )
}

#[test]
fn every_fixture_gives_one_report_for_1_to_4_threads() {
    let files = files_under(&root().join("fixtures"));
    assert!(files.len() > 60, "{} fixtures", files.len());
    each_file(&files, 4096);
}

#[test]
fn every_corpus_file_gives_one_report_for_1_to_4_threads() {
    let dir = corpus_dir();
    require!(dir.is_dir(), &format!("no corpus at {}", dir.display()));
    let files = files_under(&dir);
    each_file(&files, 16 << 10);
}

#[test]
fn the_corpus_read_as_one_capture_gives_one_report_for_1_to_4_threads() {
    let dir = corpus_dir();
    require!(dir.is_dir(), &format!("no corpus at {}", dir.display()));
    let mut files: Vec<PathBuf> = files_under(&dir)
        .into_iter()
        .filter(|f| is_legacy_pcap(f))
        .collect();
    files.extend(
        files_under(&root().join("fixtures"))
            .into_iter()
            .filter(|f| is_legacy_pcap(f)),
    );
    assert!(files.len() > 500, "{} legacy pcap files", files.len());
    for args in [
        &["--keep-going", "--format", "json"][..],
        &["--keep-going", "--flows"],
    ] {
        // Some corpus files are damaged: the run goes on past them and
        // exits 2.
        let (status, out, _) = same_for_1_to_4(&files, args, 64 << 10);
        assert_eq!(status, Some(2), "{args:?}");
        assert!(out.len() > 10_000, "{args:?}: {} bytes", out.len());
    }
    // Read in chunks on every thread (not sent to the sequential reader by
    // the files that fail at their header).
    let timed = read(
        &files,
        &["--keep-going", "--timings", "-o", "/dev/null"],
        3,
        64 << 10,
    );
    assert!(
        stderr(&timed).contains(" on 3 threads ("),
        "{}",
        stderr(&timed)
    );
}

/// A pcap file of `n` records whose payloads are `payload(i)`.
fn pcap(n: usize, payload: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let mut f = PcapFormat::CLASSIC
        .header(LinkType::ETHERNET, 65535)
        .to_vec();
    for i in 0..n {
        let p = payload(i);
        let ts = 1_700_000_000_000_000_000 + i as u64 * 1_000_000;
        PcapFormat::CLASSIC.record(&mut f, ts, &p, p.len() as u32);
    }
    f
}

/// How many chunks `--timings` says were read again.
fn read_again(files: &[PathBuf], chunk: usize) -> usize {
    let timed = read(files, &["--timings", "-o", "/dev/null"], 2, chunk);
    let err = stderr(&timed);
    err.split(" read again")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no chunk count in {err}"))
}

/// An IPv4 UDP datagram from 10.0.0.`host`:`sport` to 10.0.0.1:53 with
/// `len` bytes of payload, as a raw IP packet (no link header).
fn udp(host: u8, sport: u16, len: usize) -> Vec<u8> {
    let total = 20 + 8 + len;
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0,
        0,
        64,
        17,
        0,
        0,
    ];
    p.extend_from_slice(&[10, 0, 0, host, 10, 0, 0, 1]);
    let udp = 8 + len;
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&[0, 53, (udp >> 8) as u8, udp as u8, 0, 0]);
    p.extend((0..len).map(|i| i as u8));
    p
}

/// Reads `data` (written to a file) in chunks of `chunk` bytes on 1 to 4
/// threads, and checks the report against the sequential reader's (the
/// same bytes on standard input); returns the JSON report.
fn chunked_as_sequential(name: &str, data: &[u8], chunk: usize) -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!("portflow-threads-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, data).unwrap();
    let files = [file.clone()];
    let (status, json, err) = same_for_1_to_4(&files, &["--format", "json"], chunk);
    assert_eq!(status, Some(0), "{err}");
    let piped = portflow()
        .args(["read", "-q", "--format", "json", "-"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    let mut a: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut b: serde_json::Value = serde_json::from_slice(&piped.stdout).unwrap();
    for v in [&mut a, &mut b] {
        v["generator"] = serde_json::Value::Null;
        v["inputs"] = serde_json::Value::Null;
    }
    assert_eq!(a, b, "{name}: read in chunks and sequentially");
    // Read in chunks (not sent to the sequential reader), and how many
    // chunks were read again.
    a["read_again"] = read_again(&files, chunk).into();
    std::fs::remove_dir_all(&dir).unwrap();
    a
}

#[test]
fn pcapng_interfaces_and_sections_in_mid_file_are_read_as_the_sequential_reader_reads_them() {
    // Section 1: one raw-IP interface in microseconds, packets, then a
    // second interface in nanoseconds described after them; section 2
    // (a new section header) with its own single interface.
    let mut one = portflow_synth::write::Pcapng::new();
    let us = one.interface(101, 65535, 6);
    let t0 = 1_700_000_000_000_000_000u64;
    for i in 0..300u64 {
        one.packet(
            us,
            t0 + i * 1_000_000,
            &udp(2, 40_000 + (i % 7) as u16, 100 + (i as usize % 300)),
        );
    }
    let ns = one.interface(101, 65535, 9);
    for i in 0..300u64 {
        let iface = if i % 2 == 0 { us } else { ns };
        one.packet(
            iface,
            t0 + 400_000_000 + i * 1_000_003,
            &udp(3, 41_000 + (i % 5) as u16, 60 + (i as usize % 500)),
        );
    }
    let mut two = portflow_synth::write::Pcapng::new();
    let only = two.interface(101, 65535, 9);
    for i in 0..300u64 {
        two.packet(
            only,
            t0 + 900_000_000 + i * 777,
            &udp(4, 42_000 + (i % 3) as u16, 200),
        );
    }
    let mut data = one.buf;
    data.extend_from_slice(&two.buf);
    let r = chunked_as_sequential("sections.pcapng", &data, 4096);
    assert_eq!(r["totals"]["packets"], 900);
    assert_eq!(r["totals"]["decode_errors"], 0);
    // The chunks read as if the first interface were the only one, after
    // the second was described, were read again.
    assert!(r["read_again"].as_u64().unwrap() > 0, "{}", r["read_again"]);
}

#[test]
fn chunks_that_begin_at_a_wrong_guess_are_read_again_and_change_nothing() {
    // Ethernet frames of one UDP flow whose payloads are themselves runs of
    // pcap records (a capture of a pcap file being copied): a guessed
    // boundary inside a payload looks as good as a real one.
    let inner = pcap(30, |i| vec![0x55; 20 + i]);
    let frame = |i: usize| {
        let body = &inner[24..];
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = 20 + 8 + body.len();
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let udp = 8 + body.len();
        f.extend_from_slice(&[0x9c, 0x40, 0x08, 0x01, (udp >> 8) as u8, udp as u8, 0, 0]);
        f.extend_from_slice(body);
        f[6] = i as u8;
        f
    };
    let data = pcap(400, frame);
    let r = chunked_as_sequential("nested.pcap", &data, 4096);
    assert_eq!(r["totals"]["packets"], 400);
    // Some chunks were read again, and --timings says how many.
    assert!(r["read_again"].as_u64().unwrap() > 0, "{}", r["read_again"]);
}
