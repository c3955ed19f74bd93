//! `-w` rotation as tcpdump does it: `-C MB` starts a new file when the next
//! record would take the file past MB million bytes, `-G SECONDS` every
//! SECONDS of packet time (the name an strftime pattern, filled with the
//! file's start), `-W COUNT` keeps a ring of COUNT files.
//!
//! Names: with `-G`, the pattern filled in (and a number after it when `-C`
//! starts another file in the same period); with `-C` alone, the name, then
//! the name with 1, 2, 3... after it; with `-C` and `-W`, the name with
//! 0 to COUNT-1 after it, padded to one width, written over in turn. With
//! `-G` and `-W` the oldest file beyond COUNT is removed (tcpdump stops
//! instead; a sensor that runs for days wants the ring).
use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How `-w` files rotate (all off: one file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// `-C`: the most bytes of a file (whole records; at least one record).
    pub max_bytes: Option<u64>,
    /// `-G`: a new file every this much packet time.
    pub every: Option<Duration>,
    /// `-W`: how many files are kept.
    pub keep: Option<u32>,
}

impl Rotation {
    pub fn is_on(&self) -> bool {
        self.max_bytes.is_some() || self.every.is_some()
    }

    /// The name of file number `index` (0 for the first), which starts at
    /// `start_ns` and is the `in_period`th of its `-G` period.
    pub fn name(&self, base: &Path, index: u32, start_ns: u64, in_period: u32) -> PathBuf {
        let mut name = match self.every {
            Some(_) => strftime(base, start_ns),
            None => base.as_os_str().to_os_string(),
        };
        let number = match (self.every, self.keep) {
            (Some(_), _) => (in_period > 0).then_some(in_period),
            (None, Some(keep)) => {
                let width = (keep.max(1) - 1).to_string().len();
                name.push(format!("{:0width$}", index % keep.max(1)));
                None
            }
            (None, None) => (index > 0).then_some(index),
        };
        if let Some(n) = number {
            name.push(n.to_string());
        }
        PathBuf::from(name)
    }

    /// Whether finished files beyond `-W` are removed (rather than written
    /// over by name).
    pub fn removes_oldest(&self) -> bool {
        self.every.is_some() && self.keep.is_some()
    }
}

/// `pattern` filled in with the local time `at_ns` (strftime(3)).
fn strftime(pattern: &Path, at_ns: u64) -> OsString {
    let Ok(format) = CString::new(pattern.as_os_str().as_bytes()) else {
        return pattern.as_os_str().to_os_string();
    };
    let secs = (at_ns / 1_000_000_000) as libc::time_t;
    // SAFETY: localtime_r fills the zeroed struct from a valid time_t;
    // strftime writes at most `buf.len()` bytes into `buf` and returns how
    // many it wrote (0 when the result did not fit).
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return pattern.as_os_str().to_os_string();
        }
        let mut buf = vec![0u8; 4096];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm);
        if n == 0 {
            return pattern.as_os_str().to_os_string();
        }
        buf.truncate(n);
        OsString::from_vec(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_tcpdumps() {
        let base = Path::new("/tmp/ev.pcap");
        let size = Rotation {
            max_bytes: Some(1_000_000),
            ..Rotation::default()
        };
        let names: Vec<_> = (0..3).map(|i| size.name(base, i, 0, 0)).collect();
        assert_eq!(
            names,
            ["/tmp/ev.pcap", "/tmp/ev.pcap1", "/tmp/ev.pcap2"].map(PathBuf::from)
        );
        let ring = Rotation {
            keep: Some(12),
            ..size
        };
        assert_eq!(ring.name(base, 0, 0, 0), PathBuf::from("/tmp/ev.pcap00"));
        assert_eq!(ring.name(base, 13, 0, 0), PathBuf::from("/tmp/ev.pcap01"));
        assert!(!ring.removes_oldest());
        let timed = Rotation {
            every: Some(Duration::from_secs(60)),
            keep: Some(3),
            ..Rotation::default()
        };
        // UTC keeps the expected name fixed (nothing else in these tests
        // reads the local time).
        std::env::set_var("TZ", "UTC");
        let t = 1_700_000_000_000_000_000; // 2023-11-14 22:13:20 UTC
        let p = Path::new("/tmp/cap-%Y%m%d-%H%M%S.pcap");
        assert_eq!(
            timed.name(p, 0, t, 0),
            PathBuf::from("/tmp/cap-20231114-221320.pcap")
        );
        assert_eq!(
            timed.name(p, 5, t, 2),
            PathBuf::from("/tmp/cap-20231114-221320.pcap2")
        );
        assert!(timed.removes_oldest());
    }
}
