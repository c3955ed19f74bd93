//! Output paths (`-o`): what is at the path decides how it is written. A new
//! path or a regular file is replaced whole (temporary + rename), a symlink's
//! target is replaced and the link stays, a device or FIFO is written in place,
//! and a signal never leaves a temporary behind. (`-w` of `capture`:
//! tests/capture.rs.)
mod support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::*;

fn eth() -> String {
    fixture("generated/eth.pcap").display().to_string()
}

/// A fresh empty folder for one test.
fn folder(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("portflow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn read_to(dest: &str) -> std::process::Output {
    run(&["read", "-q", "--format", "json", "-o", dest, &eth()])
}

#[test]
fn dev_null_stays_a_device() {
    let o = read_to("/dev/null");
    assert!(o.status.success(), "{}", stderr(&o));
    let m = std::fs::symlink_metadata("/dev/null").unwrap();
    assert!(
        m.file_type().is_char_device(),
        "/dev/null is no longer a device"
    );
    assert_eq!(m.permissions().mode() & 0o777, 0o666);
}

#[test]
fn dev_stdout_writes_to_standard_output_and_stays_a_link() {
    let o = read_to("/dev/stdout");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("the report on stdout");
    assert_eq!(v["totals"]["packets"], 38);
    assert!(std::fs::symlink_metadata("/dev/stdout")
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_fifo_is_written_in_place() {
    let dir = folder("fifo");
    let fifo = dir.join("report.fifo");
    let c = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let o = read_to(&fifo.display().to_string());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&reader.join().unwrap()).unwrap();
    assert_eq!(v["totals"]["packets"], 38);
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(names(&dir), ["report.fifo"], "nothing else made beside it");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_symlink_keeps_being_a_link_and_its_target_is_replaced() {
    let dir = folder("link");
    let target = dir.join("real.json");
    std::fs::write(&target, "old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.join("link.json");
    std::os::unix::fs::symlink("real.json", &link).unwrap();
    let o = read_to(&link.display().to_string());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("real.json"),
        "the link is unchanged"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    assert_eq!(v["totals"]["packets"], 38);
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640, "the replaced file keeps its mode");
    assert_eq!(names(&dir), ["link.json", "real.json"], "no temporary left");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_folder_is_refused_by_name() {
    let dir = folder("isdir");
    let o = read_to(&dir.display().to_string());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&dir.display().to_string()),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("folder"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `read - -o out.txt` waiting on its input gets `sig`: it dies of the
/// signal, and leaves nothing in the folder.
fn signal_leaves_nothing(sig: i32, name: &str) {
    let dir = folder(name);
    let dest = dir.join("out.txt");
    let mut child = portflow()
        .args(["read", "-q", "-o", &dest.display().to_string(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The temporary exists before any input is read.
    let start = Instant::now();
    while !names(&dir).iter().any(|n| n.starts_with(".out.txt.tmp-")) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no temporary made: {:?}",
            names(&dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Its input stays open until it has died: `Child::wait` closes the
    // child's stdin first, and a child that read the end of its input before
    // its signal thread ran would end on that instead.
    let input = child.stdin.take();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    let status = child.wait().unwrap();
    drop(input);
    let mut said = String::new();
    let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut said);
    assert_eq!(
        status.signal(),
        Some(sig),
        "dies of the signal: {status:?}: {said}"
    );
    assert!(names(&dir).is_empty(), "left behind: {:?}", names(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctrl_c_leaves_no_temporary() {
    signal_leaves_nothing(libc::SIGINT, "sigint");
}

#[test]
fn sigterm_leaves_no_temporary() {
    signal_leaves_nothing(libc::SIGTERM, "sigterm");
}

#[test]
fn sighup_leaves_no_temporary() {
    signal_leaves_nothing(libc::SIGHUP, "sighup");
}
