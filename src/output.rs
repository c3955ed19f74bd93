//! Files a user asked portflow to write (a report, a `-w` pcap): nothing half
//! written is ever left under the name, and nothing but a regular file is
//! ever replaced.
//!
//! Where the path leads decides how it is written:
//! - a regular file, or nothing yet: under a temporary name in the same
//!   folder (`.NAME.tmp-PID`), renamed into place only when complete (flushed
//!   and synced). A file replaced keeps its permission bits; one the user may
//!   not write is refused, as `> PATH` would be.
//! - a symbolic link: the same, at the file it leads to, so the link stays a
//!   link and its target is replaced whole.
//! - a device, a FIFO or a socket, or a path through `/proc` (`/dev/stdout`,
//!   `/dev/fd/N`): written in place, as `> PATH` would (`-o /dev/null` stays
//!   the device).
//!
//! Every temporary file is removed when its writer is dropped, on an error,
//! and by [`remove_unfinished`], which a program calls on its way out when a
//! signal ends it.
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// Temporary files not yet renamed into place or removed.
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every temporary file still being written. For a program ending on
/// a signal (the writers' destructors will not run).
pub fn remove_unfinished() {
    remove_listed(|_| true);
}

/// Removes the temporary files `pick` chooses.
fn remove_listed(pick: impl Fn(&Path) -> bool) {
    let mut list = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|p| {
        if pick(p) {
            let _ = std::fs::remove_file(p);
            return false;
        }
        true
    });
}

fn note_unfinished(p: &Path) {
    let mut list = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    list.push(p.to_path_buf());
}

fn forget_unfinished(p: &Path) {
    let mut list = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|q| q != p);
}

/// How a path is written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// To a temporary name beside `target`, renamed over it when complete.
    Replace { target: PathBuf },
    /// In place: a device, a FIFO, a socket, or a path through /proc.
    InPlace,
}

/// Whether `p` (made absolute) lies under /proc, whose links (`/dev/stdout`
/// leads to `/proc/self/fd/1`) name open files rather than places.
fn through_proc(p: &Path) -> bool {
    let mut c = p.components();
    c.next() == Some(Component::RootDir) && c.next() == Some(Component::Normal("proc".as_ref()))
}

/// Where `dest` leads and how to write it.
fn plan(dest: &Path) -> io::Result<Plan> {
    let mut at = dest.to_path_buf();
    // Symbolic links are followed one at a time (at most 40, as the kernel).
    for _ in 0..40 {
        if through_proc(&at) {
            return Ok(Plan::InPlace);
        }
        let meta = match std::fs::symlink_metadata(&at) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Plan::Replace { target: at });
            }
            Err(e) => return Err(e),
        };
        let t = meta.file_type();
        if t.is_symlink() {
            let link = std::fs::read_link(&at)?;
            at = match at.parent() {
                Some(dir) if link.is_relative() => dir.join(link),
                _ => link,
            };
        } else if t.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a folder"));
        } else if t.is_file() {
            return Ok(Plan::Replace { target: at });
        } else {
            // A FIFO, a device or a socket.
            return Ok(Plan::InPlace);
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Whether this process may write the existing file `p` (`access(W_OK)`).
fn writable(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access reads a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// A file being written: under a temporary name renamed to its own when
/// committed, or in place (see the module's documentation).
#[derive(Debug)]
pub struct OutputFile {
    file: File,
    /// The temporary name while there is one.
    tmp: Option<PathBuf>,
    /// Where a temporary file goes: the path, or the file its links lead to.
    target: PathBuf,
    /// The path as the user gave it, for messages.
    dest: PathBuf,
    /// A regular file (not a device or a FIFO): it can be cut back and synced.
    regular: bool,
}

impl OutputFile {
    /// Opens `dest` for writing as its kind asks: a temporary file beside the
    /// file it will replace or make, or the device or FIFO itself (which may
    /// wait for a reader, as `> FIFO` does).
    pub fn create(dest: &Path) -> io::Result<OutputFile> {
        let target = match plan(dest)? {
            Plan::InPlace => {
                let file = OpenOptions::new().write(true).truncate(true).open(dest)?;
                return OutputFile::in_place(file, dest);
            }
            Plan::Replace { target } => target,
        };
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
        let old = std::fs::metadata(&target).ok();
        if old.is_some() && !writable(&target) {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        let tmp = target.with_file_name(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        note_unfinished(&tmp);
        let made = File::create(&tmp).and_then(|f| {
            if let Some(m) = &old {
                let mode = m.permissions().mode() & 0o7777;
                f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            }
            Ok(f)
        });
        let file = match made {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                forget_unfinished(&tmp);
                return Err(e);
            }
        };
        Ok(OutputFile {
            file,
            tmp: Some(tmp),
            target,
            dest: dest.to_path_buf(),
            regular: true,
        })
    }

    /// Opens `dest`, a regular file or none yet, for writing in place,
    /// truncated: for a file that must be created now although it will be
    /// written later by a process that may not create files in its folder (a
    /// capture that gives up root). Nothing is renamed; what was written
    /// whole stays.
    pub fn create_in_place(dest: &Path) -> io::Result<OutputFile> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dest)?;
        OutputFile::in_place(file, dest)
    }

    /// `file`, opened at `dest` and written there.
    fn in_place(file: File, dest: &Path) -> io::Result<OutputFile> {
        let regular = file.metadata()?.is_file();
        Ok(OutputFile {
            file,
            tmp: None,
            target: dest.to_path_buf(),
            dest: dest.to_path_buf(),
            regular,
        })
    }

    /// Hands the file to user `uid` and group `gid` (a capture that creates
    /// it as root before running as that user).
    pub fn give_to(&self, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::fchown(&self.file, Some(uid), Some(gid))
    }

    /// The file as opened: write to it, or cut it back.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The name the user gave.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Whether the file is a regular file (not a device or a FIFO), which can
    /// be cut back.
    pub fn is_regular(&self) -> bool {
        self.regular
    }

    /// Syncs the file when it is a regular one (devices and FIFOs cannot be).
    fn sync_if_regular(&self) -> io::Result<()> {
        if self.regular {
            self.file.sync_all()?;
        }
        Ok(())
    }

    /// Syncs the file and renames it into place (written in place: syncs a
    /// regular file). On an error the temporary file is removed.
    pub fn commit(mut self) -> io::Result<()> {
        let Some(tmp) = self.tmp.clone() else {
            return self.sync_if_regular();
        };
        self.file.sync_all()?;
        std::fs::rename(&tmp, &self.target)?;
        forget_unfinished(&tmp);
        self.tmp = None;
        Ok(())
    }

    /// [`Self::commit`] for data that cannot be made again (captured
    /// packets): renamed into place even when the sync failed, and kept under
    /// the temporary name when the rename fails. Returns where the data is,
    /// and the first error.
    pub fn commit_or_keep(mut self) -> (PathBuf, Option<io::Error>) {
        let Some(tmp) = self.tmp.take() else {
            return (self.dest.clone(), self.sync_if_regular().err());
        };
        forget_unfinished(&tmp);
        let synced = self.file.sync_all().err();
        match std::fs::rename(&tmp, &self.target) {
            Ok(()) => (self.dest.clone(), synced),
            Err(e) => {
                let e = io::Error::new(
                    e.kind(),
                    format!(
                        "cannot rename {} to {}: {e}",
                        tmp.display(),
                        self.target.display()
                    ),
                );
                (tmp, synced.or(Some(e)))
            }
        }
    }
}

impl io::Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(&tmp);
            forget_unfinished(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn folder(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("portflow-out-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("readable")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_name_appears_only_when_committed_and_a_dropped_file_leaves_nothing() {
        let dir = folder("commit");
        let dest = dir.join("report.txt");
        let mut f = OutputFile::create(&dest).expect("created");
        f.file().write_all(b"done\n").expect("written");
        assert!(!dest.exists());
        f.commit().expect("committed");
        assert_eq!(std::fs::read(&dest).expect("there"), b"done\n");
        let mut g = OutputFile::create(&dest).expect("created");
        g.file().write_all(b"half").expect("written");
        drop(g);
        assert_eq!(names(&dir), ["report.txt"]);
        assert_eq!(std::fs::read(&dest).expect("kept"), b"done\n");
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn a_link_stays_a_link_and_its_target_is_replaced_whole() {
        let dir = folder("link");
        let real = dir.join("real.txt");
        std::fs::write(&real, b"old").expect("written");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).expect("mode");
        let inode = std::fs::metadata(&real).expect("there").ino();
        let link = dir.join("link.txt");
        std::os::unix::fs::symlink("real.txt", &link).expect("a link");
        let mut f = OutputFile::create(&link).expect("created");
        f.file().write_all(b"new").expect("written");
        assert_eq!(std::fs::read(&real).expect("there"), b"old", "not yet");
        f.commit().expect("committed");
        assert!(std::fs::symlink_metadata(&link)
            .expect("there")
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).expect("there"), b"new");
        let m = std::fs::metadata(&real).expect("there");
        assert_ne!(m.ino(), inode, "replaced by a rename");
        assert_eq!(m.permissions().mode() & 0o777, 0o640, "mode kept");
        assert_eq!(names(&dir), ["link.txt", "real.txt"]);
        // A link to nothing yet makes its target.
        std::fs::remove_file(&real).expect("removed");
        let mut f = OutputFile::create(&link).expect("created");
        f.file().write_all(b"made").expect("written");
        f.commit().expect("committed");
        assert_eq!(std::fs::read(&real).expect("made"), b"made");
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn devices_and_paths_through_proc_are_written_in_place() {
        assert_eq!(plan(Path::new("/dev/null")).expect("a plan"), Plan::InPlace);
        assert_eq!(
            plan(Path::new("/dev/stdout")).expect("a plan"),
            Plan::InPlace
        );
        assert_eq!(
            plan(Path::new("/proc/self/fd/2")).expect("a plan"),
            Plan::InPlace
        );
        let mut f = OutputFile::create(Path::new("/dev/null")).expect("opened");
        assert!(!f.is_regular());
        f.file().write_all(b"gone").expect("written");
        f.commit().expect("nothing to rename");
        let m = std::fs::symlink_metadata("/dev/null").expect("there");
        assert!(
            m.file_type().is_char_device(),
            "/dev/null is still the device"
        );
        let e = OutputFile::create(&std::env::temp_dir()).expect_err("a folder");
        assert_eq!(e.kind(), io::ErrorKind::IsADirectory);
    }

    #[test]
    fn a_signal_s_cleanup_removes_what_is_unfinished() {
        let dir = folder("signal");
        let mut f = OutputFile::create(&dir.join("r.json")).expect("created");
        f.file().write_all(b"{").expect("written");
        assert_eq!(names(&dir).len(), 1, "the temporary file");
        // What remove_unfinished does, for this folder only (other tests'
        // files are being written in parallel).
        remove_listed(|p| p.starts_with(&dir));
        assert_eq!(names(&dir), Vec::<String>::new());
        drop(f);
        std::fs::remove_dir_all(&dir).expect("removed");
    }
}
