//! `portflow read` end to end, on the generated fixtures.
mod support;
use serde_json::Value;
use std::io::Read;
use std::process::Stdio;
use support::*;

fn gen(name: &str) -> std::path::PathBuf {
    fixture(&format!("generated/{name}"))
}

fn port<'a>(r: &'a Value, proto: &str, port: u64) -> &'a Value {
    r["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["proto"] == proto && p["port"] == port)
        .unwrap_or_else(|| panic!("no {proto}/{port} in {}", r["ports"]))
}

/// Ports with the fields that do not depend on link-layer framing.
fn port_shape(r: &Value) -> Vec<(String, u64, Vec<u64>)> {
    let fields = [
        "packets",
        "flows",
        "clients",
        "servers",
        "to_server.packets",
        "to_client.packets",
    ];
    port_fields(r, &fields)
}

#[test]
fn same_traffic_same_ports_under_every_link_type_and_tunnel() {
    let base = port_shape(&json_report(&[&gen("eth.pcap")], &[]));
    assert_eq!(base.len(), 9);
    for f in [
        "eth-be-ns.pcap",
        "eth.pcap.gz",
        "vlan.pcap",
        "sll.pcap",
        "sll2.pcap",
        "null-le.pcap",
        "null-be.pcap",
        "loop.pcap",
        "raw.pcap",
        "pppoe.pcap",
        "snaplen64.pcap",
        "tunnels.pcap",
        "mixed-link.pcapng",
    ] {
        assert_eq!(port_shape(&json_report(&[&gen(f)], &[])), base, "{f}");
    }
}

#[test]
fn snaplen_cut_packets_count_their_wire_length() {
    let full = json_report(&[&gen("eth.pcap")], &[]);
    let cut = json_report(&[&gen("snaplen64.pcap")], &[]);
    assert_eq!(full["totals"]["bytes"], cut["totals"]["bytes"]);
    assert_eq!(
        port(&full, "tcp", 80)["bytes"],
        port(&cut, "tcp", 80)["bytes"]
    );
    assert!(cut["totals"]["truncated_by_snaplen"].as_u64().unwrap() > 10);
}

#[test]
fn report_is_identical_for_any_worker_count() {
    let files = [
        gen("eth.pcap"),
        gen("tunnels.pcap"),
        gen("fragments.pcap"),
        gen("scan.pcap"),
        fixture("corpus"),
    ];
    let paths: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let strip = |mut v: Value| {
        v["generator"] = Value::Null;
        v
    };
    let one = strip(json_report(&paths, &["--workers", "1"]));
    for n in ["2", "3", "8"] {
        assert_eq!(
            one,
            strip(json_report(&paths, &["--workers", n])),
            "--workers {n}"
        );
    }
    let flows = |n: &str| {
        let mut args = vec!["read", "-q", "--flows", "--workers", n];
        let ps: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        args.extend(ps.iter().map(|s| s.as_str()));
        stdout(&run(&args))
    };
    assert_eq!(flows("1"), flows("4"));
}

#[test]
fn service_side_and_conn_states() {
    let out = run(&[
        "read",
        "-q",
        "--flows",
        &gen("eth.pcap").display().to_string(),
    ]);
    assert!(out.status.success());
    let flows: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |cport: u64| {
        flows
            .iter()
            .find(|f| f["client"]["port"] == cport)
            .unwrap_or_else(|| panic!("client port {cport}"))
    };
    let expect = [
        (40001, 80, "SF", Some("http")),
        (51000, 22, "REJ", Some("ssh")),
        (33333, 8000, "S0", Some("irdmi")),
        (50505, 443, "OTH", Some("https")),
        (55555, 31337, "S1", Some("eldim")),
        (1024, 31337, "OTH", Some("eldim")),
        (53000, 53, "SF", Some("domain")),
        (41000, 9999, "S0", Some("distinct")),
        (40002, 443, "RSTO", Some("https")),
    ];
    for (cport, sport, state, service) in expect {
        let f = find(cport);
        assert_eq!(f["server"]["port"], sport, "{f}");
        assert_eq!(f["conn_state"], state, "{f}");
        assert_eq!(f["service"].as_str(), service, "{f}");
    }
    let http = find(40001);
    assert_eq!(
        (
            http["to_server"]["packets"].as_u64(),
            http["to_client"]["packets"].as_u64()
        ),
        (Some(5), Some(5))
    );
    assert_eq!(http["first_seen"], "2024-01-01T00:00:00.000000Z");
    assert_eq!(flows.len(), 11);
}

#[test]
fn port_statistics_fields() {
    let r = json_report(&[&gen("eth.pcap")], &[]);
    assert_eq!(r["schema"], "portflow.report/1");
    let http = port(&r, "tcp", 80);
    assert_eq!(http["service"], "http");
    assert_eq!(http["class"], "well-known");
    assert_eq!(
        (http["packets"].as_u64(), http["flows"].as_u64()),
        (Some(10), Some(1))
    );
    assert_eq!(http["tcp"]["syn"], 1);
    assert_eq!(http["tcp"]["syn_ack"], 1);
    assert_eq!(http["tcp"]["states"]["SF"], 1);
    assert_eq!(http["handshake_rtt_us"]["p50"], 850);
    assert_eq!(http["packet_size"]["max"], 1454);
    let ssh = port(&r, "tcp", 22);
    assert_eq!(ssh["tcp"]["rst"], 1);
    assert_eq!(ssh["tcp"]["states"]["REJ"], 1);
    assert_eq!(port(&r, "tcp", 31337)["class"], "registered");
    assert_eq!(port(&r, "tcp", 31337)["flows"], 2);
    assert_eq!(port(&r, "tcp", 31337)["clients"], 2);
    assert_eq!(port(&r, "udp", 9999)["unreachable"], 1);
    let closed = r["closed_ports"].as_array().unwrap();
    assert!(closed
        .iter()
        .any(|c| c["port"] == 9999 && c["host"] == "10.0.0.1"));
    assert!(closed
        .iter()
        .any(|c| c["port"] == 7777 && c["host"] == "2001:db8::1"));
    let t = &r["totals"];
    assert_eq!(
        (
            t["packets"].as_u64(),
            t["tcp_packets"].as_u64(),
            t["udp_packets"].as_u64()
        ),
        (Some(38), Some(30), Some(6))
    );
    assert_eq!(t["icmp_packets"], 2);
    assert_eq!(t["decode_errors"], 0);
}

#[test]
fn fragments_are_attributed_to_their_first_fragments_flow() {
    let r = json_report(&[&gen("fragments.pcap")], &[]);
    // Both ports are registered and named: the lower one is taken as the service.
    assert_eq!(port(&r, "udp", 5000)["packets"], 4);
    assert_eq!(port(&r, "udp", 6000)["packets"], 2);
    let f = &r["totals"]["fragments"];
    assert_eq!(
        (
            f["packets"].as_u64(),
            f["attributed"].as_u64(),
            f["unattributed"].as_u64()
        ),
        (Some(6), Some(3), Some(1))
    );
    assert_eq!(r["totals"]["unattributed_packets"], 1);
}

#[test]
fn ipv4_options_and_ipv6_extension_headers() {
    let r = json_report(&[&gen("options-ext.pcap")], &[]);
    assert_eq!(port(&r, "tcp", 25)["packets"], 3);
    assert_eq!(port(&r, "udp", 5353)["packets"], 3);
    assert_eq!(r["totals"]["decode_errors"], 0);
}

#[test]
fn tunnels_are_counted_by_kind() {
    let r = json_report(&[&gen("tunnels.pcap")], &[]);
    let t = &r["totals"]["tunnels"];
    for k in [
        "gre", "erspan", "vxlan", "geneve", "gtp-u", "ip-in-ip", "6in4", "teredo",
    ] {
        assert!(t[k].as_u64().unwrap_or(0) > 0, "{k} in {t}");
    }
    assert_eq!(
        t.as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        38
    );
}

#[test]
fn standard_input_gives_the_same_report() {
    let f = std::fs::File::open(gen("eth.pcap.gz")).unwrap();
    let o = portflow()
        .args(["read", "-q", "--format", "json", "-"])
        .stdin(f)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut a: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut b = json_report(&[&gen("eth.pcap")], &[]);
    for v in [&mut a, &mut b] {
        v["generator"] = Value::Null;
        v["inputs"] = Value::Null;
    }
    assert_eq!(a, b);
}

#[test]
fn several_files_and_folders_make_one_report() {
    let r = json_report(&[&gen("eth.pcap"), &fixture("corpus/zeek")], &[]);
    assert!(r["inputs"].as_array().unwrap().len() > 20);
    let single = json_report(&[&gen("eth.pcap")], &[]);
    assert!(r["totals"]["packets"].as_u64() > single["totals"]["packets"].as_u64());
}

#[test]
fn bpf_filter_like_tcpdump() {
    let r = json_report(&[&gen("eth.pcap")], &["-f", "udp and not port 53"]);
    let ports: Vec<u64> = r["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports.len(), 3, "{ports:?}");
    assert!(ports.contains(&9999) && ports.contains(&123) && ports.contains(&7777));
    assert_eq!(r["totals"]["filtered_out"], 34);
    // The same filter on other link types.
    let r2 = json_report(&[&gen("mixed-link.pcapng")], &["-f", "tcp port 80"]);
    assert_eq!(port(&r2, "tcp", 80)["packets"], 10);
    assert_eq!(r2["ports"].as_array().unwrap().len(), 1);
}

#[test]
fn bpf_lengths_are_the_packets_as_with_tcpdump_on_cut_packets() {
    // snaplen64.pcap: 22 of its 38 packets were cut to 64 bytes. `len`,
    // `greater` and `less` test the original length, as tcpdump -r does.
    let file = gen("snaplen64.pcap");
    for expr in [
        "greater 200",
        "less 100",
        "tcp and len > 500",
        "udp or len <= 80",
    ] {
        // tcpdump prints one line per packet that matches.
        let t = std::process::Command::new("tcpdump")
            .args(["-n", "-q", "-r", file.to_str().unwrap(), expr])
            .stderr(Stdio::null())
            .output()
            .expect("tcpdump (installed by the README's test command)");
        assert!(t.status.success(), "tcpdump {expr}");
        let theirs = String::from_utf8_lossy(&t.stdout).lines().count() as u64;
        let r = json_report(&[&file], &["-f", expr]);
        let ours = r["totals"]["packets"].as_u64().unwrap();
        assert_eq!(ours, theirs, "{expr}");
        assert_eq!(
            ours + r["totals"]["filtered_out"].as_u64().unwrap(),
            38,
            "{expr}"
        );
        if expr == "greater 200" {
            // Every packet over 200 bytes was cut to 64: judged by the captured
            // length, none would match.
            assert!(theirs > 0);
        }
    }
}

#[test]
fn bad_filter_is_a_clear_error() {
    let o = run(&[
        "read",
        "-f",
        "tcp and and",
        &gen("eth.pcap").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert_eq!(
        e.trim_end(),
        "portflow: bad filter expression 'tcp and and': syntax error at word 3, 'and' \
         (what comes before it, 'tcp and', is fine)"
    );
}

#[test]
fn corrupt_files_name_file_offset_and_packet() {
    let cases = [
        ("bad-magic.pcap", "not a pcap or pcapng file"),
        ("bad-huge-record.pcap", "at byte offset 94 (packet 2)"),
    ];
    for (f, msg) in cases {
        let p = gen(f).display().to_string();
        let o = run(&["read", &p]);
        assert_eq!(o.status.code(), Some(2), "{f}");
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.starts_with(&format!("portflow: {p}: ")), "{e}");
        assert!(e.contains(msg), "{e}");
        assert!(o.stdout.is_empty(), "no report without --keep-going");
    }
    let o = run(&["read", "/nonexistent.pcap"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent.pcap"));
}

#[test]
fn keep_going_reports_what_was_read_and_still_fails() {
    let o = run(&[
        "read",
        "-q",
        "--keep-going",
        "--format",
        "json",
        &gen("bad-huge-record.pcap").display().to_string(),
        &gen("eth.pcap").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["inputs"][0]["packets"], 1);
    assert!(r["inputs"][0]["error"]
        .as_str()
        .unwrap()
        .contains("record claims"));
    assert_eq!(r["totals"]["packets"], 1 + 38);
    assert_eq!(stderr(&o).lines().count(), 1);
}

/// The commonest damage, a capture killed while it was written: the file ends
/// inside its last record. Everything before the cut is reported, a warning
/// names the file and the offset, and the status is 0; the next file is read
/// too. The same for gzip data that ends early and a pcapng block cut short.
#[test]
fn a_file_cut_inside_its_last_record_is_read_to_the_cut_with_a_warning() {
    let cut = gen("bad-truncated.pcap");
    let o = run(&[
        "read",
        "-q",
        "--format",
        "json",
        &cut.display().to_string(),
        &gen("eth.pcap").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(
        e,
        format!(
            "portflow: warning: {}: file ends inside a record (truncated capture) at byte offset \
             10343 (packet 33); the 32 whole packets before it are in the report\n",
            cut.display()
        )
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["inputs"][0]["packets"], 32);
    assert!(r["inputs"][0]["error"].is_null());
    assert!(r["inputs"][0]["warning"]
        .as_str()
        .unwrap()
        .contains("at byte offset 10343"));
    assert!(r["inputs"][1].get("warning").is_none());
    assert_eq!(r["totals"]["packets"], 32 + 38);
    let table = stdout(&run(&["read", "-q", &cut.display().to_string()]));
    assert!(table.contains("\nwarning: "), "{table}");

    let dir = std::env::temp_dir().join(format!("portflow-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gz = std::fs::read(gen("eth.pcap.gz")).unwrap();
    let gz_cut = dir.join("cut.pcap.gz");
    std::fs::write(&gz_cut, &gz[..gz.len() - 100]).unwrap();
    let ng = std::fs::read(gen("mixed-link.pcapng")).unwrap();
    let ng_cut = dir.join("cut.pcapng");
    std::fs::write(&ng_cut, &ng[..ng.len() - 10]).unwrap();
    for f in [&gz_cut, &ng_cut] {
        let o = run(&["read", "-q", "--format", "json", &f.display().to_string()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.starts_with(&format!("portflow: warning: {}: ", f.display()))
                && e.contains("at byte offset")
                && e.lines().count() == 1,
            "{e}"
        );
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(r["totals"]["packets"].as_u64().unwrap() > 30, "{f:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A folder with one damaged file among many: the error says how to read the
/// rest.
#[test]
fn a_damaged_file_among_many_names_keep_going() {
    let o = run(&[
        "read",
        "-q",
        &gen("bad-huge-record.pcap").display().to_string(),
        &gen("eth.pcap").display().to_string(),
        &gen("vlan.pcap").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("(2 more inputs not read; --keep-going reads past a damaged file)"),
        "{e}"
    );
    let alone = stderr(&run(&[
        "read",
        &gen("bad-huge-record.pcap").display().to_string(),
    ]));
    assert!(!alone.contains("--keep-going"), "{alone}");
}

#[test]
fn closed_pipe_exits_quietly() {
    let mut child = portflow()
        .args(["read", "-q", "--flows", "--workers", "1"])
        .args((0..40).map(|_| gen("eth.pcap")))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stderr(&o), "");
}

#[test]
fn output_file_is_complete_or_absent() {
    let dir = std::env::temp_dir().join(format!("portflow-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("report.json");
    let o = run(&[
        "read",
        "-q",
        "--format",
        "json",
        "-o",
        &dest.display().to_string(),
        &gen("eth.pcap").display().to_string(),
    ]);
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&std::fs::read(&dest).unwrap()).unwrap();
    assert_eq!(v["totals"]["packets"], 38);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left"
    );
    let o = run(&[
        "read",
        "-o",
        &dir.join("x.json").display().to_string(),
        &gen("bad-magic.pcap").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!dir.join("x.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn table_has_header_summary_and_aligned_rows() {
    let o = run(&[
        "read",
        "-q",
        "--top",
        "3",
        &gen("eth.pcap").display().to_string(),
    ]);
    assert!(o.status.success());
    let s = stdout(&o);
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines[0].starts_with("portflow "), "{s}");
    assert!(lines[0].contains("38 packets"), "{s}");
    let header = lines
        .iter()
        .position(|l| l.starts_with("PROTO"))
        .expect("header row");
    let rows = &lines[header + 1..header + 4];
    assert!(
        rows[0].starts_with("tcp") && rows[0].contains("http"),
        "{s}"
    );
    let col = lines[header].find("PACKETS").unwrap() + "PACKETS".len();
    for r in rows {
        assert!(
            r.as_bytes()[col - 1].is_ascii_digit(),
            "right-aligned under PACKETS: {r}"
        );
    }
    // 9 ports carried traffic; 4 only saw probes, which the table folds.
    assert!(s.contains("... 2 more ports"), "{s}");
    assert!(s.contains("ports only probed (no server answered; not in the rows above): 4"));
}

#[test]
fn services_lookup_by_port_name_and_file() {
    let o = run(&["services", "443"]);
    let s = stdout(&o);
    assert!(o.status.success());
    assert!(
        s.lines()
            .any(|l| l.starts_with("443") && l.contains("tcp") && l.contains("https")),
        "{s}"
    );
    let o = run(&["services", "ssh", "--format", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["port"] == 22 && e["transport"] == "tcp" && e["class"] == "well-known"));
    let dir = std::env::temp_dir().join(format!("portflow-svc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("services");
    std::fs::write(&f, "# local\nmyapp 31337/tcp   # our app\n").unwrap();
    let o = run(&[
        "services",
        "31337/tcp",
        "--services",
        &f.display().to_string(),
    ]);
    assert!(stdout(&o).contains("myapp"), "{}", stdout(&o));
    let r = json_report(
        &[&gen("eth.pcap")],
        &["--services", &f.display().to_string()],
    );
    assert_eq!(port(&r, "tcp", 31337)["service"], "myapp");
    std::fs::write(&f, "broken 99999/tcp\n").unwrap();
    let o = run(&["services", "22", "--services", &f.display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(":1: bad port"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
    let o = run(&["services", "no-such-service-name"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn generated_fixtures_are_reproducible() {
    for f in portflow_synth::fixtures::all() {
        let committed = std::fs::read(gen(f.name)).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert!(
            committed == f.bytes,
            "fixtures/generated/{} differs from what synth/src/fixtures.rs makes: run `make fixtures`",
            f.name
        );
    }
}

#[test]
fn open_port_inventory_and_closed_attempts() {
    let r = json_report(&[&gen("eth.pcap")], &[]);
    let open: Vec<(String, String, u64, Vec<String>, u64)> = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["host"].as_str().unwrap().to_string(),
                s["proto"].as_str().unwrap().to_string(),
                s["port"].as_u64().unwrap(),
                s["evidence"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap().to_string())
                    .collect(),
                s["flows"].as_u64().unwrap(),
            )
        })
        .collect();
    let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        open,
        vec![
            ("10.0.0.1".into(), "tcp".into(), 80, e(&["handshake"]), 1),
            ("10.0.0.1".into(), "tcp".into(), 31337, e(&["handshake", "midstream"]), 2),
            ("10.0.0.5".into(), "tcp".into(), 443, e(&["midstream"]), 1),
            ("10.0.0.53".into(), "udp".into(), 53, e(&["answered"]), 1),
            ("2001:db8::1".into(), "tcp".into(), 443, e(&["handshake"]), 1),
            ("2001:db8::7b".into(), "udp".into(), 123, e(&["answered"]), 1),
        ],
        "an unanswered SYN (8000), a refused SYN (22) and ICMP-refused datagrams are not open ports"
    );
    let closed = r["closed_port_attempts"].as_array().unwrap();
    assert_eq!(closed.len(), 2);
    assert_eq!(
        (
            closed[0]["host"].as_str(),
            closed[0]["tcp_rejected"].as_u64()
        ),
        (Some("10.0.0.1"), Some(1))
    );
    assert_eq!(closed[0]["udp_unreachable"], 1);
    assert_eq!(closed[1]["udp_unreachable"], 1);
}

#[test]
fn policy_flags_services_outside_it_and_fail_on_sets_the_status() {
    let policy = root().join("docs/examples/policy.toml");
    let p = policy.display().to_string();
    let r = json_report(&[&gen("eth.pcap")], &["--policy", &p]);
    let found: Vec<(String, String, u64, String)> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["host"].as_str().unwrap().to_string(),
                f["port"].as_u64().unwrap(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("unexpected-port".into(), "10.0.0.1".into(), 80, "medium".into()),
            ("unexpected-port".into(), "10.0.0.1".into(), 31337, "medium".into()),
        ],
        "everything the policy allows (443 and 53 in 10.0.0.0/24, 443 and 123 in 2001:db8::/64) is not flagged"
    );
    let f = &r["findings"][1];
    assert_eq!(
        (f["proto"].as_str(), f["service"].as_str()),
        (Some("tcp"), Some("eldim"))
    );
    assert_eq!(f["evidence"]["clients"], 2);
    assert_eq!(f["clients"], serde_json::json!(["10.0.0.7", "10.0.0.8"]));
    assert!(f["src"].is_null());
    let file = gen("eth.pcap").display().to_string();
    let status = |extra: &[&str]| {
        let mut args = vec!["read", "-q", "--policy", p.as_str(), file.as_str()];
        args.extend_from_slice(extra);
        run(&args).status.code()
    };
    assert_eq!(status(&[]), Some(0));
    assert_eq!(status(&["--fail-on", "medium"]), Some(1));
    assert_eq!(status(&["--fail-on", "low"]), Some(1));
    assert_eq!(status(&["--fail-on", "high"]), Some(0));
    let without = json_report(&[&gen("eth.pcap")], &[]);
    assert_eq!(
        without["findings"],
        serde_json::json!([]),
        "no policy, no unexpected-port findings"
    );
}

#[test]
fn bad_policy_names_line_and_column() {
    let dir = std::env::temp_dir().join(format!("portflow-pol-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("policy.toml");
    std::fs::write(
        &f,
        "[default]\ntcp = [22]\n\n[[hosts]]\nmatch = \"10.0.0.0/40\"\n",
    )
    .unwrap();
    let o = run(&[
        "read",
        "--policy",
        &f.display().to_string(),
        &gen("eth.pcap").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("policy.toml:5:9: '/40' is not a prefix length (0-32)"),
        "{e}"
    );
    assert!(o.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scans_sweeps_and_odd_flags_but_not_a_busy_server() {
    let r = json_report(&[&gen("scan.pcap")], &[]);
    /// (kind, src, host, port)
    type Row = (String, Option<String>, Option<String>, Option<u64>);
    let f: Vec<Row> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["src"].as_str().map(str::to_string),
                f["host"].as_str().map(str::to_string),
                f["port"].as_u64(),
            )
        })
        .collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        f,
        vec![
            ("host-sweep".into(), s("10.9.9.9"), None, Some(445)),
            ("odd-flags".into(), s("10.9.9.9"), s("10.0.0.1"), None),
            ("port-scan".into(), s("10.9.9.9"), s("10.0.0.1"), None),
        ],
        "200 clients of one HTTPS server are not a scan"
    );
    assert_eq!(r["findings"][2]["evidence"]["ports"], 99);
    assert_eq!(r["findings"][0]["evidence"]["hosts"], 30);
    assert!(r["findings"][1]["detail"]
        .as_str()
        .unwrap()
        .contains("1 NULL, 1 FIN and 1 Xmas"));
    // Thresholds are flags.
    let r = json_report(
        &[&gen("scan.pcap")],
        &["--scan-ports", "100", "--sweep-hosts", "31"],
    );
    let kinds: Vec<&str> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["odd-flags"]);
    let o = run(&[
        "read",
        "-q",
        "--fail-on",
        "medium",
        &gen("scan.pcap").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(1));
}

/// A capture of open ports tied on bytes, where the address as text orders
/// otherwise than as a number (10.0.0.10 before 10.0.0.9), across the cut of
/// every --top.
fn tied_open_ports() -> std::path::PathBuf {
    use portflow_synth::build::{eth_ip, udp, v4};
    let mut pcap = portflow_synth::write::Pcap::new(1, 65535, false, false);
    let mut ts = 1_000_000_000u64;
    for host in (2..40u8).rev() {
        for (port, reply) in [(53u16, 40usize), (7, 40)] {
            let (c, srv) = (v4(192, 168, 1, 1), v4(10, 0, 0, host));
            pcap.packet(
                ts,
                &eth_ip(&udp(c, 40000 + host as u16, srv, port, &[1; 20])),
            );
            pcap.packet(
                ts + 1000,
                &eth_ip(&udp(srv, port, c, 40000 + host as u16, &vec![2; reply])),
            );
            ts += 1_000_000;
        }
    }
    let tied = std::env::temp_dir().join(format!("portflow-ties-{}.pcap", std::process::id()));
    std::fs::write(&tied, &pcap.buf).unwrap();
    tied
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// A JSON report's port rows and open ports, in the table's orders.
fn in_table_order(r: &Value) -> (Vec<&Value>, Vec<&Value>) {
    // The table's rows leave out the ports only probes reached.
    let mut ports: Vec<&Value> = r["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["probed_only"] == false)
        .collect();
    ports.sort_by(|a, b| {
        (num(&b["bytes"]), num(&b["packets"]))
            .cmp(&(num(&a["bytes"]), num(&a["packets"])))
            .then((text(&a["proto"]), num(&a["port"])).cmp(&(text(&b["proto"]), num(&b["port"]))))
    });
    let mut services: Vec<&Value> = r["services"].as_array().unwrap().iter().collect();
    services.sort_by(|a, b| {
        num(&b["bytes"])
            .cmp(&num(&a["bytes"]))
            .then(text(&a["host"]).cmp(&text(&b["host"])))
            .then(num(&a["port"]).cmp(&num(&b["port"])))
            .then(text(&a["proto"]).cmp(&text(&b["proto"])))
    });
    (ports, services)
}

/// The (proto, port) of the port table's rows in a table's text.
fn table_ports(lines: &[&str]) -> Vec<(String, u64)> {
    let header = lines
        .iter()
        .position(|l| l.starts_with("PROTO"))
        .expect("header");
    lines[header + 1..]
        .iter()
        .take_while(|l| !l.is_empty() && !l.starts_with("..."))
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c[0].to_string(), c[1].parse().unwrap())
        })
        .collect()
}

/// Checks the open ports a table lists against the report's, when it lists
/// any; whether it did.
fn open_ports_listed(lines: &[&str], services: &[&Value], top: usize, what: &str) -> bool {
    let Some(at) = lines
        .iter()
        .position(|l| l.starts_with("open ports seen serving: "))
    else {
        assert!(services.is_empty(), "{what}: no open ports listed");
        return false;
    };
    assert_eq!(
        lines[at],
        format!("open ports seen serving: {}", services.len())
    );
    let header: Vec<&str> = lines[at + 1].split_whitespace().collect();
    assert_eq!(
        header,
        ["HOST", "PORT", "SERVICE", "DETECTED", "EVIDENCE", "FLOWS", "CLIENTS", "BYTES", "NAME"],
        "{what}: the open-port list has its header"
    );
    let listed: Vec<String> = lines[at + 2..]
        .iter()
        .take_while(|l| l.starts_with("  ") && !l.trim_start().starts_with("..."))
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            format!("{} {}", c[0], c[1])
        })
        .collect();
    let want: Vec<String> = services
        .iter()
        .take(top)
        .map(|v| {
            format!(
                "{} {}/{}",
                text(&v["host"]),
                text(&v["proto"]),
                num(&v["port"])
            )
        })
        .collect();
    assert_eq!(listed, want, "{what}");
    true
}

/// The table holds only its shown rows (the report is built for them); they
/// must be the first rows of the full JSON report in the table's order, with
/// the counts of all rows.
#[test]
fn table_rows_are_the_first_of_the_full_report_in_table_order() {
    let mut files: Vec<std::path::PathBuf> = ["eth.pcap", "scan.pcap", "tunnels.pcap", "vlan.pcap"]
        .iter()
        .map(|f| gen(f))
        .collect();
    files.push(fixture("corpus/zeek"));
    let tied = tied_open_ports();
    files.push(tied.clone());
    let mut checked_services = 0;
    for f in &files {
        let r = json_report(&[f], &[]);
        let (ports, services) = in_table_order(&r);
        for top in [1usize, 2, 5] {
            let o = run(&[
                "read",
                "-q",
                "--top",
                &top.to_string(),
                &f.display().to_string(),
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            let s = stdout(&o);
            let lines: Vec<&str> = s.lines().collect();
            let want: Vec<(String, u64)> = ports
                .iter()
                .take(top)
                .map(|p| (text(&p["proto"]), num(&p["port"])))
                .collect();
            let what = format!("{} --top {top}:\n{s}", f.display());
            assert_eq!(table_ports(&lines), want, "{what}");
            if ports.len() > top {
                let more = format!("... {} more ports", ports.len() - top);
                assert!(s.contains(&more), "{more}: {what}");
            }
            checked_services += open_ports_listed(&lines, &services, top, &what) as u32;
        }
    }
    let _ = std::fs::remove_file(&tied);
    assert!(
        checked_services >= 6,
        "too few captures with open ports ({checked_services})"
    );
}

/// The number before `unit` in `line` after `label` ("reading 1.2 ms" -> 1.2).
fn figure(line: &str, label: &str) -> f64 {
    let rest = line
        .split_once(label)
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"))
        .1;
    rest.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure after {label:?} in {line:?}"))
}

#[test]
fn timings_go_to_stderr_and_leave_the_report_alone() {
    let f = gen("eth.pcap").display().to_string();
    for workers in ["1", "2", "3"] {
        let plain = run(&["read", "-q", "--format", "json", "--workers", workers, &f]);
        let timed = run(&[
            "read",
            "-q",
            "--format",
            "json",
            "--timings",
            "--workers",
            workers,
            &f,
        ]);
        assert!(timed.status.success());
        let strip = |o: &std::process::Output| {
            let mut v: Value = serde_json::from_slice(&o.stdout).unwrap();
            v["generator"]["elapsed_s"] = Value::Null;
            v
        };
        assert_eq!(
            strip(&plain),
            strip(&timed),
            "same report, --workers {workers}"
        );
        let err = stderr(&timed);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        let (phases, cpu) = (lines[0], lines[1]);
        assert!(
            phases.starts_with("portflow: timings: reading "),
            "{phases}"
        );
        let total = figure(phases, "; ");
        let parts: f64 = ["reading ", "merge ", "report ", "writing "]
            .iter()
            .map(|l| figure(phases, l))
            .sum();
        // Phases one after the other, within the command's time (each rounded
        // to 0.1 ms).
        assert!(parts <= total + 0.3, "{phases}");
        if workers == "1" {
            // A legacy pcap file of one chunk is read on one thread that
            // reads and accounts.
            assert!(
                phases.contains(" on 1 thread (1 chunk, 0 read again)"),
                "{phases}"
            );
            assert!(cpu.starts_with("portflow: CPU: thread 0 "), "{cpu}");
            assert!(!cpu.contains("thread 1 "), "{cpu}");
            assert!(figure(cpu, "; ") >= figure(cpu, "thread 0 "), "{cpu}");
        }
    }
    // A stream: one reader and N-1 flow workers.
    let f = gen("eth.pcap.gz").display().to_string();
    for workers in ["1", "2", "3"] {
        let timed = run(&["read", "-q", "--timings", "--workers", workers, &f]);
        assert!(timed.status.success());
        let err = stderr(&timed);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        let (phases, cpu) = (lines[0], lines[1]);
        let total = figure(phases, "; ");
        let parts: f64 = ["reading ", "open flows ", "merge ", "report ", "writing "]
            .iter()
            .map(|l| figure(phases, l))
            .sum();
        assert!(parts <= total + 0.3, "{phases}");
        assert!(cpu.starts_with("portflow: CPU: reader "), "{cpu}");
        let flow_workers = workers.parse::<usize>().unwrap() - 1;
        for i in 0..flow_workers {
            assert!(cpu.contains(&format!(", worker {i} ")), "{cpu}");
        }
        assert!(!cpu.contains(&format!(", worker {flow_workers} ")), "{cpu}");
        assert_eq!(
            cpu.contains("kept the flow table itself"),
            flow_workers == 0,
            "{cpu}"
        );
        let all = figure(cpu, "; ");
        assert!(all >= figure(cpu, "reader "), "{cpu}");
    }
    // Without the option, stderr stays quiet.
    assert_eq!(stderr(&run(&["read", "-q", &f])), "");
}

/// `portflow read ARGS` under a terminal (`script` gives it one), its input
/// a pipe that stalls for 1.5 s after the fixture: what the terminal showed.
fn on_a_terminal_with_a_stall(args: &str) -> String {
    let bin = env!("CARGO_BIN_EXE_portflow");
    let cmd = format!(
        "(cat {}; sleep 1.5) | {bin} read {args} - > /dev/null",
        gen("eth.pcap").display()
    );
    let o = std::process::Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (bsdutils)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_slow_read_shows_a_progress_line_on_a_terminal_and_clears_it() {
    require!(tool("script"), "script (bsdutils) is not installed");
    let shown = on_a_terminal_with_a_stall("");
    // Standard input has no size: bytes read and a rate, redrawn in place.
    assert!(shown.contains(" read, "), "{shown:?}");
    assert!(shown.contains("KiB read"), "{shown:?}");
    assert!(
        shown.ends_with("\r\x1b[2K"),
        "cleared at the end: {shown:?}"
    );
    assert_eq!(on_a_terminal_with_a_stall("-q"), "", "-q shows nothing");
    // Not on a terminal, nothing either.
    let piped = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "(cat {}; sleep 1.5) | {} read - > /dev/null",
            gen("eth.pcap").display(),
            env!("CARGO_BIN_EXE_portflow")
        ))
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert_eq!(String::from_utf8_lossy(&piped.stderr), "");
}

#[test]
fn ports_only_probed_are_folded_in_the_table_and_flagged_in_json() {
    let scan = gen("scan.pcap");
    let r = json_report(&[&scan], &[]);
    let ports = r["ports"].as_array().unwrap();
    let probed: Vec<&Value> = ports.iter().filter(|p| p["probed_only"] == true).collect();
    assert!(
        probed.len() > 90,
        "the scan's refused ports: {}",
        probed.len()
    );
    for p in &probed {
        assert_eq!(p["tcp"]["syn_ack"], 0, "{p}");
    }
    let answered = port(&r, "tcp", 443);
    assert_eq!(answered["probed_only"], false);
    let probes = r["probes"].as_array().unwrap();
    assert_eq!(probes[0]["src"], "10.9.9.9");
    assert_eq!(probes[0]["dst"], "10.0.0.1");
    assert_eq!(probes[0]["refused"], probes[0]["attempts"]);
    // The sweep tried one port per host: no line of its own.
    assert!(probes.iter().all(|p| p["ports"].as_u64().unwrap() >= 2));
    let o = run(&["read", "-q", "--top", "0", scan.to_str().unwrap()]);
    let table = stdout(&o);
    let rows = table
        .lines()
        .skip_while(|l| !l.starts_with("PROTO"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .count();
    assert_eq!(rows + probed.len(), ports.len(), "{table}");
    assert!(
        table.contains(&format!(
            "ports only probed (no server answered; not in the rows above): {}",
            probed.len()
        )),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "  10.9.9.9 -> 10.0.0.1: {} tcp ports probed, all refused",
            probes[0]["ports"]
        )),
        "{table}"
    );
}

/// A capture of DNS exchanges spread over `days` days, a few a day, and one
/// burst of 50 in the same second.
fn over_days(days: u64) -> std::path::PathBuf {
    use portflow_synth::build::{eth_ip, udp, v4};
    let mut pcap = portflow_synth::write::Pcap::new(1, 65535, false, false);
    let (c, srv) = (v4(192, 168, 1, 1), v4(10, 0, 0, 53));
    let start = 1_700_000_000_000_000_000u64;
    let mut times: Vec<u64> = (0..days * 4)
        .map(|i| start + i * 21_600_000_000_000)
        .collect();
    times.extend((0..50).map(|i| start + 86_400_000_000_000 + i * 1_000_000));
    times.sort_unstable();
    for (i, ts) in times.into_iter().enumerate() {
        let sport = 40000 + (i % 1000) as u16;
        pcap.packet(ts, &eth_ip(&udp(c, sport, srv, 53, &[1; 30])));
        pcap.packet(ts + 1000, &eth_ip(&udp(srv, 53, c, sport, &[2; 60])));
    }
    let p = std::env::temp_dir().join(format!("portflow-days-{days}-{}.pcap", std::process::id()));
    std::fs::write(&p, &pcap.buf).unwrap();
    p
}

#[test]
fn the_time_line_adds_up_to_the_totals_fits_its_bound_and_places_findings() {
    for f in [gen("scan.pcap"), gen("eth.pcap"), over_days(400)] {
        let r = json_report(&[&f], &[]);
        let t = &r["timeline"];
        let buckets = t["buckets"].as_array().unwrap();
        assert!(buckets.len() <= 360, "{}: {}", f.display(), buckets.len());
        let sum = |k: &str| buckets.iter().map(|b| b[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum("packets"), r["totals"]["packets"].as_u64().unwrap());
        assert_eq!(sum("bytes"), r["totals"]["bytes"].as_u64().unwrap());
        for b in buckets {
            let s = b["series"].as_array().unwrap();
            assert_eq!(s.len(), t["series"].as_array().unwrap().len());
            let p: u64 = s.iter().map(|c| c["packets"].as_u64().unwrap()).sum();
            assert_eq!(p, b["packets"].as_u64().unwrap(), "{b}");
        }
        // Each port's series over the buckets is that port's row.
        let names = t["series"].as_array().unwrap();
        for (i, name) in names.iter().enumerate().take(names.len() - 1) {
            let (proto, number) = name.as_str().unwrap().split_once('/').unwrap();
            let row = port(&r, proto, number.parse().unwrap());
            let total: u64 = buckets
                .iter()
                .map(|b| b["series"][i]["packets"].as_u64().unwrap())
                .sum();
            assert_eq!(total, row["packets"].as_u64().unwrap(), "{name}");
        }
        let marks = t["findings"].as_array().unwrap();
        assert_eq!(marks.len(), r["findings"].as_array().unwrap().len());
        for m in marks {
            let i = m["finding"].as_u64().unwrap() as usize;
            assert_eq!(m["kind"], r["findings"][i]["kind"]);
            assert!((m["bucket"].as_u64().unwrap() as usize) < buckets.len());
        }
    }
    // 400 days: 2-day buckets (the finest ladder step under 360 buckets),
    // and the burst of one second shows in one bucket.
    let r = json_report(&[&over_days(400)], &[]);
    assert_eq!(r["timeline"]["bucket_s"], 172_800.0);
    let most = r["timeline"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["packets"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(most >= 100, "{most}");
}

#[test]
fn flows_carry_the_names_seen_for_their_server() {
    let eth = gen("eth.pcap");
    let r = json_report(&[&eth], &[]);
    let names = r["names"].as_array().unwrap();
    assert!(
        !names.is_empty(),
        "the fixture's HTTP request names its server"
    );
    let o = run(&["read", "-q", "--flows", eth.to_str().unwrap()]);
    assert!(o.status.success());
    let mut with_names = 0;
    for line in stdout(&o).lines() {
        let f: Value = serde_json::from_str(line).unwrap();
        let server = f["server"]["ip"].as_str().unwrap();
        let want: Vec<&Value> = names
            .iter()
            .filter(|a| a["address"] == server)
            .flat_map(|a| a["names"].as_array().unwrap())
            .map(|n| &n["name"])
            .collect();
        let got: Vec<&Value> = f["server_names"].as_array().unwrap().iter().collect();
        assert_eq!(got, want, "{line}");
        with_names += !got.is_empty() as usize;
    }
    assert!(with_names > 0);
}
