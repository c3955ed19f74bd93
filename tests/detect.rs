//! Payload detection end to end on real captures whose content is known
//! (Zeek's test traces, named for what they hold; see fixtures/corpus/README.md).
mod support;
use support::*;

const TRACES: &str = "fixtures/corpus/zeek/testing/btest/Traces";

/// (kind, severity, host, port, detected) of every payload finding.
fn payload_findings(file: &str, workers: &str) -> Vec<(String, String, String, u64, String)> {
    let r = json_report(&[&root().join(TRACES).join(file)], &["--workers", workers]);
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "service-mismatch" || f["kind"] == "cleartext")
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["host"].as_str().unwrap().to_string(),
                f["port"].as_u64().unwrap(),
                f["detected"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn one(
    kind: &str,
    sev: &str,
    host: &str,
    port: u64,
    p: &str,
) -> (String, String, String, u64, String) {
    (kind.into(), sev.into(), host.into(), port, p.into())
}

fn detected(file: &str) -> Vec<(String, u64, Option<String>)> {
    let r = json_report(&[&root().join(TRACES).join(file)], &[]);
    r["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["host"].as_str().unwrap().to_string(),
                s["port"].as_u64().unwrap(),
                s["detected"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn protocols_on_the_wrong_port_are_service_mismatches() {
    let cases = [
        ("ssh/ssh-on-port-80.pcap", "172.16.238.131", 80, "ssh"),
        ("http/http-single-conn-22.pcap", "192.168.0.1", 22, "http"),
        ("ssl-and-ssh-using-sslh.pcap", "192.168.2.230", 443, "ssh"),
        (
            "postgresql/mysql-on-port-5432.pcap",
            "127.0.0.1",
            5432,
            "mysql",
        ),
        (
            "postgresql/http-on-port-5432.pcap",
            "192.150.187.43",
            5432,
            "http",
        ),
    ];
    for (file, host, port, p) in cases {
        for workers in ["1", "3"] {
            assert_eq!(
                payload_findings(file, workers),
                vec![one("service-mismatch", "high", host, port, p)],
                "{file} with {workers} worker(s)"
            );
        }
    }
}

#[test]
fn upgrades_probes_and_answers_in_kind_are_not_mismatches() {
    // PostgreSQL's SSLRequest then TLS on 5432: PostgreSQL, nothing to flag.
    assert_eq!(
        payload_findings("postgresql/psql-aws-ssl-preferred.pcap", "2"),
        vec![]
    );
    assert_eq!(
        detected("postgresql/psql-aws-ssl-preferred.pcap"),
        vec![("52.200.36.167".into(), 5432, Some("postgresql".into()))]
    );
    // TLS sent to an HTTP server that answers in HTTP: the server speaks HTTP.
    assert_eq!(payload_findings("tls/https-to-http.pcap", "2"), vec![]);
    // Probes (HTTP, TLS, RDP) sent to Modbus servers that do not answer in kind.
    assert_eq!(
        payload_findings("modbus/modbus-and-non-modbus-p502.pcap", "2"),
        vec![]
    );
    // IRC's NICK/USER are not an FTP login.
    assert_eq!(payload_findings("irc-basic.pcap", "2"), vec![]);
    assert_eq!(
        detected("irc-basic.pcap"),
        vec![("130.239.18.119".into(), 6667, Some("irc".into()))]
    );
}

#[test]
fn cleartext_credentials_and_sessions() {
    assert_eq!(
        payload_findings("smtp.pcap", "2"),
        vec![one("cleartext", "high", "74.53.140.153", 25, "smtp")],
        "SMTP AUTH LOGIN without STARTTLS"
    );
    assert_eq!(
        payload_findings("http/basic-auth-with-colon.pcap", "2"),
        vec![
            one("cleartext", "high", "172.24.133.205", 8000, "http"),
            one("service-mismatch", "low", "172.24.133.205", 8000, "http"),
        ],
        "HTTP Basic credentials; HTTP on 8000 (irdmi)"
    );
    assert_eq!(
        payload_findings("pop3/pop3.pcap", "2"),
        vec![
            one("cleartext", "high", "212.227.15.166", 110, "pop3"),
            one("cleartext", "medium", "212.227.15.166", 110, "pop3"),
        ]
    );
    assert_eq!(
        payload_findings("telnet-auth-missing-name.pcap", "2"),
        vec![
            one("cleartext", "high", "10.0.0.2", 21, "telnet"),
            one("service-mismatch", "high", "10.0.0.2", 21, "telnet"),
        ],
        "Telnet, on FTP's port"
    );
    assert_eq!(
        payload_findings("ftp/ipv4.pcap", "2"),
        vec![one("cleartext", "medium", "199.233.217.249", 21, "ftp")],
        "an anonymous FTP session: cleartext, but no credentials"
    );
}

#[test]
fn flows_carry_the_detected_protocol() {
    let file = root().join(TRACES).join("ssl-and-ssh-using-sslh.pcap");
    let out = portflow()
        .args(["read", "-q", "--flows"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut protos: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|f| f["server"]["port"] == 443)
        .map(|f| f["detected"].as_str().unwrap_or("none").to_string())
        .collect();
    protos.sort();
    assert_eq!(protos, vec!["ssh", "tls"]);
}

/// A client polling an NTP server every two minutes from port 123: each poll
/// is a flow of its own (UDP flows end after a minute idle), and each is
/// inspected, not only the first four (the reader's first-packets table
/// counted payload packets per port pair across flows).
#[test]
fn every_flow_of_a_periodic_client_is_inspected() {
    use portflow_synth::build::{eth_ip, udp, v4};
    let (client, server) = (v4(192, 168, 1, 10), v4(192, 168, 1, 1));
    // NTPv4 client request and server reply: stratum, poll and a transmit time.
    let mut request = vec![0x23, 0, 6];
    request.resize(40, 0);
    request.extend_from_slice(&[0xe9, 1, 2, 3, 4, 5, 6, 7]);
    let mut reply = request.clone();
    reply[0] = 0x24;
    reply[1] = 2;
    let mut pcap = portflow_synth::write::Pcap::new(1, 65535, false, false);
    let polls = 8;
    for i in 0..polls {
        let ts = 1_700_000_000_000_000_000 + i * 120_000_000_000;
        pcap.packet(ts, &eth_ip(&udp(client, 123, server, 123, &request)));
        pcap.packet(
            ts + 2_000_000,
            &eth_ip(&udp(server, 123, client, 123, &reply)),
        );
    }
    let file = std::env::temp_dir().join(format!("portflow-ntp-{}.pcap", std::process::id()));
    std::fs::write(&file, &pcap.buf).unwrap();
    let out = portflow()
        .args(["read", "-q", "--flows"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{}", stderr(&out));
    let detected: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|f| f["detected"].as_str().unwrap_or("none").to_string())
        .collect();
    assert_eq!(detected, vec!["ntp"; polls as usize]);
}
