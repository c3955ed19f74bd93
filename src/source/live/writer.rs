//! `-w`: the packets of a live capture, kept in a pcap file.
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
    /// The first write error; nothing more is written after it.
    failed: Option<std::io::Error>,
}

/// Bytes a capture thread gathers before it hands them to the writer.
const BLOCK: usize = 1 << 20;

/// One capture thread's records not yet written: whole pcap records, in the
/// order the thread captured them.
pub struct Records {
    bytes: Vec<u8>,
    packets: u64,
}

impl Default for Records {
    fn default() -> Self {
        Records {
            // A block and the largest record that can follow it.
            bytes: Vec::with_capacity(BLOCK + RECORD_HEADER + MAX_SNAPLEN as usize),
            packets: 0,
        }
    }
}

impl Records {
    /// Adds one record, stamped `ts_ns` (written in microseconds).
    #[inline]
    pub fn push(&mut self, ts_ns: u64, data: &[u8], wire_len: u32) {
        PcapFormat::CLASSIC.record(&mut self.bytes, ts_ns, data, wire_len);
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
            on_disk: h.len() as u64,
            packets_on_disk: 0,
            failed: None,
        })
    }

    /// The name the file will have.
    pub fn dest(&self) -> &Path {
        self.out.dest()
    }

    /// Writes `r`'s records and empties it. On an error the file is cut back
    /// to the last whole record and the error remembered: after it every call
    /// fails with it, and nothing more is written.
    pub fn append(&mut self, r: &mut Records) -> std::io::Result<()> {
        if let Some(e) = &self.failed {
            return Err(std::io::Error::new(e.kind(), e.to_string()));
        }
        let mut done = 0;
        let result = loop {
            if done == r.bytes.len() {
                break Ok(());
            }
            match self.out.file().write(&r.bytes[done..]) {
                Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let outcome = match result {
            Ok(()) => {
                self.on_disk += r.bytes.len() as u64;
                self.packets_on_disk += r.packets;
                Ok(())
            }
            Err(e) => self.fail(&r.bytes[..done], e),
        };
        r.bytes.clear();
        r.packets = 0;
        outcome
    }

    /// Keeps the whole records of `written` (what made it to the file of a
    /// block), cuts the file back to them and remembers `e`.
    fn fail(&mut self, written: &[u8], e: std::io::Error) -> std::io::Result<()> {
        let (mut at, mut whole) = (0usize, 0u64);
        while at + RECORD_HEADER <= written.len() {
            let header = written[at..at + RECORD_HEADER]
                .try_into()
                .expect("a record header");
            let end = at + RECORD_HEADER + PcapFormat::CLASSIC.caplen(&header) as usize;
            if end > written.len() {
                break;
            }
            at = end;
            whole += 1;
        }
        self.on_disk += at as u64;
        self.packets_on_disk += whole;
        if self.out.is_regular() {
            let _ = self.out.file().set_len(self.on_disk);
        }
        let err = std::io::Error::new(e.kind(), e.to_string());
        self.failed = Some(e);
        Err(err)
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
