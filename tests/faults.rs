//! Output faults: a disk that fills while a report or a `-w` pcap is written,
//! and an output path that cannot be written. A clear error naming the file,
//! a non-zero exit, nothing half-written under the name asked for, and for
//! `-w` the whole packets written so far kept readable. The disk is a small
//! tmpfs each test mounts and unmounts (also on failure), so the tests that
//! fill it need root (CI runs as root); elsewhere they say so and return.
mod support;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Exit status 2 and one line on stderr that names `path` and says `what`.
fn one_line_error(o: &std::process::Output, path: &Path, what: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with(&format!("portflow: {}: ", path.display())),
        "{e}"
    );
    assert!(e.contains(what), "{e}");
}

/// A tmpfs of `size` mounted on a fresh folder (mode 1777: a capture writes as
/// the user it switched to), unmounted and removed on drop.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn new(tag: &str, size: &str) -> SmallDisk {
        let dir = std::env::temp_dir().join(format!("portflow-disk-{tag}-{}", std::process::id()));
        let _ = Command::new("umount").arg(&dir).status();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=1777"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .expect("mount");
        assert!(st.success(), "mount tmpfs on {}", dir.display());
        SmallDisk { dir }
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn report_on_a_full_disk_is_a_clear_error_and_leaves_nothing_needs_root() {
    require!(is_root(), "mounting a small tmpfs needs root");
    // The JSON report of the scan fixture (87 KB) to `dest`.
    let report_to = |dest: &Path| {
        let input = fixture("generated/scan.pcap");
        let args = ["read", "-q", "--format", "json", "-o"];
        portflow().args(args).arg(dest).arg(input).output().unwrap()
    };
    let disk = SmallDisk::new("report", "16k");
    let dest = disk.dir.join("report.json");
    let o = report_to(&dest);
    one_line_error(&o, &dest, "No space left on device");
    assert!(
        disk.entries().is_empty(),
        "neither the report nor its temporary file: {:?}",
        disk.entries()
    );
    // The same report fits a larger disk, so the failure above was the disk.
    let big = SmallDisk::new("report-big", "4m");
    let dest = big.dir.join("report.json");
    let o = report_to(&dest);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::metadata(&dest).unwrap().len() > 16 * 1024);
}

#[test]
fn pcap_on_a_full_disk_keeps_every_whole_packet_needs_root() {
    require!(is_root(), "capturing and mounting a tmpfs need root");
    let disk = SmallDisk::new("pcap", "256k");
    let dest = disk.dir.join("evidence.pcap");
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let mut child = portflow()
        .args(["capture", "lo", "-f", &format!("udp dst port {port}"), "-w"])
        .arg(&dest)
        .args(["-d", "20s", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening on lo"), "{line}");
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    // 2 MB of datagrams: far more than the disk holds. Keep sending until the
    // capture gives up on the full disk.
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload = vec![0x5a; 1000];
    let started = Instant::now();
    let status = loop {
        for _ in 0..100 {
            let _ = sender.send_to(&payload, ("127.0.0.1", port));
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the capture did not stop on the full disk"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let e = rest.join().unwrap();
    assert_eq!(status.code(), Some(2), "{e}");
    assert!(
        e.contains(&format!(
            "stopped: {}: No space left on device",
            dest.display()
        )),
        "{e}"
    );
    let r: Value = serde_json::from_str(&out).expect("the final report still comes");
    assert_eq!(r["live"]["stopped_by"]["reason"], "write-error");
    let kept = r["live"]["written_packets"].as_u64().unwrap();
    assert!(kept > 100, "{kept} packets kept");
    assert_eq!(r["live"]["written"], dest.to_str().unwrap());
    assert!(e.contains(&format!("holds the {kept} packets")), "{e}");
    assert_eq!(disk.entries(), vec!["evidence.pcap".to_string()]);
    // Readable to the end by portflow and by capinfos, with the count reported.
    let back = json_report(&[Path::new(&dest)], &[]);
    assert_eq!(back["totals"]["packets"].as_u64(), Some(kept));
    let ci = Command::new("capinfos")
        .args(["-c", "-M"])
        .arg(&dest)
        .output()
        .expect("capinfos");
    let text = String::from_utf8_lossy(&ci.stdout);
    assert!(
        text.contains(&format!("Number of packets:   {kept}")),
        "{text}"
    );
}

#[test]
fn unwritable_output_is_refused_before_any_reading() {
    let missing = std::env::temp_dir().join("portflow-no-such-dir/sub/report.json");
    let started = Instant::now();
    let o = run(&[
        "read",
        "-o",
        missing.to_str().unwrap(),
        fixture("generated/eth.pcap").to_str().unwrap(),
    ]);
    one_line_error(&o, &missing, "No such file or directory");
    assert!(started.elapsed() < Duration::from_secs(5));
}
