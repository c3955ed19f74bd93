//! The detection scenario with real tools (`scripts/scenario.sh`: two network
//! namespaces, an HTTP server on 8081, SSH- and Telnet-like banners, a TLS
//! server on 8443, curl (with Basic credentials over plain HTTP), socat and an
//! nmap SYN scan, captured by tcpdump). Needs root (CI runs it).
mod support;
use std::process::Command;
use support::*;

#[test]
fn nmap_scan_and_banner_servers_needs_root() {
    require!(
        is_root(),
        "the scenario builds network namespaces and needs root"
    );
    let dir = std::env::temp_dir().join(format!("portflow-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("scenario.pcap");
    let st = Command::new(root().join("scripts/scenario.sh"))
        .arg(&pcap)
        .status()
        .expect("scenario.sh");
    assert!(st.success(), "scenario.sh failed");

    for workers in ["1", "2"] {
        check_report(&json_report(&[&pcap], &["--workers", workers]));
    }

    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[[hosts]]\nmatch = \"10.77.0.0/24\"\ntcp = [2222, 2323, 8081, 8443]\n",
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
    let unexpected: Vec<(u64, &str)> = strict["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "unexpected-port")
        .map(|f| (f["port"].as_u64().unwrap(), f["detected"].as_str().unwrap()))
        .collect();
    assert_eq!(
        unexpected,
        vec![(2222, "ssh"), (2323, "telnet"), (8443, "tls")]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The open-port list and every finding of the scenario without a policy.
fn check_report(r: &serde_json::Value) {
    let open: Vec<(String, String, u64, Option<String>)> = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["evidence"], serde_json::json!(["handshake"]), "{s}");
            (
                s["host"].as_str().unwrap().into(),
                s["proto"].as_str().unwrap().into(),
                s["port"].as_u64().unwrap(),
                s["detected"].as_str().map(str::to_string),
            )
        })
        .collect();
    let b = || "10.77.0.2".to_string();
    let tcp = || "tcp".to_string();
    assert_eq!(
        open,
        vec![
            (b(), tcp(), 2222, Some("ssh".into())),
            (b(), tcp(), 2323, Some("telnet".into())),
            (b(), tcp(), 8081, Some("http".into())),
            (b(), tcp(), 8443, Some("tls".into())),
        ],
        "exactly the four listening ports with their protocols; nothing of the client's ephemeral ports"
    );
    let found: Vec<(&str, &str, Option<u64>, &str)> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["host"], "10.77.0.2", "{f}");
            (
                f["kind"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
                f["port"].as_u64(),
                f["detected"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            // A Telnet session, and Basic credentials over plain HTTP.
            ("cleartext", "high", Some(2323), "telnet"),
            ("cleartext", "high", Some(8081), "http"),
            ("port-scan", "high", None, ""),
            // Registered for EtherNet/IP, 3d-nfsd and sunproxyadmin; TLS on
            // 8443 (pcsync-https) fits.
            ("service-mismatch", "low", Some(2222), "ssh"),
            ("service-mismatch", "low", Some(2323), "telnet"),
            ("service-mismatch", "low", Some(8081), "http"),
        ]
    );
    let scan = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "port-scan")
        .unwrap();
    assert_eq!(scan["src"], "10.77.0.1");
    assert!(scan["evidence"]["ports"].as_u64().unwrap() >= 1000);
}
