//! The detection scenario with real tools (`scripts/scenario.sh`: two network
//! namespaces, an HTTP server on 8081, SSH- and Telnet-like banners, curl,
//! socat and an nmap SYN scan, captured by tcpdump). Needs root (CI runs it).
mod support;
use std::process::Command;
use support::*;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn nmap_scan_and_banner_servers_needs_root() {
    if !is_root() {
        eprintln!(
            "skipped: the scenario builds network namespaces and needs root (CI runs it as root)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("portflow-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("scenario.pcap");
    let st = Command::new(root().join("scripts/scenario.sh"))
        .arg(&pcap)
        .status()
        .expect("scenario.sh");
    assert!(st.success(), "scenario.sh failed");

    let r = json_report(&[&pcap], &[]);
    let open: Vec<(String, String, u64)> = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["evidence"], serde_json::json!(["handshake"]), "{s}");
            (
                s["host"].as_str().unwrap().into(),
                s["proto"].as_str().unwrap().into(),
                s["port"].as_u64().unwrap(),
            )
        })
        .collect();
    let b = "10.77.0.2".to_string();
    assert_eq!(
        open,
        vec![
            (b.clone(), "tcp".into(), 2222),
            (b.clone(), "tcp".into(), 2323),
            (b.clone(), "tcp".into(), 8081)
        ],
        "exactly the three listening ports; nothing of the client's ephemeral ports"
    );
    let kinds: Vec<(&str, &str, Option<&str>)> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap(),
                f["src"].as_str().unwrap_or(""),
                f["host"].as_str(),
            )
        })
        .collect();
    assert_eq!(kinds, vec![("port-scan", "10.77.0.1", Some("10.77.0.2"))]);
    assert_eq!(r["findings"][0]["severity"], "high");
    assert!(r["findings"][0]["evidence"]["ports"].as_u64().unwrap() >= 1000);

    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[[hosts]]\nmatch = \"10.77.0.0/24\"\ntcp = [2222, 2323, 8081]\n",
    )
    .unwrap();
    let allowed = json_report(&[&pcap], &["--policy", policy.to_str().unwrap()]);
    assert!(
        allowed["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"] != "unexpected-port"),
        "nothing the policy allows is flagged"
    );
    std::fs::write(&policy, "[[hosts]]\nmatch = \"10.77.0.2\"\ntcp = [8081]\n").unwrap();
    let strict = json_report(&[&pcap], &["--policy", policy.to_str().unwrap()]);
    let unexpected: Vec<u64> = strict["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "unexpected-port")
        .map(|f| f["port"].as_u64().unwrap())
        .collect();
    assert_eq!(unexpected, vec![2222, 2323]);
    std::fs::remove_dir_all(&dir).unwrap();
}
