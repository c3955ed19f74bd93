//! A capture file mapped in memory and read range by range, on as many
//! threads as there are ranges, with what the sequential reader gives: the
//! same packets, and the same error at a damaged or cut record or block.
//!
//! A legacy pcap range begins at a guessed record boundary
//! ([`super::split`]). A pcapng range begins at a guessed block boundary:
//! the first 4-byte aligned offset from which [`NG_CHAIN`] blocks in a row are
//! plausible (a known block type, a length that is a multiple of 4 within
//! 16 MiB, repeated at the block's end; a packet block's interface
//! described and its captured length within the block), or plausible blocks
//! reach the end exactly. A pcapng range past the first is read as if the
//! section had said what the file's first blocks say (byte order,
//! interfaces); the caller checks that it had ([`RangeRead::section`]) and
//! reads the range again when a section header or interface description in
//! the middle of the file made it wrong.
use super::mapped::{legacy_records, ng_blocks, MAX_BLOCK};
use super::split::{Landing, PcapLayout, SEARCH};
pub use super::walker::Section;
use super::walker::{enhanced_packet, u32_at, Walker};
use super::{is_gzip, FileError, RawPacket};
use crate::source::Input;
use pcap_parser::pcapng;
use pcap_parser::PcapBlockOwned;

/// Plausible blocks in a row that make a guessed pcapng block boundary.
pub const NG_CHAIN: usize = 4;

const SHB: u32 = 0x0a0d_0d0a;

/// How a mapped file's records are laid out.
enum Layout {
    Legacy(PcapLayout),
    /// pcapng, with what its first section says before its first packet.
    Ng(Section),
}

/// A capture file (legacy pcap or pcapng, uncompressed) mapped in memory.
pub struct MappedPcap {
    path: String,
    map: memmap2::Mmap,
    layout: Layout,
    format: &'static str,
}

/// What reading one range of a [`MappedPcap`] found.
#[derive(Debug)]
pub struct RangeRead {
    /// Where the walk stopped.
    pub landing: Landing,
    /// The error at a [`Landing::Stopped`], counting the packets before it
    /// from the range's start (add the packets of the ranges before).
    pub error: Option<FileError>,
    /// Records read.
    pub packets: u64,
    /// pcapng: what the section had said at the range's end.
    pub section: Option<Section>,
}

impl MappedPcap {
    /// `input` mapped, when it is a regular, uncompressed legacy pcap or
    /// pcapng file whose header the sequential reader takes; `None` for
    /// anything else (a stream, gzip, a file that cannot be opened), which
    /// the sequential reader reads (and reports the errors of).
    pub fn open(input: &Input) -> Option<MappedPcap> {
        let Input::Path(p) = input else { return None };
        let file = std::fs::File::open(p).ok()?;
        let md = file.metadata().ok()?;
        if !md.is_file() || md.len() < 24 {
            return None;
        }
        // SAFETY: as `read_capture`'s map: read-only and private; a file
        // truncated by another process while it is read raises SIGBUS.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        if is_gzip(&map) {
            return None;
        }
        let path = input.display();
        let mut w = Walker::new(&path, false);
        let layout = if map[..4] == SHB.to_le_bytes() {
            Layout::Ng(first_section(&mut w, &map)?)
        } else {
            let layout = PcapLayout::of(&map)?;
            let (_, header) = pcap_parser::parse_pcap_header(&map).ok()?;
            w.header(&header).ok()?;
            Layout::Legacy(layout)
        };
        let format = w.summary.format;
        Some(MappedPcap {
            path,
            map,
            layout,
            format,
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The whole file.
    pub fn data(&self) -> &[u8] {
        &self.map
    }

    /// The file's format, as [`super::FileSummary::format`] names it.
    pub fn format(&self) -> &'static str {
        self.format
    }

    /// Where the first range begins: the first record of a legacy pcap file,
    /// the start of a pcapng one.
    pub fn first(&self) -> usize {
        match &self.layout {
            Layout::Legacy(l) => l.first,
            Layout::Ng(_) => 0,
        }
    }

    /// The first offset at or after `from` that looks like a record or
    /// block boundary, within [`SEARCH`] bytes.
    pub fn guess(&self, from: usize) -> Option<usize> {
        match &self.layout {
            Layout::Legacy(l) => l.guess_boundary(&self.map, from),
            Layout::Ng(s) => ng_guess(&self.map, from, s),
        }
    }

    /// What a range beginning at `start` is read as if the section had said
    /// (pcapng, past the first range): what the file's first blocks say.
    pub fn assumed(&self, start: usize) -> Option<Section> {
        match &self.layout {
            Layout::Ng(s) if start != 0 => Some(s.clone()),
            _ => None,
        }
    }

    /// Reads the records or blocks from `start` (a boundary) that begin
    /// before `end`, calling `sink` for each packet; a pcapng range past the
    /// first reads as if the section had said `section`.
    pub fn read_range(
        &self,
        start: usize,
        end: usize,
        section: Option<&Section>,
        sink: &mut impl FnMut(&RawPacket),
    ) -> RangeRead {
        let mut w = Walker::new(&self.path, false);
        let walked = match &self.layout {
            Layout::Legacy(l) => {
                if let Ok((_, h)) = pcap_parser::parse_pcap_header(&self.map) {
                    let _ = w.header(&h);
                }
                let span = start.max(l.first)..end;
                legacy_records(
                    &mut w,
                    &self.map,
                    span,
                    l.header_len,
                    l.big_endian,
                    &mut |_| {},
                    sink,
                )
            }
            Layout::Ng(_) => {
                if let Some(s) = section {
                    w.resume(s);
                }
                ng_blocks(&mut w, &self.map, start..end, &mut |_| {}, sink)
            }
        };
        let section = matches!(self.layout, Layout::Ng(_)).then(|| w.section());
        let packets = w.summary.packets;
        match walked {
            Ok(at) => RangeRead {
                landing: Landing::At(at),
                error: None,
                packets,
                section,
            },
            Err(e) => RangeRead {
                landing: Landing::Stopped(e.offset as usize),
                error: Some(e),
                packets,
                section,
            },
        }
    }
}

/// What a pcapng file's blocks before its first packet say (its first
/// section's byte order and interfaces); `None` when one of them fails.
fn first_section(w: &mut Walker, data: &[u8]) -> Option<Section> {
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        if enhanced_packet(rest, w.big_endian).is_some() {
            break;
        }
        let parsed = if w.big_endian {
            pcapng::parse_block_be(rest)
        } else {
            pcapng::parse_block_le(rest)
        };
        let (r, block) = parsed.ok()?;
        if matches!(
            block,
            pcapng::Block::EnhancedPacket(_) | pcapng::Block::SimplePacket(_)
        ) {
            break;
        }
        w.block(PcapBlockOwned::NG(block), at as u64, &mut |_| {})
            .ok()?;
        at = data.len() - r.len();
    }
    Some(w.section())
}

/// The offset after the pcapng block at `at` when it is plausible in a
/// section that has said `s` (see the module's text).
fn ng_block_at(data: &[u8], at: usize, s: &Section) -> Option<usize> {
    let be = s.big_endian();
    if data.len().saturating_sub(at) < 12 {
        return None;
    }
    let (ty, len) = (u32_at(data, at, be), u32_at(data, at + 4, be));
    if len < 12 || len % 4 != 0 || len > MAX_BLOCK {
        return None;
    }
    let len = len as usize;
    if at + len > data.len() || u32_at(data, at + len - 4, be) as usize != len {
        return None;
    }
    let known = match ty {
        // Enhanced packet: a described interface, the packet within the block.
        6 => {
            len >= 32
                && (u32_at(data, at + 8, be) as usize) < s.interfaces()
                && u32_at(data, at + 20, be) as usize <= len - 32
        }
        // Simple packet, interface description, name resolution, interface
        // statistics, section header, decryption secrets, custom blocks.
        3 | 1 | 4 | 5 | SHB | 0x0a | 0x0bad | 0x4000_0bad => true,
        _ => false,
    };
    known.then_some(at + len)
}

/// The first 4-byte aligned offset at or after `from` from which
/// [`NG_CHAIN`] plausible blocks follow in a row, or fewer that end exactly
/// at the end of the data; within [`SEARCH`] bytes.
fn ng_guess(data: &[u8], from: usize, s: &Section) -> Option<usize> {
    let from = from.next_multiple_of(4);
    let to = from.saturating_add(SEARCH).min(data.len());
    (from..to).step_by(4).find(|&at| {
        let mut pos = at;
        for _ in 0..NG_CHAIN {
            if pos == data.len() {
                return pos > at;
            }
            match ng_block_at(data, pos, s) {
                Some(next) => pos = next,
                None => return false,
            }
        }
        true
    })
}
