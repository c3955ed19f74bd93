//! The command line a new user meets: values refused with a plain sentence,
//! bounds on what would exhaust the machine, listings with headers.
mod support;

use std::time::{Duration, Instant};
use support::*;

fn eth() -> String {
    fixture("generated/eth.pcap").display().to_string()
}

/// `portflow read eth.pcap ARGS` fails with status 2 and a message that
/// contains `says`, and suggests no `-- VALUE` (which would make the value
/// a file name).
fn refused(args: &[&str], says: &str) {
    let mut all = vec!["read", "-q"];
    let f = eth();
    all.push(&f);
    all.extend_from_slice(args);
    let o = run(&all);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(says), "{args:?}: {e}");
    assert!(!e.contains("'-- "), "{args:?} suggests a separator: {e}");
    assert!(o.stdout.is_empty());
}

#[test]
fn worker_counts_are_bounded_and_refused_quickly() {
    let started = Instant::now();
    refused(
        &["--workers", "100000"],
        "100000 workers is out of range: 1 to 256",
    );
    refused(&["--workers", "0"], "0 workers is out of range: 1 to 256");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The most allowed reads a small file at once: workers start only when
    // packets come for them.
    let o = run(&["read", "-q", "--workers", "256", "--format", "json", &eth()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["totals"]["packets"], 38);
    assert_eq!(v["generator"]["workers"], 256);
}

#[test]
fn negative_and_out_of_range_values_are_refused_plainly() {
    refused(&["--top", "-1"], "a number of rows cannot be negative");
    refused(&["--top", "x"], "'x' is not a whole number of rows");
    refused(&["--flow-cap", "1"], "1 flows is too few: at least 16");
    refused(&["--flow-cap", "0"], "0 flows is too few: at least 16");
    refused(
        &["--tcp-timeout", "-5s"],
        "'-5s': a duration cannot be negative",
    );
    refused(
        &["--udp-timeout", "1.5s"],
        "'1.5s' is not a whole number of seconds",
    );
    refused(&["--scan-ports", "0"], "0 ports is too few: at least 1");
    refused(&["--format", "ndjson"], "invalid value 'ndjson'");
    // A duration is also taken where seconds are asked for.
    let o = run(&["read", "-q", "--tcp-timeout", "5m", &eth()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn capture_values_are_refused_before_anything_opens() {
    for (args, says) in [
        (&["-c", "0"][..], "0 packets is too few: at least 1"),
        (&["-s", "0"], "0 bytes is out of range: 1 to 262144"),
        (
            &["-s", "300000"],
            "300000 bytes is out of range: 1 to 262144",
        ),
        (&["-d", "-5s"], "'-5s': a duration cannot be negative"),
        (
            &["--workers", "257"],
            "257 workers is out of range: 1 to 256",
        ),
        (
            &["--events", "-"],
            "--events - streams on standard output: write the report with -o FILE",
        ),
        (
            &["--flows", "-"],
            "--flows - streams on standard output: write the report with -o FILE",
        ),
        (
            &["--flows", "-", "--events", "-", "-o", "/dev/null"],
            "--flows - and --events - cannot share standard output",
        ),
    ] {
        let mut all = vec!["capture", "lo"];
        all.extend_from_slice(args);
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_flow_cap_below_sixteen_per_worker_is_explained() {
    // 16 flows over 3 flow workers is 5 each: said, then raised.
    let o = run(&["read", "--flow-cap", "16", "--workers", "4", &eth()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(
            "portflow: note: --flow-cap 16 over 3 flow workers holds 16 flows in each, 48 in all"
        ),
        "{e}"
    );
}

#[test]
fn policy_port_values_name_file_line_and_column() {
    let dir = std::env::temp_dir().join(format!("portflow-polports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("policy.toml");
    for (ports, says) in [
        ("[70000]", "2:8: 70000 is not a port"),
        ("[-1]", "2:8: -1 is not a port"),
        ("[22, 22.5]", "2:12: 22.5 is not a port"),
        ("[\"x\"]", "2:8: 'x' is not a port or a range"),
        ("[\"10-5\"]", "2:8: range '10-5' runs backwards"),
    ] {
        std::fs::write(&f, format!("[default]\ntcp = {ports}\n")).unwrap();
        let o = run(&["read", "--policy", &f.display().to_string(), &eth()]);
        assert_eq!(o.status.code(), Some(2), "{ports}");
        let e = stderr(&o);
        assert!(
            e.starts_with(&format!("portflow: {}:{says}", f.display())),
            "{ports}: {e}"
        );
        assert!(!e.contains("untagged enum"), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The first line of `out` split into words, and whether every later line
/// that has a value under a header's first letter lines up with it.
fn header_words(out: &str) -> Vec<String> {
    out.lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn columns_line_up(out: &str) {
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|&(i, c)| c != ' ' && (i == 0 || header.as_bytes()[i - 1] == b' '))
        .map(|(i, _)| i)
        .collect();
    for line in lines {
        // Each column begins where its header does (a value may be "-").
        for &s in &starts[1..] {
            let b = line.as_bytes();
            assert!(
                s < b.len() && b[s] != b' ' && b[s - 1] == b' ',
                "column at {s} does not line up in\n{header}\n{line}"
            );
        }
    }
}

#[test]
fn services_listing_has_a_header_and_aligned_columns() {
    let o = run(&["services", "443"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert_eq!(
        header_words(&s),
        ["PORT", "PROTO", "NAME", "CLASS", "DESCRIPTION"]
    );
    columns_line_up(&s);
}

#[test]
fn interfaces_listing_has_a_header_and_aligned_columns() {
    let o = run(&["interfaces"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert_eq!(
        header_words(&s),
        ["NAME", "FLAGS", "ADDRESSES", "DESCRIPTION"]
    );
    // Every interface name fits its column, however long.
    let width = s.lines().next().unwrap().find("FLAGS").unwrap();
    for line in s.lines().skip(1) {
        let name = line.split_whitespace().next().unwrap();
        assert!(name.len() < width, "{name} overflows: {line}");
    }
}

#[test]
fn long_spans_are_in_days_and_years() {
    // Two packets 36 years apart.
    let dir = std::env::temp_dir().join(format!("portflow-span-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("span.pcap");
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    let frame = [0u8; 14];
    for secs in [1u32, 1_156_552_015] {
        b.extend_from_slice(&secs.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&14u32.to_le_bytes());
        b.extend_from_slice(&14u32.to_le_bytes());
        b.extend_from_slice(&frame);
    }
    std::fs::write(&f, b).unwrap();
    let o = run(&["read", "-q", &f.display().to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = stdout(&o).lines().next().unwrap().to_string();
    assert!(first.contains("(36y 246d 00h)"), "{first}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_table_explains_its_terms() {
    let o = run(&["read", "-q", &eth()]);
    let s = stdout(&o);
    assert!(s.contains("HANDSHAKE RTT p50/p99"), "{s}");
    assert!(
        s.contains("key: HANDSHAKE RTT = from a client's SYN to the server's SYN-ACK"),
        "{s}"
    );
    assert!(
        s.contains("key: EVIDENCE: handshake = the server answered a SYN"),
        "{s}"
    );
    assert!(
        !s.contains("key: unattributed"),
        "only when there are any: {s}"
    );
    let frag = fixture("generated/fragments.pcap").display().to_string();
    let s = stdout(&run(&["read", "-q", &frag]));
    assert!(s.contains("unattributed 1"), "{s}");
    assert!(
        s.contains("key: unattributed = packets that reached no port"),
        "{s}"
    );
}

#[test]
fn completions_and_manual_pages_come_from_the_flags() {
    // bash parses its script, which completes the commands and their flags.
    let o = run(&["completions", "bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let script = stdout(&o);
    for word in ["capture", "--community-id-seed", "--table", "--workers"] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    let dir = std::env::temp_dir().join(format!("portflow-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::write(dir.with_extension("bash"), &script).unwrap();
    let st = std::process::Command::new("bash")
        .arg("-n")
        .arg(dir.with_extension("bash"))
        .status()
        .unwrap();
    assert!(st.success(), "bash -n on the completion script");
    std::fs::remove_file(dir.with_extension("bash")).unwrap();
    for shell in ["zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert!(
            o.status.success() && stdout(&o).contains("fail-on"),
            "{shell}"
        );
    }
    // One manual page per command, each naming its flags.
    let o = portflow()
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "portflow-capture.1",
            "portflow-completions.1",
            "portflow-diff.1",
            "portflow-firewall.1",
            "portflow-interfaces.1",
            "portflow-learn.1",
            "portflow-man.1",
            "portflow-read.1",
            "portflow-services.1",
            "portflow.1"
        ]
    );
    let read = std::fs::read_to_string(dir.join("portflow-read.1")).unwrap();
    assert!(
        read.starts_with(".ie") && read.contains(".TH portflow-read 1"),
        "{read}"
    );
    for flag in [
        "\\-\\-format",
        "\\-\\-flows",
        "\\-\\-keep\\-going",
        "\\-\\-policy",
    ] {
        assert!(read.contains(flag), "portflow-read.1 lacks {flag}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let main = stdout(&run(&["man"]));
    assert!(main.contains(".TH portflow 1") && main.contains("capture"));
}
