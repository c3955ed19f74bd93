//! `portflow capture` for real: on loopback and on a veth pair between two
//! network namespaces that each test creates and removes (also on failure).
//! They need root (CI runs as root); elsewhere they say so and return.
//! Only loopback and the tests' own namespaces carry traffic.
mod support;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::netns::{sh, Netns};
use support::*;

macro_rules! require_root {
    () => {
        require!(is_root(), "this test captures packets and needs root");
    };
}

/// `n` SYNs to port 80 from seeded random sources, written to `path`.
fn syn_flood_file(path: &std::path::Path, seed: u64, n: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    portflow_synth::scale::syn_flood(seed, n, 80, |b| {
        std::io::Write::write_all(&mut f, b).unwrap()
    });
}

/// A fresh folder that the user a root capture switches to can write in
/// (mode 1777, like /tmp): output files are created after privileges drop.
fn output_dir(tag: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("portflow-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// `Uid:`, `CapEff:`, `CapPrm:` and `NoNewPrivs:` of a running process.
fn credentials(pid: u32) -> std::collections::BTreeMap<String, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| {
            matches!(
                *k,
                "Uid" | "Gid" | "Groups" | "CapEff" | "CapPrm" | "CapInh" | "CapAmb" | "NoNewPrivs"
            )
        })
        .map(|(k, v)| {
            (
                k.to_string(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

/// Keeps reading a child's stderr so it never blocks or fails on it.
fn drain(mut err: BufReader<std::process::ChildStderr>) {
    std::thread::spawn(move || {
        let mut rest = String::new();
        while err.read_line(&mut rest).unwrap_or(0) > 0 {
            eprint!("capture: {rest}");
            rest.clear();
        }
    });
}

fn uid_of(user: &str) -> u32 {
    let o = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// Starts `portflow capture ARGS` (optionally inside a namespace) and waits for
/// its "listening on" line.
fn start_capture(netns: Option<&str>, args: &[&str]) -> Child {
    let bin = env!("CARGO_BIN_EXE_portflow");
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, bin]);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("capture").args(args);
    let (child, line) = launch(cmd);
    assert!(
        line.contains("listening on"),
        "capture did not start: {line}"
    );
    child
}

/// Spawns `cmd` with stdout piped; its first stderr line, and the rest of
/// stderr drained so the child never blocks on it.
fn launch(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    drain(err);
    (child, line)
}

/// Open ports with their detected protocol and flows, and findings, without times.
fn detections(r: &Value) -> (Vec<String>, Vec<String>) {
    let services = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}/{} {} flows {}",
                s["host"], s["proto"], s["port"], s["detected"], s["flows"]
            )
        })
        .collect();
    let findings = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} {} {} {}",
                f["kind"],
                f["severity"],
                f["host"],
                f["port"],
                f["src"],
                f["detected"],
                f["evidence"]
            )
        })
        .collect();
    (services, findings)
}

/// Waits for a capture to end (killing it past `limit`): its status and
/// standard output, read as it comes (a report larger than the pipe's
/// buffer would otherwise stop the capture from ending).
fn finish(child: Child, limit: Duration) -> (Option<i32>, String) {
    let started = Instant::now();
    let mut child = child;
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
        out
    });
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st.code(), reader.join().unwrap());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("capture did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigint(child: &Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
}

/// Per-port packets, bytes, flows and directions, for comparing reports.
fn ports(r: &Value) -> Vec<(String, u64, Vec<u64>)> {
    port_fields(
        r,
        &[
            "packets",
            "bytes",
            "flows",
            "to_server.packets",
            "to_client.packets",
        ],
    )
}

/// A local HTTP server on 127.0.0.1 (python3's http.server), killed on drop.
struct Http {
    child: Child,
    port: u16,
}

impl Http {
    fn start() -> Http {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(root().join("fixtures"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 http.server");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "http server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Http { child, port }
    }

    fn get(&self, n: usize) {
        for _ in 0..n {
            let st = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    &format!("http://127.0.0.1:{}/generated/README.md", self.port),
                ])
                .status()
                .expect("curl");
            assert!(st.success());
        }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `portflow capture lo -f 'tcp port P' ARGS` while `traffic` talks to an
/// HTTP server on port P; the capture's status and standard output.
fn capture_http_on_lo(args: &[&str], traffic: impl FnOnce(&Http)) -> (Option<i32>, String) {
    let http = Http::start();
    let filter = format!("tcp port {}", http.port);
    let mut all = vec!["lo", "-f", &filter];
    all.extend_from_slice(args);
    let cap = start_capture(None, &all);
    traffic(&http);
    finish(cap, Duration::from_secs(10))
}

/// Replays `fixture` into a veth at `pps` and captures the far end with
/// `--workers workers` and `-w` until every packet came (`-c`): the report,
/// and the `-w` file's offline report.
fn replay_captured(fixture: &str, pps: u32, workers: usize) -> (Value, Value) {
    let fixture = self::fixture(fixture);
    let n = json_report(&[&fixture], &[])["totals"]["packets"]
        .as_u64()
        .unwrap();
    let ns = Netns::new(&format!("r{workers}"));
    let dir = output_dir(&format!("replay{workers}"));
    let written = dir.join("w.pcap");
    let events = dir.join("events.ndjson");
    let (n, workers) = (n.to_string(), workers.to_string());
    let mut args = vec![
        ns.veth(&ns.b),
        "-c".into(),
        n,
        "-d".into(),
        "30s".into(),
        "--workers".into(),
        workers.clone(),
        "-w".into(),
        written.to_str().unwrap().into(),
        "--format".into(),
        "json".into(),
    ];
    let learned = dir.join("learned.toml");
    if workers == "2" {
        // What the capture threads hand on for findings raised live comes
        // back into the report.
        args.extend(["--events".into(), events.to_str().unwrap().into()]);
    } else {
        args.extend(["--learn".into(), learned.to_str().unwrap().into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cap = start_capture(Some(&ns.b), &args);
    ns.replay(&fixture, &["--pps", &pps.to_string()]);
    let (code, out) = finish(cap, Duration::from_secs(40));
    assert_eq!(code, Some(0));
    let got: Value = serde_json::from_str(&out).expect("JSON report");
    if workers == "1" {
        let offline = portflow()
            .args(["learn", fixture.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(
            policy_lines(&std::fs::read_to_string(&learned).unwrap()),
            policy_lines(&String::from_utf8_lossy(&offline.stdout)),
            "--learn allows what `learn` of the file allows"
        );
    }
    if workers == "2" {
        assert_eq!(
            identities(&event_lines(&events)),
            identities(got["findings"].as_array().unwrap()),
            "{}: each finding raised once",
            fixture.display()
        );
    }
    let read = json_report(&[&written], &[]);
    std::fs::remove_dir_all(&dir).unwrap();
    (got, read)
}

#[test]
fn veth_replay_counts_equal_the_fixture_with_one_and_two_threads_needs_root() {
    require_root!();
    for fixture in ["generated/eth.pcap", "generated/scan.pcap"] {
        let expected = json_report(&[&self::fixture(fixture)], &[]);
        for workers in [1, 2] {
            let at = format!("{fixture}, --workers {workers}");
            let (got, written) = replay_captured(fixture, 2000, workers);
            let live = &got["live"];
            assert_eq!(live["stopped_by"]["reason"], "count", "{at}");
            assert_eq!(
                got["totals"]["packets"], expected["totals"]["packets"],
                "{at}"
            );
            assert_eq!(got["totals"]["bytes"], expected["totals"]["bytes"], "{at}");
            assert_eq!(ports(&got), ports(&expected), "{at}");
            assert_eq!(
                detections(&got),
                detections(&expected),
                "the same open ports, protocols and findings live as offline: {at}"
            );
            assert_eq!(live["dropped_kernel"], 0, "{at}");
            assert_eq!(live["dropped_queue"], 0, "{at}");
            // One socket per thread; their counts add up to the capture's.
            assert_eq!(live["threads"], workers, "{at}");
            let sockets = live["sockets"].as_array().unwrap();
            assert_eq!(sockets.len(), workers, "{at}");
            let received: u64 = sockets
                .iter()
                .map(|s| s["received"].as_u64().unwrap())
                .sum();
            assert_eq!(live["received"], received, "{at}");
            if workers == 2 && fixture.ends_with("scan.pcap") {
                // Hundreds of flows: the kernel gave each thread some.
                assert!(
                    sockets.iter().all(|s| s["received"].as_u64().unwrap() > 0),
                    "{at}: {sockets:?}"
                );
            }
            // -w holds every packet once, whichever thread took it.
            assert_eq!(
                live["written_packets"], expected["totals"]["packets"],
                "{at}"
            );
            assert_eq!(ports(&written), ports(&expected), "{at}: the -w file");
        }
    }
}

#[test]
fn packets_just_before_a_sigint_are_all_counted_needs_root() {
    // The kernel hands packets over in blocks, a block when it is full or 10 ms
    // after its first packet. Datagrams sent on loopback just before a Ctrl-C
    // sit in a block not yet handed over when the stop is seen: they must be
    // in the report all the same, none silently left in the ring.
    require_root!();
    let to = std::net::UdpSocket::bind("127.0.0.1:0").expect("a port nobody else uses");
    let port = to.local_addr().unwrap().port();
    let from = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let filter = format!("udp dst port {port}");
    for round in 0..3 {
        let cap = start_capture(None, &["lo", "-f", &filter, "--format", "json"]);
        std::thread::sleep(Duration::from_millis(200));
        let n = 200 + 100 * round;
        for i in 0..n {
            from.send_to(&[i as u8; 64], ("127.0.0.1", port)).unwrap();
        }
        sigint(&cap);
        let (code, out) = finish(cap, Duration::from_secs(10));
        assert_eq!(code, Some(0));
        let got: Value = serde_json::from_str(&out).expect("JSON report");
        assert_eq!(got["live"]["stopped_by"]["reason"], "signal");
        assert_eq!(got["totals"]["packets"], n, "round {round}");
        // The kernel counts each loopback packet twice (sent and received);
        // libpcap passes one copy on, as tcpdump shows.
        assert_eq!(got["live"]["received"], 2 * n, "round {round}");
        assert_eq!(got["live"]["dropped_kernel"], 0, "round {round}");
    }
}

#[test]
fn loopback_http_sigint_and_pcap_round_trip_needs_root() {
    require_root!();
    let http = Http::start();
    let dir = output_dir("cap");
    let pcap = dir.join("evidence.pcap");
    let filter = format!("tcp port {}", http.port);
    let cap = start_capture(
        None,
        &[
            "lo",
            "-f",
            &filter,
            "-w",
            pcap.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    http.get(4);
    std::thread::sleep(Duration::from_millis(300));
    sigint(&cap);
    let (code, out) = finish(cap, Duration::from_secs(10));
    assert_eq!(code, Some(0), "Ctrl-C stops and reports with status 0");
    let live: Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(live["live"]["stopped_by"]["reason"], "signal");
    let p = live["ports"].as_array().unwrap();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["port"], http.port);
    assert_eq!(p[0]["flows"], 4);
    assert_eq!(p[0]["clients"], 1);
    assert_eq!(p[0]["tcp"]["syn"], 4);
    assert_eq!(p[0]["tcp"]["syn_ack"], 4);
    assert!(p[0]["handshake_rtt_us"]["count"] == 4);
    assert_eq!(live["live"]["written"], pcap.to_str().unwrap());
    let read = json_report(&[&pcap], &[]);
    assert_eq!(
        ports(&read),
        ports(&live),
        "the -w file gives the live run's per-port counts"
    );
    assert_eq!(read["totals"]["packets"], live["live"]["written_packets"]);
    assert_eq!(live["services"][0]["detected"], "http", "detected live");
    assert_eq!(detections(&read), detections(&live));
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn second_sigint_aborts_at_once_with_a_complete_pcap_needs_root() {
    require_root!();
    let http = Http::start();
    let dir = output_dir("abort");
    let pcap = dir.join("kept.pcap");
    let cap = start_capture(
        None,
        &[
            "lo",
            "-f",
            &format!("tcp port {}", http.port),
            "-w",
            pcap.to_str().unwrap(),
        ],
    );
    http.get(2);
    std::thread::sleep(Duration::from_millis(200));
    sigint(&cap);
    sigint(&cap);
    let (code, out) = finish(cap, Duration::from_secs(5));
    assert!(code == Some(130) || code == Some(0), "status {code:?}");
    if code == Some(130) {
        assert!(out.is_empty(), "no report after an abort");
    }
    let r = json_report(&[&pcap], &[]);
    assert!(
        r["totals"]["packets"].as_u64().unwrap() >= 10,
        "{}",
        r["totals"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn count_and_duration_stop_needs_root() {
    require_root!();
    let (code, out) = capture_http_on_lo(&["-c", "3", "--format", "json"], |h| h.get(1));
    assert_eq!(code, Some(0));
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["totals"]["packets"], 3);
    assert_eq!(r["live"]["stopped_by"]["reason"], "count");

    let started = Instant::now();
    let cap = start_capture(
        None,
        &["lo", "-f", "udp port 9", "-d", "1s", "--format", "json"],
    );
    let (code, out) = finish(cap, Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(started.elapsed() >= Duration::from_secs(1));
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["live"]["stopped_by"]["reason"], "duration");
}

#[test]
fn ndjson_gives_one_object_per_interval_then_the_report_needs_root() {
    require_root!();
    let (code, out) = capture_http_on_lo(
        &["--format", "ndjson", "--interval", "200ms", "-d", "1500ms"],
        |h| h.get(2),
    );
    assert_eq!(code, Some(0));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 5, "{} lines", lines.len());
    let (report, intervals) = lines.split_last().unwrap();
    assert!(intervals
        .iter()
        .all(|i| i["schema"] == "portflow.interval/1"));
    assert_eq!(report["schema"], "portflow.report/1");
    let last = intervals.last().unwrap();
    assert_eq!(last["totals"]["packets"], report["totals"]["packets"]);
    assert!(intervals
        .iter()
        .any(|i| i["ports"].as_array().is_some_and(|p| !p.is_empty())));
}

#[test]
fn bad_filter_is_a_clear_error_needs_root() {
    require_root!();
    let o = run(&["capture", "lo", "-f", "tcp and and", "-d", "1s"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("bad filter expression 'tcp and and': syntax error at word 3, 'and'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unknown_interface_lists_the_available_ones() {
    let o = run(&["capture", "nosuchif0", "-d", "1s"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("no interface named 'nosuchif0'") && e.contains("lo"),
        "{e}"
    );
}

#[test]
fn unprivileged_run_says_how_to_fix_it_needs_root() {
    require_root!();
    let o = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_portflow"))
        .args(["capture", "lo", "-d", "1s"])
        .output()
        .expect("setpriv");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("no permission to capture on lo"), "{e}");
    assert!(e.contains("setcap cap_net_raw,cap_net_admin=eip"), "{e}");
}

#[test]
fn interfaces_lists_loopback() {
    let o = run(&["interfaces", "--format", "json"]);
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let lo = v
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "lo")
        .expect("lo");
    assert_eq!(lo["loopback"], true);
    assert!(lo["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a.as_str().unwrap().starts_with("127.0.0.1")));
}

#[test]
fn interface_going_down_stops_with_a_report_needs_root() {
    require_root!();
    let ns = Netns::new("d");
    let cap = start_capture(
        Some(&ns.b),
        &[&ns.veth(&ns.b), "--format", "json", "-d", "20s"],
    );
    sh(&format!(
        "ip netns exec {} ip link set {} down",
        ns.b,
        ns.veth(&ns.b)
    ));
    let (code, out) = finish(cap, Duration::from_secs(10));
    assert_eq!(code, Some(2), "non-zero exit when the interface fails");
    let r: Value = serde_json::from_str(&out).expect("the final report is still written");
    assert_eq!(r["live"]["stopped_by"]["reason"], "interface-error");
    assert_eq!(r["live"]["stopped_by"]["detail"], "the interface went down");
}

#[test]
fn root_capture_runs_as_an_unprivileged_user_after_open_needs_root() {
    require_root!();
    let nobody = uid_of("nobody");
    let dir = output_dir("privs");
    let pcap = dir.join("as-nobody.pcap");
    let report = dir.join("report.json");
    // Default (no -Z, not under sudo): nobody.
    let cmd_env_cleared = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_portflow"));
        c.env_remove("SUDO_USER").arg("capture").args(args);
        launch(c)
    };
    let (child, line) = cmd_env_cleared(&[
        "lo",
        "-d",
        "2s",
        "-w",
        pcap.to_str().unwrap(),
        "-o",
        report.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(line.contains("running as user nobody"), "{line}");
    std::thread::sleep(Duration::from_millis(300));
    let c = credentials(child.id());
    let n = nobody.to_string();
    assert_eq!(c["Uid"], format!("{n} {n} {n} {n}"), "{c:?}");
    assert_eq!(c["CapEff"], "0000000000000000", "{c:?}");
    assert_eq!(c["CapPrm"], "0000000000000000", "{c:?}");
    assert_eq!(c["CapAmb"], "0000000000000000", "{c:?}");
    assert_eq!(c["NoNewPrivs"], "1", "{c:?}");
    let (code, _) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(0));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&pcap).unwrap().uid(),
        nobody,
        "-w created as nobody"
    );
    assert_eq!(
        std::fs::metadata(&report).unwrap().uid(),
        nobody,
        "-o created as nobody"
    );
    // -Z root keeps root; capabilities stay.
    let (child, line) = cmd_env_cleared(&["lo", "-d", "1s", "-Z", "root", "--format", "json"]);
    assert!(!line.contains("running as"), "{line}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(credentials(child.id())["Uid"], "0 0 0 0");
    let (code, _) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(0));
    let o = run(&["capture", "lo", "-d", "1s", "-Z", "no-such-user-pf"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no such user: no-such-user-pf"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sends `n` UDP datagrams to 127.0.0.1:`port`, 1 ms apart.
fn udp_to_loopback(port: u16, n: usize) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..n {
        s.send_to(&[i as u8; 32], ("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// As root in a folder only root may write (the README's own `-w` example,
/// run from /root): the `-w` file is made before the capture gives up root,
/// handed to the user it goes on as, and holds every packet; `-o` there is
/// refused before anything starts, with what works instead.
#[test]
fn w_in_a_root_only_folder_is_made_before_privileges_drop_needs_root() {
    require_root!();
    let closed = std::env::temp_dir().join(format!("portflow-root-only-{}", std::process::id()));
    std::fs::create_dir_all(&closed).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let pcap = closed.join("evidence.pcap");
    let cap = start_capture(
        None,
        &[
            "lo",
            "-f",
            "udp port 9",
            "-d",
            "2s",
            "-Z",
            "nobody",
            "-w",
            pcap.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    udp_to_loopback(9, 20);
    let (code, out) = finish(cap, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{out}");
    let live: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(live["totals"]["packets"], 20, "{out}");
    let m = std::fs::metadata(&pcap).expect("the -w file");
    assert_eq!(
        m.uid(),
        uid_of("nobody"),
        "handed to the user the capture ran as"
    );
    let read = json_report(&[&pcap], &[]);
    assert_eq!(read["totals"]["packets"], 20);
    assert_eq!(
        std::fs::read_dir(&closed).unwrap().count(),
        1,
        "nothing else"
    );
    let o = run(&[
        "capture",
        "lo",
        "-d",
        "1s",
        "-Z",
        "nobody",
        "-o",
        closed.join("r.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("user nobody cannot create files in that folder")
            && e.contains("-o /tmp/r.json")
            && e.contains("-Z root"),
        "{e}"
    );
    assert!(!closed.join("r.json").exists());
    std::fs::remove_dir_all(&closed).unwrap();
}

#[test]
fn capabilities_are_cleared_after_open_needs_root() {
    require_root!();
    // An unprivileged user given the two capabilities a capture needs (as
    // `setcap cap_net_raw,cap_net_admin=eip` would): it captures, then holds none.
    let mut setpriv = Command::new("setpriv");
    setpriv
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=+net_raw,+net_admin",
            "--ambient-caps=+net_raw,+net_admin",
        ])
        .arg(env!("CARGO_BIN_EXE_portflow"))
        .args(["capture", "lo", "-d", "2s", "--format", "json"]);
    let (child, line) = launch(setpriv);
    assert!(line.contains("listening on lo"), "{line}");
    std::thread::sleep(Duration::from_millis(300));
    let c = credentials(child.id());
    assert_eq!(c["CapEff"], "0000000000000000", "{c:?}");
    assert_eq!(c["CapPrm"], "0000000000000000", "{c:?}");
    assert_eq!(c["CapInh"], "0000000000000000", "{c:?}");
    assert_eq!(c["CapAmb"], "0000000000000000", "{c:?}");
    assert_eq!(c["NoNewPrivs"], "1", "{c:?}");
    let (code, out) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(0));
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["live"]["stopped_by"]["reason"], "duration");
}

#[test]
fn view_keeps_updating_and_drops_are_counted_under_a_syn_flood_needs_root() {
    require_root!();
    // 400,000 SYNs from random sources, every one a new flow, replayed into a
    // veth at 400,000 packets/s (top speed here is about a million a second,
    // too short a flood for the view's intervals to see it arrive).
    let dir = output_dir("flood");
    let flood = dir.join("flood.pcap");
    syn_flood_file(&flood, 11, 400_000);
    let ns = Netns::new("f");
    let cap = start_capture(
        Some(&ns.b),
        &[
            &ns.veth(&ns.b),
            "--format",
            "ndjson",
            "--interval",
            "200ms",
            "--flow-cap",
            "100000",
        ],
    );
    let pid = cap.id();
    ns.replay(&flood, &["--pps", "400000"]);
    std::thread::sleep(Duration::from_millis(1000));
    let hwm_kib: u64 = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    sigint(&cap);
    let (code, out) = finish(cap, Duration::from_secs(20));
    assert_eq!(code, Some(0));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (report, intervals) = lines.split_last().unwrap();
    // The view kept updating through the flood: objects every interval, with
    // packet counts that only grow.
    let counts: Vec<u64> = intervals
        .iter()
        .map(|i| i["totals"]["packets"].as_u64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    let during = counts.windows(2).filter(|w| w[0] < w[1]).count();
    assert!(
        during >= 3,
        "intervals that saw the flood arrive: {counts:?}"
    );
    // Every packet the kernel passed is either analysed or counted as dropped.
    let live = &report["live"];
    let received = live["received"].as_u64().unwrap();
    let packets = report["totals"]["packets"].as_u64().unwrap();
    let dropped = live["dropped_kernel"].as_u64().unwrap();
    eprintln!(
        "flood: received {received}, analysed {packets}, kernel drops {dropped}, queue drops {}, peak RSS {} MiB",
        live["dropped_queue"],
        hwm_kib / 1024
    );
    assert_eq!(received, 400_000, "the kernel saw every packet sent");
    assert_eq!(packets + dropped, received);
    assert!(live["dropped_queue"].as_u64().unwrap() <= packets);
    // The flood overflowed the 100,000-flow cap: evictions counted, memory bounded.
    assert!(report["flows"]["evicted"].as_u64().unwrap() > 0);
    assert!(hwm_kib < 256 * 1024, "peak RSS {hwm_kib} KiB");
    assert!(
        !report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "port-scan" || f["kind"] == "host-sweep"),
        "{}",
        report["findings"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// NDJSON lines of a finished capture: the intervals, and the report last.
fn intervals_and_report(out: &str) -> (Vec<Value>, Value) {
    let mut lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let report = lines.pop().expect("a report");
    assert_eq!(report["schema"], "portflow.report/1");
    assert!(lines.iter().all(|i| i["schema"] == "portflow.interval/1"));
    (lines, report)
}

#[test]
fn not_on_a_terminal_the_stream_is_ndjson_and_rows_match_the_header_needs_root() {
    require_root!();
    // No --format: stdout is a pipe here.
    let (code, out) = capture_http_on_lo(&["--interval", "200ms", "-d", "2s"], |h| {
        for _ in 0..4 {
            h.get(1);
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    assert_eq!(code, Some(0));
    let (intervals, report) = intervals_and_report(&out);
    assert!(intervals.len() >= 5, "{} intervals", intervals.len());
    // Every packet is on the one port: in each interval its row counts what
    // the header counts, at the same moment.
    for i in &intervals {
        let rows: u64 = i["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["packets"].as_u64().unwrap())
            .sum();
        assert_eq!(rows, i["totals"]["packets"].as_u64().unwrap(), "{i}");
        assert_eq!(i["loopback"], true);
    }
    // The last interval is the report's moment.
    let last = intervals.last().unwrap();
    assert_eq!(last["totals"]["packets"], report["totals"]["packets"]);
    assert_eq!(last["ports"][0]["packets"], report["ports"][0]["packets"]);
    assert_eq!(last["ports"][0]["flows"], report["ports"][0]["flows"]);
    assert_eq!(report["live"]["loopback"], true);
    // Loopback: the kernel counted each packet twice.
    assert_eq!(
        report["live"]["received"].as_u64().unwrap(),
        2 * report["totals"]["packets"].as_u64().unwrap()
    );
}

#[test]
fn format_table_gives_the_table_alone_with_the_loopback_note_needs_root() {
    require_root!();
    let (code, out) = capture_http_on_lo(&["--format", "table", "-d", "1s"], |h| h.get(1));
    assert_eq!(code, Some(0));
    assert!(
        !out.lines().any(|l| l.starts_with('{')),
        "no JSON in a table stream: {out}"
    );
    assert!(out.starts_with("portflow "), "{out}");
    let capture = out
        .lines()
        .find(|l| l.starts_with("capture on lo"))
        .expect("the capture line");
    assert!(
        capture.contains("(loopback: the kernel counts each packet going out and coming in)"),
        "{capture}"
    );
}

#[test]
fn w_to_dev_null_stays_a_device_needs_root() {
    use std::os::unix::fs::FileTypeExt;
    require_root!();
    let (code, out) =
        capture_http_on_lo(&["-w", "/dev/null", "-c", "5", "--format", "json"], |h| {
            h.get(2)
        });
    assert_eq!(code, Some(0));
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["live"]["written"], "/dev/null");
    assert_eq!(r["live"]["written_packets"], 5);
    let m = std::fs::symlink_metadata("/dev/null").unwrap();
    assert!(m.file_type().is_char_device(), "/dev/null was replaced");
}

/// A Prometheus server inside namespace `ns` scraping 127.0.0.1:`target`
/// every second, answering queries on 127.0.0.1:9090 there; stopped and its
/// files removed on drop.
struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
    ns: String,
}

impl Prometheus {
    fn start(ns: &str, target: u16) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("portflow-prom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
                 - job_name: portflow\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "prometheus"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:9090")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (make test installs it)");
        Prometheus {
            child,
            dir,
            ns: ns.to_string(),
        }
    }

    /// The result of an instant query: (labels, value) per series.
    fn query(&self, q: &str) -> Vec<(Value, f64)> {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns, "curl", "-s", "-G"])
            .arg("http://127.0.0.1:9090/api/v1/query")
            .args(["--data-urlencode", &format!("query={q}")])
            .output()
            .expect("curl");
        let Ok(v) = serde_json::from_slice::<Value>(&o.stdout) else {
            return Vec::new(); // not up yet
        };
        v["data"]["result"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|s| {
                        let value = s["value"][1].as_str().unwrap().parse().unwrap();
                        (s["metric"].clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Prometheus {
    /// The value of `q` (one series) once three answers in a row agree and
    /// it is above 0: Prometheus has scraped everything at least twice.
    fn steady(&self, q: &str) -> f64 {
        let started = Instant::now();
        let mut last = (-1.0, 0);
        loop {
            let v = self.query(q).first().map_or(-1.0, |s| s.1);
            last = if v == last.0 && v > 0.0 {
                (v, last.1 + 1)
            } else {
                (v, 0)
            };
            if last.1 >= 2 {
                return v;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no steady answer: {v}"
            );
            std::thread::sleep(Duration::from_millis(700));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `promtool check metrics` on what 127.0.0.1:`port`/metrics serves in `ns`.
fn promtool_accepts(ns: &str, port: u16) {
    let scrape = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-s"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .output()
        .unwrap();
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), &scrape.stdout).unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

/// The report's per-port packets keyed as the scrape has them: a port
/// without a series of its own in `scraped` under (proto, "other").
fn folded(
    ports: &[Value],
    scraped: &BTreeMap<(String, String), u64>,
) -> BTreeMap<(String, String), u64> {
    let mut expected = BTreeMap::new();
    for p in ports {
        let proto = p["proto"].as_str().unwrap().to_string();
        let port = p["port"].to_string();
        let key = if scraped.contains_key(&(proto.clone(), port.clone())) {
            (proto, port)
        } else {
            (proto, "other".to_string())
        };
        *expected.entry(key).or_default() += p["packets"].as_u64().unwrap();
    }
    expected
}

#[test]
fn prometheus_scrapes_the_reports_numbers_needs_root() {
    require_root!();
    require!(tool("prometheus"), "prometheus is not installed");
    let fixture = fixture("generated/scan.pcap");
    let ns = Netns::new("m");
    sh(&format!("ip netns exec {} ip link set lo up", ns.b));
    let cap = start_capture(
        Some(&ns.b),
        &[
            &ns.veth(&ns.b),
            "--metrics",
            "9717",
            "--metrics-top",
            "20",
            "--interval",
            "200ms",
            "--format",
            "json",
            "-d",
            "60s",
        ],
    );
    promtool_accepts(&ns.b, 9717);
    let prom = Prometheus::start(&ns.b, 9717);
    ns.replay(&fixture, &["--pps", "2000"]);
    let steady = prom.steady("sum(portflow_port_packets_total)");
    let per_port = prom.query("sum by (proto, port) (portflow_port_packets_total)");
    let bytes = prom.query("sum(portflow_port_bytes_total)");
    sigint(&cap);
    let (code, out) = finish(cap, Duration::from_secs(20));
    assert_eq!(code, Some(0));
    let report: Value = serde_json::from_str(&out).unwrap();
    let ports = report["ports"].as_array().unwrap();
    let packets: u64 = ports.iter().map(|p| p["packets"].as_u64().unwrap()).sum();
    let byte_sum: u64 = ports.iter().map(|p| p["bytes"].as_u64().unwrap()).sum();
    assert_eq!(steady as u64, packets, "sum(portflow_port_packets_total)");
    assert_eq!(
        bytes[0].1 as u64, byte_sum,
        "sum(portflow_port_bytes_total)"
    );
    // Per port: the 20 busiest have series of their own, the rest is
    // "other" per transport; both add up to the report's rows.
    let scraped: BTreeMap<(String, String), u64> = per_port
        .iter()
        .map(|(labels, v)| {
            let label = |k: &str| labels[k].as_str().unwrap().to_string();
            ((label("proto"), label("port")), *v as u64)
        })
        .collect();
    assert_eq!(scraped, folded(ports, &scraped));
    let own = scraped.keys().filter(|(_, p)| p != "other").count();
    assert_eq!(own, 20, "--metrics-top 20 ports have series of their own");
    assert!(ports.len() > 20, "the fixture has more ports than that");
}

/// A policy file's lines without comments (what it allows, not its evidence).
fn policy_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The `--events` lines in `path` so far (whole lines only).
fn event_lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    whole
        .lines()
        .map(|l| serde_json::from_str(l).expect("an NDJSON line"))
        .collect()
}

/// What makes each finding itself, at its severity, sorted.
fn identities(findings: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} {} {}",
                f["kind"], f["severity"], f["proto"], f["host"], f["port"], f["src"]
            )
        })
        .collect();
    v.sort();
    v
}

/// `sum(portflow_findings_total)` on the capture's endpoint.
fn findings_scraped(ns: &str, port: u16) -> u64 {
    let scrape = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-s"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&scrape.stdout)
        .lines()
        .filter(|l| l.starts_with("portflow_findings_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum()
}

#[test]
fn events_stream_findings_while_the_capture_runs_needs_root() {
    require_root!();
    require!(tool("curl"), "curl is not installed");
    let fixture = fixture("generated/scan.pcap");
    let offline = json_report(&[&fixture], &[]);
    let expected = offline["findings"].as_array().unwrap().len();
    assert!(expected >= 3, "the fixture's scan, sweep and probes");
    let ns = Netns::new("e");
    sh(&format!("ip netns exec {} ip link set lo up", ns.b));
    let dir = output_dir("events");
    let events = dir.join("events.ndjson");
    let cap = start_capture(
        Some(&ns.b),
        &[
            &ns.veth(&ns.b),
            "--events",
            events.to_str().unwrap(),
            "--metrics",
            "9718",
            "--workers",
            "2",
            "--tcp-timeout",
            "2s",
            "--udp-timeout",
            "2s",
            "--interval",
            "200ms",
            "--format",
            "json",
            "-d",
            "60s",
        ],
    );
    ns.replay(&fixture, &["--pps", "2000"]);
    // Every flow ends within 5 s (a closed connection's timeout), and its
    // findings are raised within a second of that, while the capture runs.
    let started = Instant::now();
    let mut live = event_lines(&events);
    while live.len() < expected && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
        live = event_lines(&events);
    }
    assert_eq!(live.len(), expected, "raised while capturing: {live:?}");
    assert_eq!(findings_scraped(&ns.b, 9718), expected as u64);
    sigint(&cap);
    let (code, out) = finish(cap, Duration::from_secs(20));
    assert_eq!(code, Some(0));
    let report: Value = serde_json::from_str(&out).unwrap();
    let all = event_lines(&events);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(all, live, "nothing was left to raise at the stop");
    for e in &all {
        assert_eq!(e["event"], "finding");
        assert!(e["raised"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(
        identities(&all),
        identities(report["findings"].as_array().unwrap()),
        "the report's findings, each raised once"
    );
    let kinds = |r: &Value| -> Vec<String> {
        let mut k: Vec<String> = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].to_string())
            .collect();
        k.sort();
        k
    };
    assert_eq!(kinds(&report), kinds(&offline), "as reading the file finds");
}

#[test]
fn w_rotates_by_size_into_whole_files_needs_root() {
    require_root!();
    // 40,000 SYNs of 54 bytes: about 2.8 MB of records, three -C 1 files.
    let dir = output_dir("rotate");
    let flood = dir.join("syns.pcap");
    syn_flood_file(&flood, 5, 40_000);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let ns = Netns::new("w");
    let cap = start_capture(
        Some(&ns.b),
        &[
            &ns.veth(&ns.b),
            "-f",
            "tcp",
            "-c",
            "40000",
            "-d",
            "30s",
            "-w",
            out.join("ev.pcap").to_str().unwrap(),
            "-C",
            "1",
            "--format",
            "json",
        ],
    );
    ns.replay(&flood, &["--pps", "100000"]);
    let (code, report) = finish(cap, Duration::from_secs(40));
    assert_eq!(code, Some(0));
    let r: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(r["live"]["written_packets"], 40_000);
    let files = r["live"]["written_files"].as_u64().unwrap();
    assert!(files >= 3, "{files} files");
    let mut total = 0;
    for i in 0..files {
        let name = if i == 0 {
            "ev.pcap".to_string()
        } else {
            format!("ev.pcap{i}")
        };
        let path = out.join(&name);
        assert!(
            std::fs::metadata(&path).unwrap().len() <= 1_000_000,
            "{name}"
        );
        // Each file whole on its own: capinfos reads it to the end.
        let ci = Command::new("capinfos")
            .args(["-c", "-M"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            ci.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&ci.stderr)
        );
        let n: u64 = String::from_utf8_lossy(&ci.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Number of packets:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        total += n;
    }
    assert_eq!(total, 40_000);
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count() as u64,
        files,
        "no temporary left"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn several_interfaces_in_one_report_needs_root() {
    require_root!();
    let ns = Netns::new("i");
    // A second veth pair between the same namespaces.
    let id = ns.a[3..].to_string();
    let (vc, vd) = (format!("vc{id}"), format!("vd{id}"));
    sh(&format!(
        "ip link add {vc} netns {} type veth peer name {vd} netns {}",
        ns.a, ns.b
    ));
    sh(&format!("ip netns exec {} ip link set {vc} up", ns.a));
    sh(&format!("ip netns exec {} ip link set {vd} up", ns.b));
    let (eth, scan) = (
        fixture("generated/eth.pcap"),
        fixture("generated/scan.pcap"),
    );
    let expected = json_report(&[&eth, &scan], &[]);
    let n = expected["totals"]["packets"].as_u64().unwrap();
    let cap = start_capture(
        Some(&ns.b),
        &[
            "-i",
            &ns.veth(&ns.b),
            "-i",
            &vd,
            "-c",
            &n.to_string(),
            "-d",
            "30s",
            "--format",
            "json",
        ],
    );
    ns.replay(&eth, &["--pps", "2000"]);
    let st = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.a,
            "tcpreplay",
            "-q",
            "-i",
            &vc,
            "--pps",
            "2000",
        ])
        .arg(&scan)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let (code, out) = finish(cap, Duration::from_secs(40));
    assert_eq!(code, Some(0));
    let got: Value = serde_json::from_str(&out).unwrap();
    let fields = ["packets", "bytes", "to_server.packets", "to_client.packets"];
    assert_eq!(port_fields(&got, &fields), port_fields(&expected, &fields));
    let live = &got["live"];
    assert_eq!(live["interface"], format!("{},{vd}", ns.veth(&ns.b)));
    let each: Vec<(String, u64)> = live["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["packets"].as_u64().unwrap(),
            )
        })
        .collect();
    let count = |f: &std::path::Path| {
        json_report(&[f], &[])["totals"]["packets"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(each, [(ns.veth(&ns.b), count(&eth)), (vd, count(&scan))]);
}

#[test]
fn nano_writes_nanosecond_times_needs_root() {
    require_root!();
    let dir = output_dir("nano");
    let pcap = dir.join("n.pcap");
    let to = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = to.local_addr().unwrap().port();
    let cap = start_capture(
        None,
        &[
            "lo",
            "-f",
            &format!("udp dst port {port}"),
            "--nano",
            "-w",
            pcap.to_str().unwrap(),
            "-c",
            "20",
            "--format",
            "json",
        ],
    );
    let from = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..20u8 {
        from.send_to(&[i; 20], ("127.0.0.1", port)).unwrap();
    }
    let (code, _) = finish(cap, Duration::from_secs(10));
    assert_eq!(code, Some(0));
    let bytes = std::fs::read(&pcap).unwrap();
    assert_eq!(
        &bytes[..4],
        &0xa1b2_3c4du32.to_le_bytes(),
        "the nanosecond magic"
    );
    let times = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&pcap)
        .args(["-T", "fields", "-e", "frame.time_epoch"])
        .output()
        .expect("tshark");
    let ns: Vec<u64> = String::from_utf8_lossy(&times.stdout)
        .lines()
        .map(|l| l.split('.').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(ns.len(), 20);
    // Microsecond times would all end in 000.
    assert!(ns.iter().any(|n| n % 1000 != 0), "{ns:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = json_report(&[&pcap], &[]);
    let first: u64 = r["capture"]["first_seen"].as_str().unwrap()[..4]
        .parse()
        .unwrap();
    assert!(
        (1970 + now / 31_556_952).abs_diff(first) <= 1,
        "times are now's"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
