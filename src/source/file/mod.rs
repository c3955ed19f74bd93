//! Capture files: pcap (both byte orders, micro- and nanosecond, the
//! "modified" format), pcapng (any number of sections and interfaces, each
//! with its own link type and time resolution), gzip-compressed or not, from
//! a path or standard input. Packets go to a callback as [`RawPacket`]s
//! borrowed from the file's bytes: no copy and no allocation per packet.
//!
//! Three ways in, one account of what a file holds (`walker`):
//! - `mapped`: a regular uncompressed file is memory-mapped and parsed in
//!   place: legacy pcap records by a loop of portflow's own, pcapng's Enhanced
//!   Packet Blocks in place and every other block by pcap-parser;
//! - `stream`: gzip, standard input and anything that cannot be mapped go
//!   through pcap-parser's buffered reader;
//! - [`read_bytes`] and [`read_stream_bytes`] read a capture held in memory
//!   either way (the fuzz targets compare the two).
//!
//! A file-level problem (bad magic, a record past the end, an impossible
//! length) stops the file with a [`FileError`] naming it, the byte offset and
//! the packet number.

mod mapped;
pub mod ranges;
pub mod split;
mod stream;
mod walker;

use super::Input;
use crate::decode::LinkType;
use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

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
    /// The file ends inside its last record, whose header is plausible: a
    /// capture cut short (killed while writing). Everything before the cut
    /// was read.
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
    /// The file's format as far as it was read (see [`FileSummary::format`]).
    pub format: &'static str,
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

/// The link type given to packets of a pcapng interface that was never described.
pub const UNKNOWN_INTERFACE: LinkType = LinkType(u32::MAX);

/// The message of a file that ends inside a record.
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
        format: "",
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
                        return crate::source::prefault::with_prefault(&map, |cursor| {
                            mapped::read_slice(&path, &map, Some(cursor), &progress, sink)
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
    mapped::read_slice(path, data, None, &AtomicU64::new(0), &mut { sink })
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
    stream::read_from_with(path, cursor, Arc::default(), buffer, sink)
}

/// Reads a capture arriving as a stream (standard input, gzip, or a file that
/// cannot be mapped), naming it `path` in errors.
pub fn read_from(
    path: &str,
    raw: impl Read + Send + 'static,
    progress: Arc<AtomicU64>,
    sink: &mut dyn FnMut(&RawPacket),
) -> Result<FileSummary, FileError> {
    stream::read_from_with(path, raw, progress, READ_BUFFER, sink)
}
