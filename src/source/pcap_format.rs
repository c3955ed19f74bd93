//! The legacy pcap file format as portflow writes it (`capture -w`, and the
//! test-traffic generator): a 24-byte file header, then one record per
//! packet, a 16-byte header and the captured bytes.
use crate::decode::LinkType;

/// libpcap's largest snapshot length (`MAXIMUM_SNAPLEN`): the most bytes a
/// capture keeps of a packet, and the most a record of a file may hold.
pub const MAX_SNAPLEN: u32 = 262_144;

/// A file header's magic number, microsecond timestamps.
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// A file header's magic number, nanosecond timestamps.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;

/// Bytes of a record header: seconds, fraction, captured and original length.
pub const RECORD_HEADER: usize = 16;

/// How a pcap file is written: byte order and timestamp resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcapFormat {
    pub big_endian: bool,
    /// Nanosecond timestamps (else microseconds).
    pub nanos: bool,
}

impl PcapFormat {
    /// Little-endian, microseconds: what tcpdump writes, and `capture -w`.
    pub const CLASSIC: PcapFormat = PcapFormat {
        big_endian: false,
        nanos: false,
    };

    fn word(self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    /// The file header (version 2.4) for packets of `link` cut to `snaplen`.
    pub fn header(self, link: LinkType, snaplen: u32) -> [u8; 24] {
        let magic = if self.nanos {
            MAGIC_NANOS
        } else {
            MAGIC_MICROS
        };
        let (major, minor) = if self.big_endian {
            (2u16.to_be_bytes(), 4u16.to_be_bytes())
        } else {
            (2u16.to_le_bytes(), 4u16.to_le_bytes())
        };
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&self.word(magic));
        h[4..6].copy_from_slice(&major);
        h[6..8].copy_from_slice(&minor);
        // 8..16: time zone and accuracy, both 0.
        h[16..20].copy_from_slice(&self.word(snaplen));
        h[20..24].copy_from_slice(&self.word(link.0));
        h
    }

    /// Appends one record to `out`: a packet of `wire_len` bytes on the wire
    /// of which `data` was captured, at `ts_ns` nanoseconds since the epoch
    /// (seconds past 2106 wrap, as the format's 32-bit field does).
    #[inline]
    pub fn record(self, out: &mut Vec<u8>, ts_ns: u64, data: &[u8], wire_len: u32) {
        let frac = ts_ns % 1_000_000_000;
        let frac = if self.nanos { frac } else { frac / 1000 };
        let mut h = [0u8; RECORD_HEADER];
        h[0..4].copy_from_slice(&self.word((ts_ns / 1_000_000_000) as u32));
        h[4..8].copy_from_slice(&self.word(frac as u32));
        h[8..12].copy_from_slice(&self.word(data.len() as u32));
        h[12..16].copy_from_slice(&self.word(wire_len));
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
    }

    /// The captured length a record header written in this format holds.
    pub fn caplen(self, header: &[u8; RECORD_HEADER]) -> u32 {
        self.read_word(header, 8)
    }

    /// The time a record header written in this format holds, in ns.
    pub fn ts_ns(self, header: &[u8; RECORD_HEADER]) -> u64 {
        let frac = self.read_word(header, 4) as u64;
        let frac = if self.nanos { frac } else { frac * 1000 };
        self.read_word(header, 0) as u64 * 1_000_000_000 + frac
    }

    fn read_word(self, header: &[u8; RECORD_HEADER], at: usize) -> u32 {
        let b = [header[at], header[at + 1], header[at + 2], header[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_in_either_byte_order_and_resolution() {
        for big_endian in [false, true] {
            for nanos in [false, true] {
                let f = PcapFormat { big_endian, nanos };
                let mut file = f.header(LinkType::ETHERNET, 65535).to_vec();
                f.record(&mut file, 1_700_000_000_123_456_789, b"abc", 60);
                let mut got = Vec::new();
                crate::source::read_bytes("t.pcap", &file, &mut |p| {
                    got.push((p.ts_ns, p.data.to_vec(), p.wire_len, p.link))
                })
                .expect("a readable file");
                let ts = if nanos {
                    1_700_000_000_123_456_789
                } else {
                    1_700_000_000_123_456_000
                };
                assert_eq!(got, vec![(ts, b"abc".to_vec(), 60, LinkType::ETHERNET)]);
                let header: [u8; RECORD_HEADER] = file[24..40].try_into().expect("16 bytes");
                assert_eq!(f.caplen(&header), 3);
            }
        }
    }
}
