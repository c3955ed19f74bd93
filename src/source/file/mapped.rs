//! A capture held in memory (a mapped file): legacy pcap records walked by a
//! loop of portflow's own, pcapng Enhanced Packet Blocks read in place, every
//! other block through pcap-parser, with the cache lines ahead of the parser
//! asked for early.
use super::walker::{enhanced_packet, nom_kind, u32_at, Walker};
use super::{FileError, FileErrorKind, FileSummary, RawPacket, TRUNCATED};
use crate::hint::{prefetch, LINE};
use crate::source::prefault::MapCursor;
use pcap_parser::nom;
use pcap_parser::pcapng;
use pcap_parser::PcapBlockOwned;
use std::sync::atomic::{AtomicU64, Ordering};

/// Parses a whole capture held in memory. When it is a file mapping, the
/// position is published every 16 MiB for the prefault helper, which releases
/// the pages parsed (or the reader does, if the helper falls behind: resident
/// memory does not grow with the file).
pub(super) fn read_slice<F: FnMut(&RawPacket)>(
    path: &str,
    data: &[u8],
    map: Option<&MapCursor>,
    progress: &AtomicU64,
    sink: &mut F,
) -> Result<FileSummary, FileError> {
    const PUBLISH_EVERY: u64 = 16 << 20;
    let mut w = Walker::new(path, false);
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
        ng_blocks(&mut w, data, 0..data.len(), &mut report, sink)?;
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
        let all = data.len() - rest.len()..data.len();
        legacy_records(&mut w, data, all, header_len, be, &mut report, sink)?;
    }
    progress.fetch_add(data.len() as u64 - last_progress, Ordering::Relaxed);
    Ok(w.summary)
}

/// Walks the blocks of a pcapng file held in memory from byte `span.start`
/// (a block boundary; `w` knows the section so far) while they begin before
/// `span.end`, calling `report` with the offset after each block; returns
/// where it stopped (the first block at or after `span.end`, or the end of
/// the data), or the error the file gives at a damaged or cut block.
pub(super) fn ng_blocks<F: FnMut(&RawPacket)>(
    w: &mut Walker,
    data: &[u8],
    span: std::ops::Range<usize>,
    report: &mut impl FnMut(u64),
    sink: &mut F,
) -> Result<usize, FileError> {
    let mut at = span.start;
    let mut ahead = Readahead::new(at);
    while at < span.end && at < data.len() {
        let rest = &data[at..];
        let pos = at as u64;
        ahead.advance(data, at);
        // A section header comes first, so the byte order is known before
        // any packet block.
        if let Some(epb) = enhanced_packet(rest, w.big_endian) {
            w.enhanced(&epb, sink);
            at += epb.len;
            report(at as u64);
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
                at = data.len() - r.len();
                report(at as u64);
            }
            Err(nom::Err::Incomplete(_)) => return Err(cut_block(w, rest, pos)),
            Err(nom::Err::Error(e)) | Err(nom::Err::Failure(e)) => {
                let m = format!("corrupt block ({})", nom_kind(&e));
                return Err(w.error(FileErrorKind::Corrupt, pos, m));
            }
        }
    }
    Ok(at)
}

/// The largest pcapng block taken as cut short rather than damaged (libpcap's
/// limit on a block).
pub(super) const MAX_BLOCK: u32 = 16 << 20;

/// The error for a pcapng block at `pos` (`rest` from there to the end) that
/// pcap-parser found incomplete: the file was cut short there when the block
/// runs past the end with a length a block can have (a multiple of 4, 12 to
/// 16 MiB, or the length not there yet); a block that is all there but whose
/// inner lengths run past it, or an impossible length, is damage.
fn cut_block(w: &Walker, rest: &[u8], pos: u64) -> FileError {
    if rest.len() >= 8 {
        let len = u32_at(rest, 4, w.big_endian);
        if !(12..=MAX_BLOCK).contains(&len) || !len.is_multiple_of(4) {
            let m = format!("corrupt block (a block cannot be {len} bytes long)");
            return w.error(FileErrorKind::Corrupt, pos, m);
        }
        if len as usize <= rest.len() {
            let m = "corrupt block (lengths inside the block run past its end)".into();
            return w.error(FileErrorKind::Corrupt, pos, m);
        }
    }
    w.error(FileErrorKind::Truncated, pos, TRUNCATED.into())
}

/// Walks the records of a legacy pcap file held in memory from byte
/// `span.start` (a record boundary) while they begin before `span.end`, calling `report` with
/// the offset after each record; returns where it stopped (the first record
/// at or after `end`, or the end of the data), or the error the file gives
/// at a damaged or cut record. A record is a fixed header (`header_len`
/// bytes: seconds, fraction, captured and original length) and the captured
/// bytes: the layout pcap-parser's frame parsers read, without a parser call
/// per record.
#[inline]
pub(super) fn legacy_records<F: FnMut(&RawPacket)>(
    w: &mut Walker,
    data: &[u8],
    span: std::ops::Range<usize>,
    header_len: usize,
    be: bool,
    report: &mut impl FnMut(u64),
    sink: &mut F,
) -> Result<usize, FileError> {
    let word = |b: &[u8], o: usize| u32_at(b, o, be);
    let (mut at, end) = (span.start, span.end);
    let mut ahead = Readahead::new(at);
    while at < end && at < data.len() {
        ahead.advance(data, at);
        let pos = at as u64;
        let rest = &data[at..];
        if rest.len() < header_len {
            return Err(w.error(FileErrorKind::Truncated, pos, TRUNCATED.into()));
        }
        let caplen = word(rest, 8);
        w.check_caplen(caplen, pos)?;
        let stop = header_len + caplen as usize;
        let Some(bytes) = rest.get(header_len..stop) else {
            let left = rest.len() - header_len;
            return Err(w.cut_record(pos, caplen, word(rest, 12), left));
        };
        w.legacy_packet(word(rest, 0), word(rest, 4), bytes, word(rest, 12), sink);
        at += stop;
        report(at as u64);
    }
    Ok(at)
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
    /// (a loop test per line would cost as much as the walk's own work); the
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
