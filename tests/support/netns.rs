//! Two network namespaces joined by a veth pair, made by a test and
//! removed when it ends (also on failure): the only places the tests send
//! traffic besides loopback.
use std::process::{Command, Stdio};

/// Kills what runs in the namespaces `names` and removes them (those that
/// exist).
pub fn remove(names: &[&str]) {
    for ns in names {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("for p in $(ip netns pids {ns} 2>/dev/null); do kill -9 $p; done; ip netns del {ns} 2>/dev/null"))
            .status();
    }
}

pub fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(st.success(), "failed: {cmd}");
}

/// Two namespaces joined by a veth pair, removed on drop (processes first).
pub struct Netns {
    pub a: String,
    pub b: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        Netns::make(tag, false)
    }

    /// The same with IPv6 on (addresses are the caller's).
    pub fn dual_stack(tag: &str) -> Netns {
        Netns::make(tag, true)
    }

    fn make(tag: &str, ipv6: bool) -> Netns {
        let id = format!("{}{}", tag, std::process::id() % 100_000);
        let n = Netns {
            a: format!("pfa{id}"),
            b: format!("pfb{id}"),
        };
        n.cleanup();
        let off = if ipv6 { 0 } else { 1 };
        for ns in [&n.a, &n.b] {
            sh(&format!("ip netns add {ns}"));
            sh(&format!(
                "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6={off} net.ipv6.conf.default.disable_ipv6={off}"
            ));
        }
        sh(&format!(
            "ip link add va{id} netns {} type veth peer name vb{id} netns {}",
            n.a, n.b
        ));
        sh(&format!("ip netns exec {} ip link set va{id} up", n.a));
        sh(&format!("ip netns exec {} ip link set vb{id} up", n.b));
        n
    }

    pub fn veth(&self, ns: &str) -> String {
        if ns == self.a {
            format!("va{}", &self.a[3..])
        } else {
            format!("vb{}", &self.b[3..])
        }
    }

    /// Replays `file` from namespace `a` into the veth at `rate` (tcpreplay flags).
    pub fn replay(&self, file: &std::path::Path, rate: &[&str]) {
        let st = Command::new("ip")
            .args(["netns", "exec", &self.a, "tcpreplay", "-q", "-i"])
            .arg(self.veth(&self.a))
            .args(rate)
            .arg(file)
            .stdout(Stdio::null())
            .status()
            .expect("tcpreplay");
        assert!(st.success(), "tcpreplay failed");
    }

    fn cleanup(&self) {
        remove(&[&self.a, &self.b]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.cleanup();
    }
}
