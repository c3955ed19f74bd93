//! The capture-file reader: pcap and pcapng through `pcap-parser`'s streaming
//! reader over one 4 MiB buffer, gzip through `flate2`.
use super::Input;
use crate::decode::LinkType;
use pcap_parser::pcapng::Block;
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

/// Reads one capture, calling `sink` for every packet in file order.
///
/// `progress` is advanced by the bytes read from the underlying file (compressed
/// bytes for gzip).
pub fn read_capture(
    input: &Input,
    progress: Arc<AtomicU64>,
    sink: &mut dyn FnMut(&RawPacket),
) -> Result<FileSummary, FileError> {
    let path = input.display();
    let io_err = |e: io::Error| FileError {
        path: path.clone(),
        kind: FileErrorKind::Io,
        offset: 0,
        packets_before: 0,
        message: e.to_string(),
        compressed: false,
    };
    let raw: Box<dyn Read + Send> = match input {
        Input::Path(p) => {
            let md = std::fs::metadata(p).map_err(io_err)?;
            if md.is_dir() {
                return Err(io_err(io::Error::other("is a folder")));
            }
            Box::new(std::fs::File::open(p).map_err(io_err)?)
        }
        Input::Stdin => Box::new(io::stdin()),
    };
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    let head = buffered.fill_buf().map_err(io_err)?;
    let compressed = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
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
    read_stream(&path, compressed, FillFirst { inner: tracked }, sink).map_err(|mut e| {
        if e.kind == FileErrorKind::Io {
            if let Some(msg) = last_error.lock().ok().and_then(|m| m.clone()) {
                e.message = format!("read error: {msg}");
            }
        }
        e
    })
}

fn read_stream<R: Read + Send>(
    path: &str,
    compressed: bool,
    stream: FillFirst<Tracked<R>>,
    sink: &mut dyn FnMut(&RawPacket),
) -> Result<FileSummary, FileError> {
    let mut summary = FileSummary {
        compressed,
        ..Default::default()
    };
    let err = |kind, offset: u64, packets: u64, message: String| FileError {
        path: path.to_string(),
        kind,
        offset,
        packets_before: packets,
        message,
        compressed,
    };
    let mut reader = match pcap_parser::create_reader(READ_BUFFER, stream) {
        Ok(r) => r,
        Err(PcapError::HeaderNotRecognized) => {
            return Err(err(
                FileErrorKind::NotACapture,
                0,
                0,
                "not a pcap or pcapng file (unknown magic number)".into(),
            ))
        }
        Err(PcapError::ReadError) => {
            return Err(err(
                FileErrorKind::Io,
                0,
                0,
                "read error (not a readable file, or bad gzip data)".into(),
            ))
        }
        Err(PcapError::Incomplete(_)) | Err(PcapError::UnexpectedEof) | Err(PcapError::Eof) => {
            return Err(err(
                FileErrorKind::Truncated,
                0,
                0,
                "file ends inside the file header".into(),
            ))
        }
        Err(e) => {
            return Err(err(
                FileErrorKind::Corrupt,
                0,
                0,
                format!("bad file header ({e:?})"),
            ))
        }
    };
    let mut legacy_link = LinkType(0);
    let mut legacy_res = 1_000_000u64;
    let mut ifaces: Vec<Iface> = Vec::new();
    loop {
        let pos = reader.consumed() as u64;
        match reader.next() {
            Ok((len, block)) => {
                match block {
                    PcapBlockOwned::Legacy(b) => {
                        if b.caplen > MAX_CAPLEN {
                            return Err(err(
                                FileErrorKind::Corrupt,
                                pos,
                                summary.packets,
                                format!(
                                    "record claims {} captured bytes, more than {MAX_CAPLEN}",
                                    b.caplen
                                ),
                            ));
                        }
                        summary.packets += 1;
                        let ts_ns = (b.ts_sec as u64) * 1_000_000_000
                            + units_to_ns(b.ts_usec as u64, legacy_res);
                        let data = &b.data[..(b.caplen as usize).min(b.data.len())];
                        sink(&RawPacket {
                            link: legacy_link,
                            ts_ns,
                            data,
                            wire_len: b.origlen,
                            interface: 0,
                        });
                    }
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy_link = LinkType::from_header_field(h.network.0 as u32);
                        summary.format = if h.is_modified_format() {
                            "pcap-modified"
                        } else if h.is_nanosecond_precision() {
                            legacy_res = 1_000_000_000;
                            "pcap-ns"
                        } else {
                            "pcap"
                        };
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        summary.format = "pcapng";
                        ifaces.clear();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push(Iface {
                            link: LinkType(idb.linktype.0 as u32),
                            resolution: idb.ts_resolution().unwrap_or(1_000_000),
                            offset_s: idb.ts_offset(),
                        });
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        summary.packets += 1;
                        let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                        match ifaces.get(epb.if_id as usize) {
                            Some(i) => {
                                let units = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                                let ts_ns = units_to_ns(units, i.resolution)
                                    .wrapping_add((i.offset_s as u64).wrapping_mul(1_000_000_000));
                                sink(&RawPacket {
                                    link: i.link,
                                    ts_ns,
                                    data,
                                    wire_len: epb.origlen,
                                    interface: epb.if_id,
                                });
                            }
                            None => {
                                summary.unknown_interface += 1;
                                sink(&RawPacket {
                                    link: LinkType(u32::MAX),
                                    ts_ns: 0,
                                    data,
                                    wire_len: epb.origlen,
                                    interface: epb.if_id,
                                });
                            }
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        summary.packets += 1;
                        let data = &spb.data[..(spb.origlen as usize).min(spb.data.len())];
                        let link = ifaces.first().map(|i| i.link).unwrap_or(LinkType(u32::MAX));
                        if ifaces.is_empty() {
                            summary.unknown_interface += 1;
                        }
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
                reader.consume(len);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    return Err(err(
                        FileErrorKind::Io,
                        pos,
                        summary.packets,
                        "read error".into(),
                    ));
                }
            }
            Err(PcapError::UnexpectedEof) => {
                return Err(err(
                    FileErrorKind::Truncated,
                    pos,
                    summary.packets,
                    "file ends inside a record (truncated capture)".into(),
                ))
            }
            Err(PcapError::BufferTooSmall) => {
                return Err(err(
                    FileErrorKind::Corrupt,
                    pos,
                    summary.packets,
                    format!(
                        "record claims more than {} MiB (corrupt length field)",
                        READ_BUFFER >> 20
                    ),
                ))
            }
            Err(PcapError::ReadError) => {
                return Err(err(
                    FileErrorKind::Io,
                    pos,
                    summary.packets,
                    "read error (I/O or bad gzip data)".into(),
                ))
            }
            Err(e) => {
                let what = match e {
                    PcapError::NomError(_, k) => format!("{k:?}"),
                    PcapError::OwnedNomError(_, k) => format!("{k:?}"),
                    other => format!("{other:?}"),
                };
                return Err(err(
                    FileErrorKind::Corrupt,
                    pos,
                    summary.packets,
                    format!("corrupt record or block ({what})"),
                ));
            }
        }
    }
    Ok(summary)
}
