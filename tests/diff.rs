//! `portflow diff`: two periods from reports or captures, as a table and as
//! JSON, with `--fail-on` for a nightly job.
mod support;
use serde_json::Value;
use support::*;

fn gen(name: &str) -> String {
    fixture(&format!("generated/{name}")).display().to_string()
}

fn folder(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("portflow-diff-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_report_and_its_own_capture_do_not_differ() {
    let dir = folder("same");
    let report = dir.join("eth.json");
    let o = run(&[
        "read",
        "-q",
        &gen("eth.pcap"),
        "--format",
        "json",
        "-o",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let o = run(&[
        "diff",
        report.to_str().unwrap(),
        &gen("eth.pcap"),
        "--fail-on",
        "info",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).ends_with(": 0 changes\n"), "{}", stdout(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_server_is_a_medium_change_and_fails_the_job() {
    let (before, after) = (gen("eth.pcap"), gen("scan.pcap"));
    let o = run(&[
        "diff",
        &before,
        &after,
        "--format",
        "json",
        "--fail-on",
        "medium",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["schema"], "portflow.diff/1");
    let changes = d["changes"].as_array().unwrap();
    let find = |kind: &str, host: &str| {
        changes
            .iter()
            .find(|c| c["kind"] == kind && c["host"] == host)
            .unwrap_or_else(|| panic!("no {kind} for {host}: {changes:?}"))
    };
    assert_eq!(find("new-host", "10.0.0.80")["severity"], "medium");
    let https = find("new-service", "10.0.0.80");
    assert_eq!(
        (https["proto"].as_str(), https["port"].as_u64()),
        (Some("tcp"), Some(443))
    );
    // The after side's counts are the report's.
    let report = json_report(&[std::path::Path::new(&after)], &[]);
    let served = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["host"] == "10.0.0.80" && s["port"] == 443)
        .unwrap();
    assert_eq!(https["after"]["flows"], served["flows"]);
    assert_eq!(https["after"]["bytes"], served["bytes"]);
    assert_eq!(find("gone-host", "10.0.0.53")["severity"], "info");
    // Most severe first; the table says the same.
    let levels: Vec<&str> = changes
        .iter()
        .map(|c| c["severity"].as_str().unwrap())
        .collect();
    let rank = |s: &str| {
        ["info", "low", "medium", "high"]
            .iter()
            .position(|x| *x == s)
            .unwrap()
    };
    assert!(
        levels.windows(2).all(|w| rank(w[0]) >= rank(w[1])),
        "{levels:?}"
    );
    let t = run(&["diff", &before, &after]);
    assert!(t.status.success(), "no --fail-on: status 0");
    assert!(stdout(&t).contains(&format!(": {} changes", changes.len())));
    assert!(stdout(&t).contains("medium   new-host     a new server: 10.0.0.80 serves tcp/443"));
    // Probes nobody answered are not doors: the scan's 100 ports are no change.
    assert!(changes.len() < 30, "{}", changes.len());
}

#[test]
fn what_is_not_a_report_is_refused_naming_the_file() {
    let dir = folder("bad");
    let other = dir.join("other.json");
    std::fs::write(&other, "{\"schema\": \"something/1\"}").unwrap();
    let o = run(&["diff", other.to_str().unwrap(), &gen("eth.pcap")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("other.json: a something/1 document, not a portflow report"),
        "{}",
        stderr(&o)
    );
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{\"schema\": ").unwrap();
    let o = run(&["diff", broken.to_str().unwrap(), &gen("eth.pcap")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("broken.json: not a portflow JSON report"),
        "{}",
        stderr(&o)
    );
    let o = run(&["diff", &gen("bad-magic.pcap"), &gen("eth.pcap")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad-magic.pcap"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}
