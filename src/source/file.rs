//! The capture-file reader: pcap and pcapng through `pcap-parser`'s streaming
//! reader over one 4 MiB buffer, gzip through `flate2`.
use super::pcap_format::MAX_SNAPLEN;
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

/// The 32-bit word at byte `o` of `b`, in the capture's byte order.
#[inline(always)]
fn u32_at(b: &[u8], o: usize, big_endian: bool) -> u32 {
    let v = [b[o], b[o + 1], b[o + 2], b[o + 3]];
    if big_endian {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

/// An Enhanced Packet Block's fields, read in place by [`enhanced_packet`].
struct Epb<'a> {
    /// The whole block's length: the next block starts there.
    len: usize,
    if_id: u32,
    ts_high: u32,
    ts_low: u32,
    /// The captured bytes (without the padding).
    data: &'a [u8],
    origlen: u32,
}

/// The Enhanced Packet Block at the start of `b` (a pcapng section's blocks,
/// `big_endian` as its header says), when it is one that pcap-parser would
/// parse without error; `None` for any other block, which then goes through
/// pcap-parser and its errors.
///
/// Nearly every block of a pcapng file is one of these. pcap-parser builds a
/// vector of the block's options (an allocation per packet when a tool wrote
/// any: direction flags, drop counts, comments) that nothing here reads; read in
/// place, a pcapng file costs about what a pcap file does. The checks are the
/// ones pcap-parser makes (`ng_block_parser`, the block's `inner_parse`): a
/// block of at least 32 bytes that fits in `b`, the same length at both ends,
/// and a captured length that fits in the block once padded to 4 bytes. Its
/// options are not parsed: pcap-parser stops at the first that does not parse
/// and keeps the block.
#[inline]
fn enhanced_packet(b: &[u8], big_endian: bool) -> Option<Epb<'_>> {
    const EPB: u32 = 6;
    let head = b.get(..32)?;
    let word = |w: &[u8], o: usize| u32_at(w, o, big_endian);
    let len = word(head, 4) as usize;
    if word(head, 0) != EPB || len < 32 || len > b.len() || word(b, len - 4) as usize != len {
        return None;
    }
    let caplen = word(head, 20);
    let padded = (caplen as usize + 3) & !3;
    if caplen >= u32::MAX - 4 || padded > len - 32 {
        return None;
    }
    Some(Epb {
        len,
        if_id: word(head, 8),
        ts_high: word(head, 12),
        ts_low: word(head, 16),
        data: &b[28..28 + caplen as usize],
        origlen: word(head, 24),
    })
}

/// Turns pcap-parser blocks into [`RawPacket`]s, whichever way the bytes arrive.
struct Walker<'s> {
    path: &'s str,
    summary: FileSummary,
    legacy_link: LinkType,
    legacy_res: u64,
    ifaces: Vec<Iface>,
    /// The current pcapng section's byte order.
    big_endian: bool,
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
            big_endian: false,
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
        if caplen > MAX_SNAPLEN {
            let m = format!("record claims {caplen} captured bytes, more than {MAX_SNAPLEN}");
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

    /// Hands one Enhanced Packet Block's packet to `sink`.
    #[inline]
    fn enhanced<F: FnMut(&RawPacket) + ?Sized>(&mut self, epb: &Epb, sink: &mut F) {
        self.summary.packets += 1;
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
            data: epb.data,
            wire_len: epb.origlen,
            interface: epb.if_id,
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
                self.big_endian = shb.big_endian();
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
                let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                self.enhanced(
                    &Epb {
                        len: 0,
                        if_id: epb.if_id,
                        ts_high: epb.ts_high,
                        ts_low: epb.ts_low,
                        data,
                        origlen: epb.origlen,
                    },
                    sink,
                );
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
        let mut ahead = Readahead::new(0);
        while !rest.is_empty() {
            let pos = offset_of(rest);
            ahead.advance(data, pos as usize);
            // A section header comes first (the magic number above), so the
            // byte order is known before any packet block.
            if let Some(epb) = enhanced_packet(rest, w.big_endian) {
                w.enhanced(&epb, sink);
                rest = &rest[epb.len..];
                report(offset_of(rest));
                continue;
            }
            let parsed = if w.big_endian {
                pcapng::parse_block_be(rest)
            } else {
                pcapng::parse_block_le(rest)
            };
            match parsed {
                Ok((r, block)) => {
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
    let word = |b: &[u8], o: usize| u32_at(b, o, be);
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

    /// Asks for every line up to [`Self::DISTANCE`] past `at`, four at a time
    /// (a loop test per line was an eighth of the walk's instructions); the
    /// last four may reach past the data, which a prefetch may.
    #[inline(always)]
    fn advance(&mut self, data: &[u8], at: usize) {
        let to = (at + Self::DISTANCE).min(data.len());
        while self.next < to {
            let p = data.as_ptr().wrapping_add(self.next);
            prefetch(p);
            prefetch(p.wrapping_add(LINE));
            prefetch(p.wrapping_add(2 * LINE));
            prefetch(p.wrapping_add(3 * LINE));
            self.next += 4 * LINE;
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

#[cfg(test)]
mod tests {
    use super::*;
    use portflow_synth::Rng;

    /// An Enhanced Packet Block as a capture tool writes it, in either byte
    /// order: `caplen` bytes of packet, padding, and options when `opts`.
    fn block(big_endian: bool, caplen: usize, opts: bool) -> Vec<u8> {
        let w = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut b = Vec::new();
        b.extend_from_slice(&w(6));
        b.extend_from_slice(&[0; 4]);
        for v in [
            1,
            0x0006_1234,
            0x89ab_cdef,
            caplen as u32,
            caplen as u32 + 7,
        ] {
            b.extend_from_slice(&w(v));
        }
        b.extend((0..caplen).map(|i| i as u8));
        b.resize(b.len().next_multiple_of(4), 0);
        if opts {
            // epb_flags (code 2, length 4), then opt_endofopt.
            let code_len = if big_endian {
                [0, 2, 0, 4]
            } else {
                [2, 0, 4, 0]
            };
            b.extend_from_slice(&code_len);
            b.extend_from_slice(&w(1));
            b.extend_from_slice(&[0; 4]);
        }
        let len = b.len() as u32 + 4;
        b[4..8].copy_from_slice(&w(len));
        b.extend_from_slice(&w(len));
        b
    }

    /// What pcap-parser makes of the block at the start of `b`: the Enhanced
    /// Packet Block's fields and length, when it parses as one.
    fn by_pcap_parser(b: &[u8], big_endian: bool) -> Option<(usize, u32, u32, u32, Vec<u8>, u32)> {
        let parsed = if big_endian {
            pcapng::parse_block_be(b)
        } else {
            pcapng::parse_block_le(b)
        };
        match parsed {
            Ok((rest, Block::EnhancedPacket(e))) => {
                let data = e.data[..(e.caplen as usize).min(e.data.len())].to_vec();
                Some((
                    b.len() - rest.len(),
                    e.if_id,
                    e.ts_high,
                    e.ts_low,
                    data,
                    e.origlen,
                ))
            }
            _ => None,
        }
    }

    fn in_place(b: &[u8], big_endian: bool) -> Option<(usize, u32, u32, u32, Vec<u8>, u32)> {
        enhanced_packet(b, big_endian).map(|e| {
            (
                e.len,
                e.if_id,
                e.ts_high,
                e.ts_low,
                e.data.to_vec(),
                e.origlen,
            )
        })
    }

    #[test]
    fn a_packet_block_read_in_place_is_what_pcap_parser_reads() {
        for big_endian in [false, true] {
            for (caplen, opts) in [(0, false), (1, true), (60, false), (61, true), (1514, true)] {
                let b = block(big_endian, caplen, opts);
                let got = in_place(&b, big_endian).expect("a well-formed block");
                assert_eq!(got.0, b.len());
                assert_eq!(got.4.len(), caplen);
                assert_eq!(Some(got), by_pcap_parser(&b, big_endian));
                // Another block after it does not change what is read.
                let mut two = b.clone();
                two.extend_from_slice(&block(big_endian, 3, false));
                assert_eq!(in_place(&two, big_endian), by_pcap_parser(&two, big_endian));
            }
        }
    }

    #[test]
    fn a_damaged_packet_block_is_left_to_pcap_parser() {
        // Blocks with bytes changed in their fixed fields, lengths and
        // options, or cut short: whatever is read in place, pcap-parser reads
        // the same, and whatever pcap-parser reads as a packet block, so is it
        // in place (so every error still comes from pcap-parser).
        let mut rng = Rng::new(7);
        let mut accepted = 0;
        for round in 0..20_000 {
            let big_endian = round % 2 == 1;
            let mut b = block(
                big_endian,
                rng.range(0, 80) as usize,
                rng.next_u64() & 1 == 0,
            );
            for _ in 0..rng.range(1, 3) {
                let at = match rng.range(0, 3) {
                    // The type, lengths and captured length, where the checks are.
                    0 => [0, 4, 5, 6, 7, 20, 21, 22, 23][rng.range(0, 8) as usize],
                    1 => b.len() - 1 - rng.range(0, 3) as usize,
                    _ => rng.range(0, b.len() as u64 - 1) as usize,
                };
                b[at] = match rng.range(0, 2) {
                    0 => b[at].wrapping_add(rng.range(1, 8) as u8),
                    1 => b[at].wrapping_sub(rng.range(1, 8) as u8),
                    _ => rng.next_u64() as u8,
                };
            }
            if rng.range(0, 3) == 0 {
                b.truncate(rng.range(0, b.len() as u64) as usize);
            }
            let ours = in_place(&b, big_endian);
            accepted += ours.is_some() as u32;
            assert_eq!(
                ours,
                by_pcap_parser(&b, big_endian),
                "round {round}: {b:02x?}"
            );
        }
        // Many changes (the packet bytes, the timestamps) leave a good block.
        assert!(accepted > 2_000, "{accepted}");
    }
}
