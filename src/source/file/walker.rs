//! What a capture file holds, whichever way its bytes arrive: the file
//! header, pcapng sections and interfaces, and each packet turned into a
//! [`RawPacket`] with its link type and time.
use super::{FileError, FileErrorKind, FileSummary, RawPacket, UNKNOWN_INTERFACE};
use crate::decode::LinkType;
use crate::source::MAX_SNAPLEN;
use pcap_parser::nom;
use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError};
use std::sync::Arc;

/// A pcapng interface, as its description block says.
#[derive(Debug, Clone, PartialEq, Eq)]
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
pub(super) fn u32_at(b: &[u8], o: usize, big_endian: bool) -> u32 {
    let v = [b[o], b[o + 1], b[o + 2], b[o + 3]];
    if big_endian {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

/// An Enhanced Packet Block's fields, read in place by [`enhanced_packet`].
pub(super) struct Epb<'a> {
    /// The whole block's length: the next block starts there.
    pub(super) len: usize,
    pub(super) if_id: u32,
    pub(super) ts_high: u32,
    pub(super) ts_low: u32,
    /// The captured bytes (without the padding).
    pub(super) data: &'a [u8],
    pub(super) origlen: u32,
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
pub(super) fn enhanced_packet(b: &[u8], big_endian: bool) -> Option<Epb<'_>> {
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

/// What a pcapng section has said so far: its byte order and interfaces.
/// Reading from the middle of a file starts from one ([`Walker::resume`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    big_endian: bool,
    /// Shared with the walkers that resume it: resuming copies nothing.
    ifaces: Arc<Vec<Iface>>,
}

impl Section {
    pub(super) fn big_endian(&self) -> bool {
        self.big_endian
    }

    /// Interfaces described.
    pub(super) fn interfaces(&self) -> usize {
        self.ifaces.len()
    }
}

/// Turns pcap-parser blocks into [`RawPacket`]s, whichever way the bytes arrive.
pub(super) struct Walker<'s> {
    path: &'s str,
    pub(super) summary: FileSummary,
    legacy_link: LinkType,
    legacy_res: u64,
    /// The legacy file header's snapshot length.
    legacy_snaplen: u32,
    ifaces: Vec<Iface>,
    /// The interfaces of a section resumed ([`Self::resume`]) and not
    /// changed since: used instead of `ifaces`, without a copy.
    resumed: Option<Arc<Vec<Iface>>>,
    /// The current pcapng section's byte order.
    pub(super) big_endian: bool,
}

impl<'s> Walker<'s> {
    pub(super) fn new(path: &'s str, compressed: bool) -> Self {
        Walker {
            path,
            summary: FileSummary {
                compressed,
                ..Default::default()
            },
            legacy_link: LinkType(0),
            legacy_res: 1_000_000,
            legacy_snaplen: 0,
            ifaces: Vec::new(),
            resumed: None,
            big_endian: false,
        }
    }

    /// Goes on reading a pcapng file from the middle of a section that has
    /// said `s` so far.
    pub(super) fn resume(&mut self, s: &Section) {
        self.summary.format = "pcapng";
        self.big_endian = s.big_endian;
        self.resumed = Some(s.ifaces.clone());
    }

    /// The interfaces described so far in the current section.
    #[inline]
    fn ifaces(&self) -> &[Iface] {
        match &self.resumed {
            Some(shared) => shared,
            None => &self.ifaces,
        }
    }

    /// The interfaces, to change (copied from a resumed section first).
    fn ifaces_mut(&mut self) -> &mut Vec<Iface> {
        if let Some(shared) = self.resumed.take() {
            self.ifaces = shared.as_ref().clone();
        }
        &mut self.ifaces
    }

    /// What the current pcapng section has said so far.
    pub(super) fn section(&self) -> Section {
        Section {
            big_endian: self.big_endian,
            ifaces: match &self.resumed {
                Some(shared) => shared.clone(),
                None => Arc::new(self.ifaces.clone()),
            },
        }
    }

    pub(super) fn error(&self, kind: FileErrorKind, offset: u64, message: String) -> FileError {
        FileError {
            path: self.path.to_string(),
            kind,
            offset,
            packets_before: self.summary.packets,
            message,
            compressed: self.summary.compressed,
            format: self.summary.format,
        }
    }

    /// The error for a record of `caplen` captured bytes (and `wire_len` on
    /// the wire) at `pos` that runs past the end of the file: the file was cut
    /// short there when the record is plausible (no longer than the file's
    /// snapshot length, nor than the packet), else the length is damaged.
    pub(super) fn cut_record(
        &self,
        pos: u64,
        caplen: u32,
        wire_len: u32,
        left: usize,
    ) -> FileError {
        let fits = self.legacy_snaplen == 0 || caplen <= self.legacy_snaplen;
        if fits && caplen <= wire_len {
            return self.error(FileErrorKind::Truncated, pos, super::TRUNCATED.into());
        }
        let m = format!(
            "record claims {caplen} captured bytes ({wire_len} on the wire, snapshot length {}) \
             but only {left} follow its header: a damaged length",
            self.legacy_snaplen
        );
        self.error(FileErrorKind::Corrupt, pos, m)
    }

    /// Takes a pcap file header; versions libpcap refuses are refused here too
    /// (their record layout is not the one parsed).
    pub(super) fn header(&mut self, h: &pcap_parser::PcapHeader) -> Result<(), FileError> {
        if h.version_major != 2 || h.version_minor > 4 {
            let m = format!(
                "unsupported pcap file format version {}.{}",
                h.version_major, h.version_minor
            );
            return Err(self.error(FileErrorKind::NotACapture, 0, m));
        }
        self.legacy_link = LinkType::from_header_field(h.network.0 as u32);
        self.legacy_snaplen = h.snaplen;
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
    pub(super) fn check_caplen(&self, caplen: u32, pos: u64) -> Result<(), FileError> {
        if caplen > MAX_SNAPLEN {
            let m = format!("record claims {caplen} captured bytes, more than {MAX_SNAPLEN}");
            return Err(self.error(FileErrorKind::Corrupt, pos, m));
        }
        Ok(())
    }

    /// Hands one legacy pcap record to `sink` (`frac`: the fraction of a
    /// second in the file's resolution).
    #[inline]
    pub(super) fn legacy_packet<F: FnMut(&RawPacket) + ?Sized>(
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
    pub(super) fn enhanced<F: FnMut(&RawPacket) + ?Sized>(&mut self, epb: &Epb, sink: &mut F) {
        self.summary.packets += 1;
        let (link, ts_ns) = match self.ifaces().get(epb.if_id as usize) {
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
    pub(super) fn block(
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
                self.ifaces_mut().clear();
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                self.ifaces_mut().push(Iface {
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
                let link = match self.ifaces().first() {
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

/// What pcap-parser's error says, in words.
pub(super) fn nom_kind(e: &PcapError<&[u8]>) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_parser::pcapng;
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
