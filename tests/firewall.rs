//! `portflow firewall` for real: the rules it writes for a server are loaded
//! with `nft -f` and with `iptables-restore`/`ip6tables-restore` in a test
//! namespace; from the client namespace every allowed port connects
//! (socat), nmap finds exactly the allowed ports open and the rest
//! filtered, and a capture of the run read back with `--policy` finds no
//! unexpected port. Namespaces are the tests' own, removed on drop.
mod support;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::netns::{sh, Netns};
use support::*;

macro_rules! require_root_and_tools {
    () => {
        require!(
            is_root(),
            "this test makes network namespaces and needs root"
        );
        for t in ["nft", "iptables-restore", "socat", "nmap", "tcpdump"] {
            require!(
                Command::new(t).arg("--version").output().is_ok()
                    || Command::new(t).arg("-V").output().is_ok(),
                &format!("{t} is not installed (scripts/setup-debian.sh test)")
            );
        }
    };
}

const SERVER: &str = "10.77.0.2";
const SERVER6: &str = "fd77::2";

/// The policy of the tests: the server serves tcp 22 and 8080 and udp 5353;
/// it also listens on tcp 9090 and udp 5454, which the policy does not allow.
const POLICY: &str = "[[hosts]]\nmatch = \"10.77.0.2\"\ntcp = [22, 8080]\nudp = [5353]\n\n[[hosts]]\nmatch = \"fd77::2\"\ntcp = [22, 8080]\nudp = [5353]\n";

fn folder(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("portflow-fw-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The test's network and the server's listeners (stopped and waited for on drop).
struct Network {
    ns: Netns,
    listeners: Vec<Child>,
}

impl Drop for Network {
    fn drop(&mut self) {
        for l in &mut self.listeners {
            let _ = l.kill();
            let _ = l.wait();
        }
    }
}

/// A client (a, 10.77.0.1, fd77::1) and a server (b) namespace, the server
/// listening on every port of the test.
fn network(tag: &str) -> Network {
    let ns = Netns::dual_stack(tag);
    for (n, last) in [(&ns.a, 1), (&ns.b, 2)] {
        let dev = ns.veth(n);
        sh(&format!("ip netns exec {n} ip link set lo up"));
        sh(&format!(
            "ip netns exec {n} ip addr add 10.77.0.{last}/24 dev {dev}"
        ));
        sh(&format!(
            "ip netns exec {n} ip addr add fd77::{last}/64 dev {dev} nodad"
        ));
    }
    let listeners = [
        "TCP6-LISTEN:22,ipv6only=0,fork,reuseaddr",
        "TCP6-LISTEN:8080,ipv6only=0,fork,reuseaddr",
        "TCP6-LISTEN:9090,ipv6only=0,fork,reuseaddr",
        "UDP6-RECVFROM:5353,ipv6only=0,fork",
        "UDP6-RECVFROM:5454,ipv6only=0,fork",
    ]
    .map(|listen| {
        Command::new("ip")
            .args(["netns", "exec", &ns.b, "socat", listen, "SYSTEM:echo ok"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat")
    });
    // Every listener is up before the test goes on.
    let started = std::time::Instant::now();
    loop {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns.b, "ss", "-Hltun"])
            .output()
            .expect("ss");
        let listening = String::from_utf8_lossy(&o.stdout).into_owned();
        let up = [":22 ", ":8080 ", ":9090 ", ":5353 ", ":5454 "]
            .iter()
            .all(|p| listening.contains(p));
        if up {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "listeners did not start: {listening}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Network {
        ns,
        listeners: listeners.into(),
    }
}

/// Whether `addr` answers "ok" on `proto`/`port` from the client namespace,
/// trying three times (a first IPv6 contact waits for neighbour discovery,
/// and a loaded machine is slow): an allowed port answers one of them, a
/// dropped one none.
fn answers(ns: &Netns, proto: &str, addr: &str, port: u16) -> bool {
    (0..3).any(|_| answers_once(ns, proto, addr, port))
}

fn answers_once(ns: &Netns, proto: &str, addr: &str, port: u16) -> bool {
    let target = if addr.contains(':') {
        format!("{proto}6:[{addr}]:{port}")
    } else {
        format!("{proto}4:{addr}:{port}")
    };
    let target = if proto == "TCP" {
        format!("{target},connect-timeout=2")
    } else {
        target
    };
    let o = Command::new("ip")
        .args([
            "netns", "exec", &ns.a, "timeout", "5", "socat", "-T2", "-", &target,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let _ = c.stdin.take().unwrap().write_all(b"hello\n");
            c.wait_with_output()
        })
        .expect("socat client");
    String::from_utf8_lossy(&o.stdout).contains("ok")
}

/// nmap's view of the server's TCP ports from the client: (port, state).
fn nmap(ns: &Netns, addr: &str) -> Vec<(u16, String)> {
    let mut args = vec![
        "netns",
        "exec",
        &ns.a,
        "nmap",
        "-n",
        "-Pn",
        "-sS",
        "--max-retries",
        "1",
        "--max-rtt-timeout",
        "300ms",
        "-p",
        "21-23,8079-8081,9090",
        "-oG",
        "-",
    ];
    if addr.contains(':') {
        args.push("-6");
    }
    args.push(addr);
    let o = Command::new("ip").args(&args).output().expect("nmap");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let ports = text
        .lines()
        .find_map(|l| l.split("Ports: ").nth(1))
        .unwrap_or_else(|| panic!("nmap said: {text}"));
    let mut out: Vec<(u16, String)> = ports
        .split(", ")
        .map(|p| {
            let f: Vec<&str> = p.split('/').collect();
            (f[0].trim().parse().unwrap(), f[1].to_string())
        })
        .collect();
    // Ports nmap left out of the list ("Ignored State") share one state.
    if let Some(ignored) = text.split("Ignored State: ").nth(1) {
        let state = ignored.split_whitespace().next().unwrap().to_string();
        for p in [21, 22, 23, 8079, 8080, 8081, 9090] {
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, state.clone()));
            }
        }
    }
    out.sort();
    out
}

/// `portflow firewall POLICY ARGS` into a file.
fn rules(policy: &Path, args: &[&str], out: &Path) {
    let mut all = vec!["firewall", policy.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend(["-o", out.to_str().unwrap()]);
    let o = run(&all);
    assert!(o.status.success(), "{all:?}: {}", stderr(&o));
}

/// tcpdump on the server's side of the veth, written to `file`.
fn record(ns: &Netns, file: &Path) -> Child {
    let c = Command::new("ip")
        .args(["netns", "exec", &ns.b, "tcpdump", "-U", "-n", "-i"])
        .arg(ns.veth(&ns.b))
        .args(["-w", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(800));
    c
}

/// Everything the tests check once the rules are loaded.
fn check_enforced(ns: &Netns, policy: &Path, pcap: &Path, tcpdump: Child) {
    for addr in [SERVER, SERVER6] {
        assert!(answers(ns, "TCP", addr, 22), "tcp/22 on {addr}");
        assert!(answers(ns, "TCP", addr, 8080), "tcp/8080 on {addr}");
        assert!(answers(ns, "UDP", addr, 5353), "udp/5353 on {addr}");
        assert!(
            !answers_once(ns, "TCP", addr, 9090),
            "tcp/9090 on {addr} is dropped"
        );
        assert!(
            !answers_once(ns, "UDP", addr, 5454),
            "udp/5454 on {addr} is dropped"
        );
        let seen = nmap(ns, addr);
        let open: Vec<u16> = seen
            .iter()
            .filter(|(_, s)| s == "open")
            .map(|p| p.0)
            .collect();
        assert_eq!(open, [22, 8080], "{addr}: {seen:?}");
        assert!(
            seen.iter()
                .filter(|(_, s)| s != "open")
                .all(|(_, s)| s == "filtered"),
            "{addr}: the rest is filtered, not closed: {seen:?}"
        );
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(tcpdump.id() as i32, libc::SIGINT) };
    let _ = tcpdump.wait_with_output();
    let report: Value = json_report(&[pcap], &["--policy", policy.to_str().unwrap()]);
    let unexpected: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "unexpected-port")
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let open: Vec<String> = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(host_port)
        .collect();
    for s in ["10.77.0.2 tcp/22", "10.77.0.2 tcp/8080", "fd77::2 tcp/8080"] {
        assert!(open.iter().any(|o| o == s), "{s} seen serving: {open:?}");
    }
}

#[test]
fn nftables_rules_let_exactly_the_policy_in_needs_root() {
    require_root_and_tools!();
    let dir = folder("nft");
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let net = network("fwn");
    let ns = &net.ns;
    // Before the rules, 9090 is open: the test can tell.
    assert!(answers(ns, "TCP", SERVER, 9090));
    let script = dir.join("rules.nft");
    rules(
        &policy,
        &["--host", SERVER, "--target", "nftables", "--log"],
        &script,
    );
    let pcap = dir.join("run.pcap");
    let tcpdump = record(ns, &pcap);
    sh(&format!(
        "ip netns exec {} nft -f {}",
        ns.b,
        script.display()
    ));
    // Loading twice replaces the table: the same rules, not two copies.
    sh(&format!(
        "ip netns exec {} nft -f {}",
        ns.b,
        script.display()
    ));
    check_enforced(ns, &policy, &pcap, tcpdump);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn iptables_rules_let_exactly_the_policy_in_needs_root() {
    require_root_and_tools!();
    let dir = folder("ipt");
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let net = network("fwi");
    let ns = &net.ns;
    let (v4, v6) = (dir.join("rules.v4"), dir.join("rules.v6"));
    rules(&policy, &["--host", SERVER, "--target", "iptables"], &v4);
    rules(&policy, &["--host", SERVER6, "--target", "ip6tables"], &v6);
    let pcap = dir.join("run.pcap");
    let tcpdump = record(ns, &pcap);
    sh(&format!(
        "ip netns exec {} iptables-restore < {}",
        ns.b,
        v4.display()
    ));
    sh(&format!(
        "ip netns exec {} ip6tables-restore < {}",
        ns.b,
        v6.display()
    ));
    check_enforced(ns, &policy, &pcap, tcpdump);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rules_are_the_same_for_the_same_policy_and_ssh_is_not_cut_silently() {
    let dir = folder("same");
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    for target in ["nftables", "iptables", "ip6tables"] {
        let (a, b) = (dir.join("a"), dir.join("b"));
        rules(&policy, &["--target", target], &a);
        rules(&policy, &["--target", target], &b);
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{target}"
        );
    }
    let no_ssh = dir.join("no-ssh.toml");
    std::fs::write(&no_ssh, "[[hosts]]\nmatch = \"10.0.0.0/8\"\ntcp = [443]\n").unwrap();
    let o = run(&["firewall", no_ssh.to_str().unwrap(), "--host", "10.1.2.3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("does not allow tcp/22 (ssh) to 10.1.2.3"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty(), "no rules when refused");
    let o = run(&[
        "firewall",
        no_ssh.to_str().unwrap(),
        "--host",
        "10.1.2.3",
        "--allow-lockout",
    ]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("warning: --allow-lockout"));
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[default]\ntcp = [\"90-80\"]\n").unwrap();
    let o = run(&["firewall", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("bad.toml:2:8: range '90-80' runs backwards"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A client, a gateway and a server namespace: client 10.78.1.2 —
/// 10.78.1.1 gateway 10.78.2.1 — 10.78.2.2 server, removed on drop.
struct Routed {
    names: [String; 3],
    listeners: Vec<Child>,
}

impl Routed {
    fn new(tag: &str) -> Routed {
        let id = format!("{tag}{}", std::process::id() % 100_000);
        let names = [format!("pfc{id}"), format!("pfg{id}"), format!("pfs{id}")];
        let r = Routed {
            names,
            listeners: Vec::new(),
        };
        r.cleanup();
        let [c, g, s] = &r.names;
        for ns in &r.names {
            sh(&format!("ip netns add {ns}"));
            sh(&format!("ip netns exec {ns} ip link set lo up"));
        }
        sh(&format!(
            "ip link add c{id} netns {c} type veth peer name gc{id} netns {g}"
        ));
        sh(&format!(
            "ip link add s{id} netns {s} type veth peer name gs{id} netns {g}"
        ));
        for (ns, dev, addr) in [
            (c, format!("c{id}"), "10.78.1.2/24"),
            (g, format!("gc{id}"), "10.78.1.1/24"),
            (g, format!("gs{id}"), "10.78.2.1/24"),
            (s, format!("s{id}"), "10.78.2.2/24"),
        ] {
            sh(&format!("ip netns exec {ns} ip addr add {addr} dev {dev}"));
            sh(&format!("ip netns exec {ns} ip link set {dev} up"));
        }
        sh(&format!(
            "ip netns exec {c} ip route add default via 10.78.1.1"
        ));
        sh(&format!(
            "ip netns exec {s} ip route add default via 10.78.2.1"
        ));
        sh(&format!(
            "ip netns exec {g} sysctl -qw net.ipv4.ip_forward=1"
        ));
        r
    }

    fn cleanup(&self) {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        support::netns::remove(&names);
    }
}

impl Drop for Routed {
    fn drop(&mut self) {
        for l in &mut self.listeners {
            let _ = l.kill();
            let _ = l.wait();
        }
        self.cleanup();
    }
}

/// Whether the server answers on tcp/`port` from the client, through the gateway.
fn through(r: &Routed, port: u16) -> bool {
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &r.names[0],
            "timeout",
            "5",
            "socat",
            "-T2",
            "-",
        ])
        .arg(format!("TCP4:10.78.2.2:{port},connect-timeout=2"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("socat client");
    String::from_utf8_lossy(&o.stdout).contains("ok")
}

#[test]
fn a_gateway_lets_through_what_the_most_specific_entry_allows_needs_root() {
    require_root_and_tools!();
    let dir = folder("gw");
    let policy = dir.join("policy.toml");
    // The network allows 9090; the server's own entry, more specific, allows
    // 22 and 8080 only.
    std::fs::write(
        &policy,
        "[[hosts]]\nmatch = \"10.78.2.0/24\"\ntcp = [9090]\n\n[[hosts]]\nmatch = \"10.78.2.2\"\ntcp = [22, 8080]\n",
    )
    .unwrap();
    for target in ["nftables", "iptables"] {
        let mut r = Routed::new(if target == "nftables" { "n" } else { "i" });
        for port in [22, 8080, 9090] {
            let l = Command::new("ip")
                .args(["netns", "exec", &r.names[2], "socat"])
                .arg(format!("TCP4-LISTEN:{port},fork,reuseaddr"))
                .arg("SYSTEM:echo ok")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("socat");
            r.listeners.push(l);
        }
        let started = std::time::Instant::now();
        while !(through(&r, 22) && through(&r, 8080) && through(&r, 9090)) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the route works before the rules"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let rules_file = dir.join(format!("forward.{target}"));
        rules(&policy, &["--target", target], &rules_file);
        let load = if target == "nftables" {
            "nft -f"
        } else {
            "iptables-restore <"
        };
        sh(&format!(
            "ip netns exec {} {load} {}",
            r.names[1],
            rules_file.display()
        ));
        assert!(through(&r, 22), "{target}: 22");
        assert!(through(&r, 8080), "{target}: 8080");
        assert!(
            !through(&r, 9090),
            "{target}: the server's own entry decides, not its network's"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
