//! `-w`: the packets of a live capture, kept in a pcap file.
use crate::decode::LinkType;
use crate::output::OutputFile;
use crate::source::pcap_format::{PcapFormat, RECORD_HEADER};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `-w`: a pcap file written under a temporary name and renamed into place when
/// closed ([`OutputFile`]), so the named file is always complete. Records go to
/// the file whole: when a write fails (disk full, I/O error), the file is cut
/// back to the last whole record and still renamed into place, so what was
/// written stays readable.
pub struct PcapWriter {
    out: OutputFile,
    /// Whole records not yet written.
    buf: Vec<u8>,
    /// Bytes of the file that hold the header and whole records.
    on_disk: u64,
    /// Packets in the file or in `buf`.
    pub packets: u64,
    packets_on_disk: u64,
    /// The first write error; nothing more is written after it.
    failed: Option<std::io::Error>,
}

/// Bytes buffered before a write.
const WRITE_BUFFER: usize = 1 << 20;

/// How closing a `-w` file went.
#[derive(Debug)]
pub struct WriteOutcome {
    /// Where the packets are: the named file, or the temporary one when the
    /// rename failed.
    pub path: PathBuf,
    /// Whole packets in that file.
    pub packets: u64,
    pub error: Option<String>,
}

impl PcapWriter {
    /// Creates the file (under its temporary name, or in place for a device
    /// or a FIFO: [`OutputFile::create`]) with the header for packets of
    /// `link` cut to `snaplen`.
    pub fn create(dest: &Path, link: LinkType, snaplen: u32) -> std::io::Result<PcapWriter> {
        PcapWriter::new(OutputFile::create(dest)?, link, snaplen)
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
        uid: u32,
        gid: u32,
    ) -> std::io::Result<PcapWriter> {
        let out = OutputFile::create_in_place(dest)?;
        out.give_to(uid, gid)?;
        PcapWriter::new(out, link, snaplen)
    }

    fn new(mut out: OutputFile, link: LinkType, snaplen: u32) -> std::io::Result<PcapWriter> {
        let h = PcapFormat::CLASSIC.header(link, snaplen.max(1));
        out.file().write_all(&h)?;
        Ok(PcapWriter {
            out,
            buf: Vec::with_capacity(WRITE_BUFFER + 65_536),
            on_disk: h.len() as u64,
            packets: 0,
            packets_on_disk: 0,
            failed: None,
        })
    }

    /// The name the file will have.
    pub fn dest(&self) -> &Path {
        self.out.dest()
    }

    /// Appends one record, stamped `ts_ns` (written in microseconds). After a
    /// write error every call fails with it.
    #[inline]
    pub fn write(&mut self, ts_ns: u64, data: &[u8], wire_len: u32) -> std::io::Result<()> {
        if let Some(e) = &self.failed {
            return Err(std::io::Error::new(e.kind(), e.to_string()));
        }
        PcapFormat::CLASSIC.record(&mut self.buf, ts_ns, data, wire_len);
        self.packets += 1;
        if self.buf.len() >= WRITE_BUFFER {
            self.write_buffer()?;
        }
        Ok(())
    }

    /// Writes the buffered records; on an error cuts the file back to the last
    /// whole record and remembers the error.
    fn write_buffer(&mut self) -> std::io::Result<()> {
        let mut done = 0;
        while done < self.buf.len() {
            match self.out.file().write(&self.buf[done..]) {
                Ok(0) => {
                    return self.fail(done, std::io::ErrorKind::WriteZero.into());
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(done, e),
            }
        }
        self.on_disk += self.buf.len() as u64;
        self.packets_on_disk = self.packets;
        self.buf.clear();
        Ok(())
    }

    fn fail(&mut self, written: usize, e: std::io::Error) -> std::io::Result<()> {
        // The records of `buf` that made it to the file whole.
        let (mut at, mut whole) = (0usize, 0u64);
        while at + RECORD_HEADER <= written {
            let header = self.buf[at..at + RECORD_HEADER]
                .try_into()
                .expect("a record header");
            let end = at + RECORD_HEADER + PcapFormat::CLASSIC.caplen(&header) as usize;
            if end > written {
                break;
            }
            at = end;
            whole += 1;
        }
        self.on_disk += at as u64;
        self.packets_on_disk += whole;
        self.packets = self.packets_on_disk;
        self.buf.clear();
        if self.out.is_regular() {
            let _ = self.out.file().set_len(self.on_disk);
        }
        let err = std::io::Error::new(e.kind(), e.to_string());
        self.failed = Some(e);
        Err(err)
    }

    /// Writes what is buffered, syncs, and renames the file into place. After
    /// a write error the whole records written are still kept under the name;
    /// if the rename itself fails, they stay under the temporary name.
    pub fn finish(mut self) -> WriteOutcome {
        if self.failed.is_none() {
            let _ = self.write_buffer();
        }
        let failed = self.failed.take().map(|e| e.to_string());
        let (path, error) = self.out.commit_or_keep();
        WriteOutcome {
            path,
            packets: self.packets_on_disk,
            error: failed.or(error.map(|e| e.to_string())),
        }
    }
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
        w.write(1_000_002_000, &frame, frame.len() as u32).unwrap();
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
