//! `portflow learn`: a policy from traffic, checked against the same traffic
//! with `read --policy`; `--update` keeps a user's file; bad input fails
//! before any work.
mod support;
use serde_json::Value;
use std::path::{Path, PathBuf};
use support::*;

fn inputs() -> Vec<PathBuf> {
    [
        "generated/eth.pcap",
        "generated/scan.pcap",
        "generated/tunnels.pcap",
    ]
    .iter()
    .map(|f| fixture(f))
    .collect()
}

fn folder(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("portflow-learn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `portflow learn INPUTS ARGS -o OUT`, which must succeed.
fn learn(inputs: &[PathBuf], args: &[&str], out: &Path) -> String {
    let mut all: Vec<String> = vec!["learn".into()];
    all.extend(inputs.iter().map(|p| p.display().to_string()));
    all.extend(args.iter().map(|s| s.to_string()));
    all.extend(["-o".into(), out.display().to_string()]);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let o = run(&all);
    assert!(o.status.success(), "{all:?}: {}", stderr(&o));
    std::fs::read_to_string(out).unwrap()
}

/// The `unexpected-port` findings of reading `inputs` with `policy`, as
/// "host proto/port".
fn unexpected(inputs: &[PathBuf], policy: &Path) -> Vec<String> {
    let files: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let r = json_report(&files, &["--policy", policy.to_str().unwrap()]);
    let mut v: Vec<String> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "unexpected-port")
        .map(host_port)
        .collect();
    v.sort();
    v
}

/// The open ports of reading `inputs`, as "host proto/port", with flows.
fn services(inputs: &[PathBuf]) -> Vec<(String, u64)> {
    let files: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let r: Value = json_report(&files, &[]);
    r["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (host_port(s), s["flows"].as_u64().unwrap()))
        .collect()
}

#[test]
fn learning_then_checking_the_same_traffic_finds_nothing_unexpected() {
    let dir = folder("same");
    let all = inputs();
    let policy = dir.join("all.toml");
    learn(&all, &["--min-flows", "1"], &policy);
    assert_eq!(unexpected(&all, &policy), Vec::<String>::new());
    let grouped = dir.join("grouped.toml");
    let text = learn(&all, &["--min-flows", "1", "--group", "24"], &grouped);
    assert!(text.contains("# Hosts of one /24 (IPv4) or /64 (IPv6) network"));
    assert_eq!(unexpected(&all, &grouped), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ports_below_the_thresholds_are_listed_commented_out_and_nothing_else_is_denied() {
    let dir = folder("thresholds");
    let all = inputs();
    let policy = dir.join("p.toml");
    let text = learn(&all, &[], &policy);
    let below: Vec<String> = services(&all)
        .into_iter()
        .filter(|(_, flows)| *flows < 2)
        .map(|(s, _)| s)
        .collect();
    assert!(!below.is_empty(), "the fixtures have one-off services");
    let mut below_sorted = below.clone();
    below_sorted.sort();
    assert_eq!(unexpected(&all, &policy), below_sorted);
    for s in &below {
        let port = s.rsplit('/').next().unwrap();
        assert!(
            text.contains(&format!("    # {port},  # ")),
            "{s} in\n{text}"
        );
    }
    assert!(text.contains("(below --min-flows 2)"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_extra_service_is_exactly_the_finding() {
    let dir = folder("extra");
    let scan = vec![fixture("generated/scan.pcap")];
    let policy = dir.join("p.toml");
    // Learned from the traffic without 10.0.0.80's https.
    learn(
        &scan,
        &[
            "--min-flows",
            "1",
            "-f",
            "not (host 10.0.0.80 and tcp port 443)",
        ],
        &policy,
    );
    assert_eq!(unexpected(&scan, &policy), ["10.0.0.80 tcp/443"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn update_adds_to_a_users_policy_and_keeps_its_text() {
    let dir = folder("update");
    let all = inputs();
    let policy = dir.join("p.toml");
    let mine = "# reviewed by ops\n[default]\ntcp = []\n\n[[hosts]]\nmatch = \"10.0.0.0/24\"  # lab\ntcp = [22]  # admins\n";
    std::fs::write(&policy, mine).unwrap();
    let update = || {
        let policy = policy.to_str().unwrap();
        learn(
            &all,
            &["--min-flows", "1", "--update", policy],
            Path::new(policy),
        )
    };
    let text = update();
    for kept in ["# reviewed by ops", "# lab", "# admins"] {
        assert!(text.contains(kept), "{kept} in\n{text}");
    }
    assert_eq!(unexpected(&all, &policy), Vec::<String>::new(), "{text}");
    assert_eq!(update(), text, "learning the same again changes nothing");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_policy_to_update_fails_before_reading_with_file_line_and_column() {
    let dir = folder("bad");
    let policy = dir.join("p.toml");
    std::fs::write(&policy, "[[hosts]]\nmatch = \"10.0.0.0/40\"\n").unwrap();
    let o = run(&[
        "learn",
        "/nonexistent.pcap",
        "--update",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("p.toml:2:9: '/40' is not a prefix length"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(&policy).unwrap(),
        "[[hosts]]\nmatch = \"10.0.0.0/40\"\n",
        "left as it was"
    );
    let o = run(&[
        "learn",
        fixture("generated/eth.pcap").to_str().unwrap(),
        "--group",
        "33",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("33 bits of an IPv4 prefix is out of range: 0 to 32"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_same_traffic_gives_the_same_file() {
    let dir = folder("stable");
    let all = inputs();
    let a = learn(&all, &["--group", "24"], &dir.join("a.toml"));
    let b = learn(
        &all,
        &["--group", "24", "--workers", "1"],
        &dir.join("b.toml"),
    );
    assert_eq!(a, b);
    std::fs::remove_dir_all(&dir).unwrap();
}
