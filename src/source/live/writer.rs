//! `-w`: the packets of a live capture, kept in a pcap file.
use super::rotation::Rotation;
use crate::decode::LinkType;
use crate::output::OutputFile;
use crate::source::pcap_format::{PcapFormat, RECORD_HEADER};
use crate::source::MAX_SNAPLEN;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `-w`: a pcap file written under a temporary name and renamed into place when
/// closed ([`OutputFile`]), so the named file is always complete. Capture
/// threads make whole records in their own [`Records`] and hand them over a
/// block at a time (one lock per block, none per packet); a block goes to the
/// file whole: when a write fails (disk full, I/O error), the file is cut
/// back to the last whole record and still renamed into place, so what was
/// written stays readable.
pub struct PcapWriter {
    out: OutputFile,
    /// Bytes of the file that hold the header and whole records.
    on_disk: u64,
    /// Whole packets in the file.
    packets_on_disk: u64,
    /// Whole packets in the files finished before it.
    packets_before: u64,
    /// How records are written (microseconds, or nanoseconds with `--nano`).
    format: PcapFormat,
    /// The first write error; nothing more is written after it.
    failed: Option<std::io::Error>,
    /// `-C`, `-G`, `-W` ([`Rotation`]), and what they need.
    rotation: Rotation,
    base: PathBuf,
    header: [u8; 24],
    /// Files opened so far (the current one included), the start of the
    /// current one (packet time; `-G`), its number within its `-G` period.
    files: u32,
    start_ns: u64,
    in_period: u32,
    /// Finished files, oldest first (`-G` with `-W` removes past the count).
    finished: std::collections::VecDeque<PathBuf>,
}

/// Bytes a capture thread gathers before it hands them to the writer.
const BLOCK: usize = 1 << 20;

/// One capture thread's records not yet written: whole pcap records, in the
/// order the thread captured them.
pub struct Records {
    bytes: Vec<u8>,
    packets: u64,
    format: PcapFormat,
}

impl Default for Records {
    fn default() -> Self {
        Records {
            // A block and the largest record that can follow it.
            bytes: Vec::with_capacity(BLOCK + RECORD_HEADER + MAX_SNAPLEN as usize),
            packets: 0,
            format: PcapFormat::CLASSIC,
        }
    }
}

impl Records {
    /// Records in `format` (the writer's, [`PcapWriter::format`]).
    pub fn new(format: PcapFormat) -> Records {
        Records {
            format,
            ..Records::default()
        }
    }

    /// Adds one record, stamped `ts_ns` (written in the format's resolution).
    #[inline]
    pub fn push(&mut self, ts_ns: u64, data: &[u8], wire_len: u32) {
        self.format.record(&mut self.bytes, ts_ns, data, wire_len);
        self.packets += 1;
    }

    /// Whether a block's worth is waiting.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.bytes.len() >= BLOCK
    }

    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }
}

/// How closing a `-w` file went.
#[derive(Debug)]
pub struct WriteOutcome {
    /// Where the packets are: the named file, or the temporary one when the
    /// rename failed.
    pub path: PathBuf,
    /// Whole packets written, in every file.
    pub packets: u64,
    /// Files written (more than one with rotation; `path` is the last).
    pub files: u32,
    pub error: Option<String>,
}

impl PcapWriter {
    /// Creates the file (under its temporary name, or in place for a device
    /// or a FIFO: [`OutputFile::create`]) with the header for packets of
    /// `link` cut to `snaplen`.
    pub fn create(dest: &Path, link: LinkType, snaplen: u32) -> std::io::Result<PcapWriter> {
        PcapWriter::rotating(
            dest,
            link,
            snaplen,
            PcapFormat::CLASSIC,
            Rotation::default(),
            0,
        )
    }

    /// [`Self::create`] with `rotation`: the first file starts at `now_ns`
    /// (the name `-G` fills in).
    pub fn rotating(
        dest: &Path,
        link: LinkType,
        snaplen: u32,
        format: PcapFormat,
        rotation: Rotation,
        now_ns: u64,
    ) -> std::io::Result<PcapWriter> {
        let name = rotation.name(dest, 0, now_ns, 0);
        let mut w = PcapWriter::new(OutputFile::create(&name)?, link, snaplen, format)?;
        (w.rotation, w.base, w.start_ns) = (rotation, dest.to_path_buf(), now_ns);
        Ok(w)
    }

    /// [`Self::create`] straight under its name, handed to user `uid` and
    /// group `gid`: for a capture that gives up root and could not create a
    /// file in that folder afterwards. The file holds whole records whenever
    /// the capture stops; only a capture killed outright can leave a last
    /// record cut short (which `portflow read` reports and reads past).
    pub fn create_for(
        dest: &Path,
        link: LinkType,
        snaplen: u32,
        format: PcapFormat,
        owner: (u32, u32),
    ) -> std::io::Result<PcapWriter> {
        let out = OutputFile::create_in_place(dest)?;
        out.give_to(owner.0, owner.1)?;
        PcapWriter::new(out, link, snaplen, format)
    }

    fn new(
        mut out: OutputFile,
        link: LinkType,
        snaplen: u32,
        format: PcapFormat,
    ) -> std::io::Result<PcapWriter> {
        let h = format.header(link, snaplen.max(1));
        out.file().write_all(&h)?;
        Ok(PcapWriter {
            base: out.dest().to_path_buf(),
            out,
            on_disk: h.len() as u64,
            packets_on_disk: 0,
            packets_before: 0,
            format,
            failed: None,
            rotation: Rotation::default(),
            header: h,
            files: 1,
            start_ns: 0,
            in_period: 0,
            finished: std::collections::VecDeque::new(),
        })
    }

    /// The name the file will have.
    pub fn dest(&self) -> &Path {
        self.out.dest()
    }

    /// Writes `r`'s records and empties it, starting new files where the
    /// rotation says. On an error the file is cut back to the last whole
    /// record and the error remembered: after it every call fails with it,
    /// and nothing more is written.
    pub fn append(&mut self, r: &mut Records) -> std::io::Result<()> {
        if let Some(e) = &self.failed {
            return Err(std::io::Error::new(e.kind(), e.to_string()));
        }
        let mut at = 0;
        let outcome = loop {
            let (end, records, next) = self.fits(&r.bytes, at);
            if let Err(e) = self.write_all(&r.bytes[at..end], records) {
                break Err(e);
            }
            at = end;
            match next {
                Some(start_ns) => {
                    if let Err(e) = self.rotate(start_ns) {
                        break Err(self.remember(e));
                    }
                }
                None => break Ok(()),
            }
        };
        r.bytes.clear();
        r.packets = 0;
        outcome
    }

    /// How much of `bytes` from `at` goes into the current file: the end of
    /// the whole records that fit, how many they are, and, when a new file
    /// must start there, its start (packet time).
    fn fits(&self, bytes: &[u8], at: usize) -> (usize, u64, Option<u64>) {
        let max = self.rotation.max_bytes;
        let every_ns = self.rotation.every.map(|d| d.as_nanos() as u64);
        let mut n = 0u64;
        for (start, header, len) in record_headers(self.format, &bytes[at..]) {
            let (end, in_file) = (at + start, self.on_disk + start as u64);
            let holds_some = in_file > self.header.len() as u64;
            if max.is_some_and(|m| holds_some && in_file + len as u64 > m) {
                return (end, n, Some(self.start_ns));
            }
            if let Some(every) = every_ns.filter(|e| *e > 0) {
                let ts = self.format.ts_ns(&header);
                if ts >= self.start_ns.saturating_add(every) {
                    let periods = (ts - self.start_ns) / every;
                    return (end, n, Some(self.start_ns + periods * every));
                }
            }
            n += 1;
        }
        (bytes.len(), n, None)
    }

    /// Writes `bytes`, `records` whole records.
    fn write_all(&mut self, bytes: &[u8], records: u64) -> std::io::Result<()> {
        let mut done = 0;
        while done < bytes.len() {
            match self.out.file().write(&bytes[done..]) {
                Ok(0) => return self.fail(&bytes[..done], std::io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(&bytes[..done], e),
            }
        }
        self.on_disk += bytes.len() as u64;
        self.packets_on_disk += records;
        Ok(())
    }

    /// Finishes the current file (renamed into place) and starts the next,
    /// which starts at `start_ns`.
    fn rotate(&mut self, start_ns: u64) -> std::io::Result<()> {
        let same_period = start_ns == self.start_ns;
        self.in_period = if same_period { self.in_period + 1 } else { 0 };
        let name = self
            .rotation
            .name(&self.base, self.files, start_ns, self.in_period);
        let next = OutputFile::create(&name)?;
        let done = std::mem::replace(&mut self.out, next);
        let (path, error) = done.commit_or_keep();
        if let Some(e) = error {
            return Err(e);
        }
        self.out.file().write_all(&self.header)?;
        self.files += 1;
        self.start_ns = start_ns;
        self.packets_before += self.packets_on_disk;
        self.packets_on_disk = 0;
        self.on_disk = self.header.len() as u64;
        if self.rotation.removes_oldest() {
            self.finished.push_back(path);
            let keep = self.rotation.keep.unwrap_or(u32::MAX).max(1) as usize;
            while self.finished.len() >= keep {
                if let Some(old) = self.finished.pop_front() {
                    let _ = std::fs::remove_file(old);
                }
            }
        }
        Ok(())
    }

    /// Remembers `e` as the error after which nothing is written.
    fn remember(&mut self, e: std::io::Error) -> std::io::Error {
        let err = std::io::Error::new(e.kind(), e.to_string());
        self.failed = Some(e);
        err
    }

    /// How its records are written.
    pub fn format(&self) -> PcapFormat {
        self.format
    }

    /// Keeps the whole records of `written` (what made it to the file of a
    /// block), cuts the file back to them and remembers `e`.
    fn fail(&mut self, written: &[u8], e: std::io::Error) -> std::io::Result<()> {
        let (mut at, mut whole) = (0usize, 0u64);
        for (start, _, len) in record_headers(self.format, written) {
            if start + len > written.len() {
                break;
            }
            at = start + len;
            whole += 1;
        }
        self.on_disk += at as u64;
        self.packets_on_disk += whole;
        if self.out.is_regular() {
            let _ = self.out.file().set_len(self.on_disk);
        }
        Err(self.remember(e))
    }

    /// Syncs and renames the file into place (every thread has appended its
    /// last records). After a write error the whole records written are
    /// still kept under the name; if the rename itself fails, they stay under
    /// the temporary name.
    pub fn finish(mut self) -> WriteOutcome {
        let failed = self.failed.take().map(|e| e.to_string());
        let (path, error) = self.out.commit_or_keep();
        WriteOutcome {
            path,
            packets: self.packets_before + self.packets_on_disk,
            files: self.files,
            error: failed.or(error.map(|e| e.to_string())),
        }
    }
}

/// The records of `bytes` (whole records, the last perhaps cut short): where
/// each starts, its header and its length with the header.
fn record_headers(
    format: PcapFormat,
    bytes: &[u8],
) -> impl Iterator<Item = (usize, [u8; RECORD_HEADER], usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header: [u8; RECORD_HEADER] = bytes.get(at..at + RECORD_HEADER)?.try_into().ok()?;
        let len = RECORD_HEADER + format.caplen(&header) as usize;
        let start = at;
        at += len;
        Some((start, header, len))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_output_reads_back() {
        let dir = std::env::temp_dir().join(format!("portflow-w-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("out.pcap");
        let mut w = PcapWriter::create(&dest, LinkType::ETHERNET, 65535).unwrap();
        assert!(
            !dest.exists(),
            "only the temporary name exists while writing"
        );
        let frame = portflow_synth::build::eth_ip(&portflow_synth::build::udp(
            portflow_synth::build::v4(1, 1, 1, 1),
            1,
            portflow_synth::build::v4(2, 2, 2, 2),
            2,
            b"x",
        ));
        let mut r = Records::default();
        r.push(1_000_002_000, &frame, frame.len() as u32);
        w.append(&mut r).unwrap();
        assert!(r.is_empty());
        let done = w.finish();
        assert_eq!((done.path.as_path(), done.packets), (&*dest, 1));
        assert!(done.error.is_none());
        let mut n = 0;
        crate::source::read_capture(
            &crate::source::Input::Path(dest.clone()),
            std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
            &mut |p| {
                n += 1;
                assert_eq!(p.data, &frame[..]);
                assert_eq!(p.ts_ns, 1_000_002_000);
            },
        )
        .unwrap();
        assert_eq!(n, 1);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::*;

    /// `n` records of 1,000-byte packets, one every 100 ms from `t0_ns`.
    fn records(n: u64, t0_ns: u64) -> Records {
        let mut r = Records::default();
        for i in 0..n {
            r.push(t0_ns + i * 100_000_000, &[i as u8; 1000], 1000);
        }
        r
    }

    fn packets_in(path: &Path) -> u64 {
        let mut n = 0;
        crate::source::read_capture(
            &crate::source::Input::Path(path.to_path_buf()),
            std::sync::Arc::default(),
            &mut |_| n += 1,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n
    }

    fn fresh(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("portflow-rot-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn c_starts_a_new_whole_file_before_one_would_pass_its_size() {
        let dir = fresh("c");
        let rotation = Rotation {
            max_bytes: Some(20_000),
            ..Rotation::default()
        };
        let mut w = PcapWriter::rotating(
            &dir.join("ev.pcap"),
            LinkType::ETHERNET,
            65535,
            PcapFormat::CLASSIC,
            rotation,
            0,
        )
        .unwrap();
        w.append(&mut records(100, 0)).unwrap();
        let done = w.finish();
        assert_eq!((done.packets, done.files), (100, 6), "19 records a file");
        let mut total = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            assert!(
                std::fs::metadata(&p).unwrap().len() <= 20_000,
                "{}",
                p.display()
            );
            total += packets_in(&p);
        }
        assert_eq!(total, 100);
        assert!(dir.join("ev.pcap").exists() && dir.join("ev.pcap5").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn g_starts_a_file_every_period_and_w_keeps_the_last_ones() {
        let dir = fresh("g");
        let t0 = 1_700_000_000_000_000_000;
        let rotation = Rotation {
            every: Some(std::time::Duration::from_secs(1)),
            keep: Some(3),
            ..Rotation::default()
        };
        let pattern = dir.join("cap-%s.pcap");
        let mut w = PcapWriter::rotating(
            &pattern,
            LinkType::ETHERNET,
            65535,
            PcapFormat::CLASSIC,
            rotation,
            t0,
        )
        .unwrap();
        // 5 s of packets, in two blocks.
        let (mut a, mut b) = (records(25, t0), records(25, t0 + 2_500_000_000));
        w.append(&mut a).unwrap();
        w.append(&mut b).unwrap();
        let done = w.finish();
        assert_eq!((done.packets, done.files), (50, 5));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // Five one-second files, named by their start; the ring keeps three.
        assert_eq!(
            names,
            [
                "cap-1700000002.pcap",
                "cap-1700000003.pcap",
                "cap-1700000004.pcap"
            ]
        );
        for n in &names {
            assert_eq!(packets_in(&dir.join(n)), 10, "{n}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
