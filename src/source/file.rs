//! The capture-file reader: pcap and pcapng through `pcap-parser`'s streaming
//! reader over one 4 MiB buffer, gzip through `flate2`.
use super::Input;
use crate::decode::LinkType;
use crate::hint::{prefetch, LINE};
use pcap_parser::nom;
use pcap_parser::pcapng::{self, Block};
use pcap_parser::{PcapBlockOwned, PcapError};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The read buffer. A record larger than this is a corrupt length field
/// (libpcap's own limit is 256 KiB per packet).
pub const READ_BUFFER: usize = 4 << 20;

/// libpcap's largest snapshot length (MAXIMUM_SNAPLEN): a pcap record that
/// claims more captured bytes is corrupt, as libpcap itself says.
pub const MAX_CAPLEN: u32 = 262_144;

/// One packet as read from a file, borrowed from the read buffer.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    pub link: LinkType,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The captured bytes (possibly cut short by the snaplen).
    pub data: &'a [u8],
    /// The packet's length on the wire.
    pub wire_len: u32,
    /// The pcapng interface number (0 for pcap).
    pub interface: u32,
}

/// What reading one file saw, besides its packets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSummary {
    pub packets: u64,
    /// File format: "pcap", "pcap-ns", "pcap-modified" or "pcapng".
    pub format: &'static str,
    pub compressed: bool,
    /// Packets of a pcapng file that name an interface no block described.
    pub unknown_interface: u64,
}

/// Why a file could not be read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileErrorKind {
    /// Opening or reading failed (missing file, permission, I/O, bad gzip data).
    Io,
    /// Neither pcap nor pcapng magic.
    NotACapture,
    /// The file ends inside a record.
    Truncated,
    /// A record or block header is inconsistent (impossible length, bad magic).
    Corrupt,
}

/// A file-level error: names the file, the byte offset and the packet count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: String,
    pub kind: FileErrorKind,
    /// Byte offset of the record that failed (in the uncompressed stream for gzip).
    pub offset: u64,
    /// Packets read from the file before the error.
    pub packets_before: u64,
    pub message: String,
    pub compressed: bool,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FileErrorKind::Io | FileErrorKind::NotACapture
                if self.offset == 0 && self.packets_before == 0 =>
            {
                write!(f, "{}: {}", self.path, self.message)
            }
            _ => write!(
                f,
                "{}: {} at byte offset {}{} (packet {})",
                self.path,
                self.message,
                self.offset,
                if self.compressed {
                    " of the uncompressed data"
                } else {
                    ""
                },
                self.packets_before + 1
            ),
        }
    }
}

impl std::error::Error for FileError {}

/// Counts bytes read (for progress) and keeps the last I/O error, which
/// `pcap-parser` reports only as "read error".
struct Tracked<R> {
    inner: R,
    progress: Arc<AtomicU64>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.progress.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if let Ok(mut slot) = self.last_error.lock() {
                        *slot = Some(e.to_string());
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

struct Iface {
    link: LinkType,
    /// Timestamp units per second.
    resolution: u64,
    offset_s: i64,
}

#[inline]
fn units_to_ns(units: u64, resolution: u64) -> u64 {
    if resolution == 1_000_000_000 {
        units
    } else if resolution == 1_000_000 {
        units.wrapping_mul(1000)
    } else {
        ((units as u128 * 1_000_000_000u128) / resolution.max(1) as u128) as u64
    }
}

/// Turns pcap-parser blocks into [`RawPacket`]s, whichever way the bytes arrive.
struct Walker<'s> {
    path: &'s str,
    summary: FileSummary,
    legacy_link: LinkType,
    legacy_res: u64,
    ifaces: Vec<Iface>,
}

impl<'s> Walker<'s> {
    fn new(path: &'s str, compressed: bool) -> Self {
        Walker {
            path,
            summary: FileSummary {
                compressed,
                ..Default::default()
            },
            legacy_link: LinkType(0),
            legacy_res: 1_000_000,
            ifaces: Vec::new(),
        }
    }

    fn error(&self, kind: FileErrorKind, offset: u64, message: String) -> FileError {
        FileError {
            path: self.path.to_string(),
            kind,
            offset,
            packets_before: self.summary.packets,
            message,
            compressed: self.summary.compressed,
        }
    }

    /// Takes a pcap file header; versions libpcap refuses are refused here too
    /// (their record layout is not the one parsed).
    fn header(&mut self, h: &pcap_parser::PcapHeader) -> Result<(), FileError> {
        if h.version_major != 2 || h.version_minor > 4 {
            let m = format!(
                "unsupported pcap file format version {}.{}",
                h.version_major, h.version_minor
            );
            return Err(self.error(FileErrorKind::NotACapture, 0, m));
        }
        self.legacy_link = LinkType::from_header_field(h.network.0 as u32);
        self.summary.format = if h.is_modified_format() {
            "pcap-modified"
        } else if h.is_nanosecond_precision() {
            self.legacy_res = 1_000_000_000;
            "pcap-ns"
        } else {
            "pcap"
        };
        Ok(())
    }

    /// A legacy record's captured length, checked before its bytes are read.
    #[inline]
    fn check_caplen(&self, caplen: u32, pos: u64) -> Result<(), FileError> {
        if caplen > MAX_CAPLEN {
            let m = format!("record claims {caplen} captured bytes, more than {MAX_CAPLEN}");
            return Err(self.error(FileErrorKind::Corrupt, pos, m));
        }
        Ok(())
    }

    /// Hands one legacy pcap record to `sink` (`frac`: the fraction of a
    /// second in the file's resolution).
    #[inline]
    fn legacy_packet<F: FnMut(&RawPacket) + ?Sized>(
        &mut self,
        ts_sec: u32,
        frac: u32,
        data: &[u8],
        wire_len: u32,
        sink: &mut F,
    ) {
        self.summary.packets += 1;
        sink(&RawPacket {
            link: self.legacy_link,
            ts_ns: ts_sec as u64 * 1_000_000_000 + units_to_ns(frac as u64, self.legacy_res),
            data,
            wire_len,
            interface: 0,
        });
    }

    #[inline]
    fn block(
        &mut self,
        block: PcapBlockOwned,
        pos: u64,
        sink: &mut dyn FnMut(&RawPacket),
    ) -> Result<(), FileError> {
        match block {
            PcapBlockOwned::Legacy(b) => {
                self.check_caplen(b.caplen, pos)?;
                let data = &b.data[..(b.caplen as usize).min(b.data.len())];
                self.legacy_packet(b.ts_sec, b.ts_usec, data, b.origlen, sink);
            }
            PcapBlockOwned::LegacyHeader(h) => self.header(&h)?,
            PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                // As libpcap: 1.0, and 1.2 (written by some old tools for 1.0).
                if shb.major_version != 1 || !matches!(shb.minor_version, 0 | 2) {
                    let m = format!(
                        "unsupported pcapng section version {}.{}",
                        shb.major_version, shb.minor_version
                    );
                    return Err(self.error(FileErrorKind::NotACapture, pos, m));
                }
                self.summary.format = "pcapng";
                self.ifaces.clear();
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                self.ifaces.push(Iface {
                    link: LinkType(idb.linktype.0 as u32),
                    resolution: idb.ts_resolution().unwrap_or(1_000_000),
                    offset_s: idb.ts_offset(),
                });
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                self.summary.packets += 1;
                let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                let (link, ts_ns) = match self.ifaces.get(epb.if_id as usize) {
                    Some(i) => {
                        let units = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                        let ts = units_to_ns(units, i.resolution)
                            .wrapping_add((i.offset_s as u64).wrapping_mul(1_000_000_000));
                        (i.link, ts)
                    }
                    None => {
                        self.summary.unknown_interface += 1;
                        (UNKNOWN_INTERFACE, 0)
                    }
                };
                sink(&RawPacket {
                    link,
                    ts_ns,
                    data,
                    wire_len: epb.origlen,
                    interface: epb.if_id,
                });
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                self.summary.packets += 1;
                let data = &spb.data[..(spb.origlen as usize).min(spb.data.len())];
                let link = match self.ifaces.first() {
                    Some(i) => i.link,
                    None => {
                        self.summary.unknown_interface += 1;
                        UNKNOWN_INTERFACE
                    }
                };
                sink(&RawPacket {
                    link,
                    ts_ns: 0,
                    data,
                    wire_len: spb.origlen,
                    interface: 0,
                });
            }
            PcapBlockOwned::NG(_) => {}
        }
        Ok(())
    }
}

/// The link type given to packets of a pcapng interface that was never described.
pub const UNKNOWN_INTERFACE: LinkType = LinkType(u32::MAX);

fn nom_kind(e: &PcapError<&[u8]>) -> String {
    use nom::error::ErrorKind;
    let kind = match e {
        PcapError::NomError(_, k) | PcapError::OwnedNomError(_, k) => *k,
        other => return format!("{other:?}"),
    };
    match kind {
        ErrorKind::Verify => "lengths inside the block do not add up".into(),
        ErrorKind::Eof | ErrorKind::Complete => "a length runs past the end of its block".into(),
        ErrorKind::Tag => "unexpected magic or block type".into(),
        k => format!("{k:?}"),
    }
}

const TRUNCATED: &str = "file ends inside a record (truncated capture)";

/// Whether `b` starts with the gzip magic number.
fn is_gzip(b: &[u8]) -> bool {
    b.starts_with(&[0x1f, 0x8b])
}

/// An I/O error before the first byte of `path` was parsed.
fn open_error(path: &str, e: io::Error) -> FileError {
    FileError {
        path: path.to_string(),
        kind: FileErrorKind::Io,
        offset: 0,
        packets_before: 0,
        message: e.to_string(),
        compressed: false,
    }
}

/// Reads one capture, calling `sink` for every packet in file order.
///
/// A regular, uncompressed file is memory-mapped and parsed in place (no
/// copy); gzip, standard input and other streams go through a 4 MiB buffer.
/// `progress` is advanced by the bytes consumed (compressed bytes for gzip).
pub fn read_capture<F: FnMut(&RawPacket)>(
    input: &Input,
    progress: Arc<AtomicU64>,
    sink: &mut F,
) -> Result<FileSummary, FileError> {
    let path = input.display();
    let io_err = |e: io::Error| open_error(&path, e);
    let raw: Box<dyn Read + Send> = match input {
        Input::Path(p) => {
            let md = std::fs::metadata(p).map_err(io_err)?;
            if md.is_dir() {
                return Err(io_err(io::Error::other("is a folder")));
            }
            let file = std::fs::File::open(p).map_err(io_err)?;
            if md.is_file() && md.len() >= 4 {
                // SAFETY: the map is read-only and private to this call. If another
                // process truncates the file while it is read, access past the new end
                // raises SIGBUS; captures being appended to are safe (the map keeps
                // the length it was made with).
                if let Ok(map) = unsafe { memmap2::Mmap::map(&file) } {
                    if !is_gzip(&map) {
                        let _ = map.advise(memmap2::Advice::Sequential);
                        return super::prefault::with_prefault(&map, |cursor| {
                            read_slice(&path, &map, Some(cursor), &progress, sink)
                        });
                    }
                }
            }
            Box::new(file)
        }
        Input::Stdin => Box::new(io::stdin()),
    };
    read_from(&path, raw, progress, sink)
}

/// Reads a capture held in memory (what a mapped file goes through), naming
/// it `path` in errors.
pub fn read_bytes(
    path: &str,
    data: &[u8],
    sink: &mut dyn FnMut(&RawPacket),
) -> Result<FileSummary, FileError> {
    if data.len() < 4 || is_gzip(data) {
        return read_stream_bytes(path, data, sink);
    }
    read_slice(path, data, None, &AtomicU64::new(0), &mut { sink })
}

/// Reads a capture held in memory as a stream (what standard input goes
/// through), with a read buffer sized to the data.
pub fn read_stream_bytes(
    path: &str,
    data: &[u8],
    sink: &mut dyn FnMut(&RawPacket),
) -> Result<FileSummary, FileError> {
    // No block can be larger than the data itself unless it is compressed.
    let buffer = if is_gzip(data) {
        READ_BUFFER
    } else {
        (data.len() + 4096)
            .next_power_of_two()
            .clamp(1 << 16, READ_BUFFER)
    };
    let cursor = io::Cursor::new(data.to_vec());
    read_from_with(path, cursor, Arc::default(), buffer, sink)
}

/// Reads a capture arriving as a stream (standard input, gzip, or a file that
/// cannot be mapped), naming it `path` in errors.
pub fn read_from(
    path: &str,
    raw: impl Read + Send + 'static,
    progress: Arc<AtomicU64>,
    sink: &mut dyn FnMut(&RawPacket),
) -> Result<FileSummary, FileError> {
    read_from_with(path, raw, progress, READ_BUFFER, sink)
}

fn read_from_with(
    path: &str,
    raw: impl Read + Send + 'static,
    progress: Arc<AtomicU64>,
    buffer: usize,
    sink: &mut dyn FnMut(&RawPacket),
) -> Result<FileSummary, FileError> {
    let path = path.to_string();
    let io_err = |e: io::Error| open_error(&path, e);
    let raw: Box<dyn Read + Send> = Box::new(raw);
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    let head = buffered.fill_buf().map_err(io_err)?;
    let compressed = is_gzip(head);
    let stream: Box<dyn Read + Send> = if compressed {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let last_error = Arc::new(Mutex::new(None));
    let tracked = Tracked {
        inner: stream,
        progress,
        last_error: last_error.clone(),
    };
    read_stream(
        &path,
        compressed,
        FillFirst { inner: tracked },
        buffer,
        sink,
    )
    .map_err(|mut e| {
        if e.kind == FileErrorKind::Io {
            if let Some(msg) = last_error.lock().ok().and_then(|m| m.clone()) {
                e.message = format!("read error: {msg}");
            }
        }
        e
    })
}

/// Parses a whole capture held in memory. When it is a file mapping, the
/// position is published every 16 MiB for the prefault helper, which releases
/// the pages parsed (or the reader does, if the helper falls behind: resident
/// memory does not grow with the file).
fn read_slice<F: FnMut(&RawPacket)>(
    path: &str,
    data: &[u8],
    map: Option<&super::prefault::MapCursor>,
    progress: &AtomicU64,
    sink: &mut F,
) -> Result<FileSummary, FileError> {
    const PUBLISH_EVERY: u64 = 16 << 20;
    let mut w = Walker::new(path, false);
    let offset_of = |rest: &[u8]| (data.len() - rest.len()) as u64;
    let mut last_progress = 0u64;
    // `at`: bytes parsed so far, after each block or record.
    let mut report = |at: u64| {
        if at - last_progress >= PUBLISH_EVERY {
            progress.fetch_add(at - last_progress, Ordering::Relaxed);
            if let Some(m) = map {
                m.reached(data, at as usize);
            }
            last_progress = at;
        }
    };
    let magic = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    if magic == 0x0a0d_0d0a {
        let mut rest = data;
        let mut big_endian = false;
        let mut ahead = Readahead::new(0);
        while !rest.is_empty() {
            let pos = offset_of(rest);
            ahead.advance(data, pos as usize);
            let parsed = if big_endian {
                pcapng::parse_block_be(rest)
            } else {
                pcapng::parse_block_le(rest)
            };
            match parsed {
                Ok((r, block)) => {
                    if let Block::SectionHeader(shb) = &block {
                        big_endian = shb.big_endian();
                    }
                    w.block(PcapBlockOwned::NG(block), pos, sink)?;
                    rest = r;
                    report(offset_of(rest));
                }
                Err(nom::Err::Incomplete(_)) => {
                    return Err(w.error(FileErrorKind::Truncated, pos, TRUNCATED.into()));
                }
                Err(nom::Err::Error(e)) | Err(nom::Err::Failure(e)) => {
                    let m = format!("corrupt block ({})", nom_kind(&e));
                    return Err(w.error(FileErrorKind::Corrupt, pos, m));
                }
            }
        }
    } else {
        let (rest, header) = match pcap_parser::parse_pcap_header(data) {
            Ok(v) => v,
            Err(nom::Err::Incomplete(_)) => {
                return Err(w.error(
                    FileErrorKind::Truncated,
                    0,
                    "file ends inside the file header".into(),
                ))
            }
            Err(_) => {
                return Err(w.error(
                    FileErrorKind::NotACapture,
                    0,
                    "not a pcap or pcapng file (unknown magic number)".into(),
                ))
            }
        };
        w.header(&header)?;
        // The "modified" format's records carry 8 more header bytes (and
        // pcap-parser reads them little-endian whatever the file header says).
        let (header_len, be) = if header.is_modified_format() {
            (24, false)
        } else {
            (16, header.is_bigendian())
        };
        let at = data.len() - rest.len();
        legacy_records(&mut w, data, at, header_len, be, &mut report, sink)?;
    }
    progress.fetch_add(data.len() as u64 - last_progress, Ordering::Relaxed);
    Ok(w.summary)
}

/// Walks the records of a legacy pcap file held in memory from byte `at`,
/// calling `report` with the offset after each record. A record is a fixed
/// header (`header_len` bytes: seconds, fraction, captured and original
/// length) and the captured bytes: the layout pcap-parser's frame parsers
/// read, without a parser call per record.
#[inline]
fn legacy_records<F: FnMut(&RawPacket)>(
    w: &mut Walker,
    data: &[u8],
    mut at: usize,
    header_len: usize,
    be: bool,
    report: &mut impl FnMut(u64),
    sink: &mut F,
) -> Result<(), FileError> {
    let word = |b: &[u8], o: usize| {
        let v = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if be {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    };
    let mut ahead = Readahead::new(at);
    while at < data.len() {
        ahead.advance(data, at);
        let pos = at as u64;
        let rest = &data[at..];
        if rest.len() < header_len {
            return Err(w.error(FileErrorKind::Truncated, pos, TRUNCATED.into()));
        }
        let caplen = word(rest, 8);
        w.check_caplen(caplen, pos)?;
        let end = header_len + caplen as usize;
        let Some(bytes) = rest.get(header_len..end) else {
            return Err(w.error(FileErrorKind::Truncated, pos, TRUNCATED.into()));
        };
        w.legacy_packet(word(rest, 0), word(rest, 4), bytes, word(rest, 12), sink);
        at += end;
        report(at as u64);
    }
    Ok(())
}

/// Keeps the CPU loading the lines of a capture held in memory a few KiB ahead
/// of the parser. Each record's place depends on the previous record's length,
/// so a plain walk waits for one memory load per record, one after another
/// (about as long as the whole rest of the analysis); the lines ahead, asked for
/// in order, arrive in parallel.
struct Readahead {
    /// The first byte not asked for yet.
    next: usize,
}

impl Readahead {
    /// How far ahead of the parser lines are asked for.
    const DISTANCE: usize = 4096;

    fn new(at: usize) -> Self {
        Readahead { next: at }
    }

    /// Asks for every line up to [`Self::DISTANCE`] past `at`.
    #[inline(always)]
    fn advance(&mut self, data: &[u8], at: usize) {
        let to = (at + Self::DISTANCE).min(data.len());
        while self.next < to {
            prefetch(data.as_ptr().wrapping_add(self.next));
            self.next += LINE;
        }
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
