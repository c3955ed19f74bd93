//! Files a user asked portflow to write (a report, a `-w` pcap): written
//! under a temporary name in the same folder and renamed into place only when
//! complete (flushed and synced), so the name never holds half a file. The
//! temporary file is removed on every error and when the writer is dropped.
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// A file being written to a temporary name, renamed to its own when
/// committed.
#[derive(Debug)]
pub struct OutputFile {
    file: File,
    /// The temporary name; empty once renamed (nothing to remove).
    tmp: PathBuf,
    dest: PathBuf,
}

impl OutputFile {
    /// Creates the temporary file `.NAME.tmp-PID` beside `dest`.
    pub fn create(dest: &Path) -> io::Result<OutputFile> {
        let name = dest
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
        let tmp = dest.with_file_name(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = File::create(&tmp)?;
        Ok(OutputFile {
            file,
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// The file as opened: write to it, or cut it back.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The name the file will have.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Syncs the file and renames it into place. On an error the temporary
    /// file is removed.
    pub fn commit(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, &self.dest)?;
        self.tmp = PathBuf::new();
        Ok(())
    }

    /// [`Self::commit`] for data that cannot be made again (captured
    /// packets): renamed into place even when the sync failed, and kept under
    /// the temporary name when the rename fails. Returns where the data is,
    /// and the first error.
    pub fn commit_or_keep(mut self) -> (PathBuf, Option<io::Error>) {
        let synced = self.file.sync_all().err();
        let tmp = std::mem::take(&mut self.tmp);
        match std::fs::rename(&tmp, &self.dest) {
            Ok(()) => (self.dest.clone(), synced),
            Err(e) => {
                let e = io::Error::new(
                    e.kind(),
                    format!(
                        "cannot rename {} to {}: {e}",
                        tmp.display(),
                        self.dest.display()
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
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
}
