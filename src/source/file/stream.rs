//! A capture arriving as a stream (standard input, gzip, a pipe): through
//! pcap-parser's buffered reader, with pcapng Enhanced Packet Blocks read in
//! place from its buffer.
use super::walker::{enhanced_packet, nom_kind, Walker};
use super::{is_gzip, open_error, FileError, FileErrorKind, FileSummary, RawPacket, TRUNCATED};
use pcap_parser::PcapError;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The last I/O error a stream met (which `pcap-parser` reports only as
/// "read error"), with the bytes it had delivered by then.
type LastError = Arc<Mutex<Option<(io::ErrorKind, String, u64)>>>;

/// Adds the bytes read from the file itself (compressed, for gzip) to the
/// progress count, which is measured against the files' sizes.
struct Counted<R> {
    inner: R,
    progress: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Counts the bytes the stream delivered (uncompressed), where errors are
/// placed, and keeps the last I/O error.
struct Tracked<R> {
    inner: R,
    delivered: u64,
    last_error: LastError,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.delivered += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let kind = e.kind();
                    if let Ok(mut slot) = self.last_error.lock() {
                        *slot = Some((kind, e.to_string(), self.delivered));
                    }
                    // Compressed data that ends early ends the stream here
                    // (the decoder would say so again on every read); the
                    // file is reported as cut short where its data stops.
                    if kind == io::ErrorKind::UnexpectedEof {
                        return Ok(0);
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// Fills `buf` as far as the stream allows (pcap-parser reads its header with one `read`).
struct FillFirst<R> {
    inner: R,
}

impl<R: Read> Read for FillFirst<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if n == 0 {
                        return Err(e);
                    }
                    break;
                }
            }
        }
        Ok(n)
    }
}

pub(super) fn read_from_with(
    path: &str,
    raw: impl Read + Send + 'static,
    progress: Arc<AtomicU64>,
    buffer: usize,
    sink: &mut dyn FnMut(&RawPacket),
) -> Result<FileSummary, FileError> {
    let path = path.to_string();
    let io_err = |e: io::Error| open_error(&path, e);
    let raw: Box<dyn Read + Send> = Box::new(Counted {
        inner: raw,
        progress,
    });
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    let head = buffered.fill_buf().map_err(io_err)?;
    let compressed = is_gzip(head);
    let stream: Box<dyn Read + Send> = if compressed {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let last_error: LastError = Arc::new(Mutex::new(None));
    let tracked = Tracked {
        inner: stream,
        delivered: 0,
        last_error: last_error.clone(),
    };
    let read = read_stream(
        &path,
        compressed,
        FillFirst { inner: tracked },
        buffer,
        sink,
    );
    const CUT: &str = "compressed data ends early (truncated file)";
    let last = last_error.lock().ok().and_then(|m| m.clone());
    match (read, last) {
        // The records ended on a boundary, but the compressed data did not.
        (Ok(s), Some((io::ErrorKind::UnexpectedEof, _, at))) => {
            let mut w = Walker::new(&path, compressed);
            w.summary = s;
            Err(w.error(FileErrorKind::Truncated, at, CUT.into()))
        }
        (Ok(s), _) => Ok(s),
        (Err(mut e), Some((io::ErrorKind::UnexpectedEof, _, _))) => {
            e.kind = FileErrorKind::Truncated;
            e.message = CUT.into();
            Err(e)
        }
        (Err(mut e), Some((_, msg, _))) if e.kind == FileErrorKind::Io => {
            e.message = format!("read error: {msg}");
            Err(e)
        }
        (Err(e), _) => Err(e),
    }
}

/// Parses a capture arriving as a stream, through pcap-parser's buffered reader.
fn read_stream<R: Read + Send>(
    path: &str,
    compressed: bool,
    stream: FillFirst<Tracked<R>>,
    buffer: usize,
    sink: &mut dyn FnMut(&RawPacket),
) -> Result<FileSummary, FileError> {
    let mut w = Walker::new(path, compressed);
    let mut reader = match pcap_parser::create_reader(buffer, stream) {
        Ok(r) => r,
        Err(PcapError::HeaderNotRecognized) => {
            let m = "not a pcap or pcapng file (unknown magic number)".into();
            return Err(w.error(FileErrorKind::NotACapture, 0, m));
        }
        Err(PcapError::ReadError) => {
            let m = "read error (not a readable file, or bad gzip data)".into();
            return Err(w.error(FileErrorKind::Io, 0, m));
        }
        Err(PcapError::Incomplete(_)) | Err(PcapError::UnexpectedEof) | Err(PcapError::Eof) => {
            return Err(w.error(
                FileErrorKind::Truncated,
                0,
                "file ends inside the file header".into(),
            ))
        }
        Err(e) => {
            return Err(w.error(
                FileErrorKind::Corrupt,
                0,
                format!("bad file header ({e:?})"),
            ))
        }
    };
    loop {
        let pos = reader.consumed() as u64;
        if w.summary.format == "pcapng" {
            if let Some(epb) = enhanced_packet(reader.data(), w.big_endian) {
                w.enhanced(&epb, sink);
                let len = epb.len;
                reader.consume(len);
                continue;
            }
        }
        match reader.next() {
            Ok((len, block)) => {
                w.block(block, pos, sink)?;
                reader.consume(len);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    return Err(w.error(FileErrorKind::Io, pos, "read error".into()));
                }
            }
            Err(PcapError::UnexpectedEof) => {
                return Err(w.error(FileErrorKind::Truncated, pos, TRUNCATED.into()))
            }
            Err(PcapError::BufferTooSmall) => {
                let m = format!(
                    "record claims more than the {} KiB read buffer (corrupt length field)",
                    buffer >> 10
                );
                return Err(w.error(FileErrorKind::Corrupt, pos, m));
            }
            Err(PcapError::ReadError) => {
                return Err(w.error(
                    FileErrorKind::Io,
                    pos,
                    "read error (I/O or bad gzip data)".into(),
                ))
            }
            Err(e) => {
                let m = format!("corrupt record or block ({})", nom_kind(&e));
                return Err(w.error(FileErrorKind::Corrupt, pos, m));
            }
        }
    }
    Ok(w.summary)
}
