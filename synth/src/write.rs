//! pcap and pcapng files in memory, for fixtures and synthetic inputs.

use portflow::decode::LinkType;
use portflow::source::PcapFormat;

/// A classic pcap file in memory, written by portflow's own record writer.
pub struct Pcap {
    pub buf: Vec<u8>,
    format: PcapFormat,
    snaplen: u32,
}

impl Pcap {
    pub fn new(link: u32, snaplen: u32, big_endian: bool, nanos: bool) -> Pcap {
        let format = PcapFormat { big_endian, nanos };
        Pcap {
            buf: format.header(LinkType(link), snaplen).to_vec(),
            format,
            snaplen,
        }
    }

    /// Appends a packet, cut to the snaplen; the wire length stays the frame's.
    pub fn packet(&mut self, ts_ns: u64, frame: &[u8]) {
        let cap = frame.len().min(self.snaplen as usize);
        self.format
            .record(&mut self.buf, ts_ns, &frame[..cap], frame.len() as u32);
    }
}

/// A pcapng file (little-endian) in memory.
pub struct Pcapng {
    pub buf: Vec<u8>,
    ifaces: Vec<(u32, u8)>,
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

impl Pcapng {
    pub fn new() -> Pcapng {
        let mut p = Pcapng {
            buf: Vec::new(),
            ifaces: Vec::new(),
        };
        let mut body = Vec::new();
        body.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        p.block(0x0a0d_0d0a, &body);
        p
    }

    fn block(&mut self, kind: u32, body: &[u8]) {
        let len = 12 + body.len() as u32;
        self.buf.extend_from_slice(&kind.to_le_bytes());
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(body);
        self.buf.extend_from_slice(&len.to_le_bytes());
    }

    /// Adds an interface; `tsresol` is the power of ten of timestamp units (6 = us, 9 = ns).
    pub fn interface(&mut self, link: u16, snaplen: u32, tsresol: u8) -> u32 {
        let mut body = Vec::new();
        body.extend_from_slice(&link.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&snaplen.to_le_bytes());
        // if_tsresol option, then opt_endofopt.
        body.extend_from_slice(&9u16.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.push(tsresol);
        pad4(&mut body);
        body.extend_from_slice(&[0, 0, 0, 0]);
        self.block(1, &body);
        self.ifaces.push((snaplen, tsresol));
        (self.ifaces.len() - 1) as u32
    }

    pub fn packet(&mut self, iface: u32, ts_ns: u64, frame: &[u8]) {
        self.packet_with_options(iface, ts_ns, frame, &[]);
    }

    /// [`Self::packet`] with options after the packet data (code and value
    /// each; `opt_endofopt` is added): `epb_flags` (2, four bytes) with the
    /// direction, as capture tools write it, or a comment (1).
    pub fn packet_with_options(
        &mut self,
        iface: u32,
        ts_ns: u64,
        frame: &[u8],
        options: &[(u16, &[u8])],
    ) {
        let (snaplen, tsresol) = self.ifaces[iface as usize];
        let cap = frame.len().min(snaplen as usize);
        let units = ts_ns / 10u64.pow(9 - tsresol as u32);
        let mut body = Vec::new();
        body.extend_from_slice(&iface.to_le_bytes());
        body.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(units as u32).to_le_bytes());
        body.extend_from_slice(&(cap as u32).to_le_bytes());
        body.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        body.extend_from_slice(&frame[..cap]);
        pad4(&mut body);
        if !options.is_empty() {
            for (code, value) in options {
                body.extend_from_slice(&code.to_le_bytes());
                body.extend_from_slice(&(value.len() as u16).to_le_bytes());
                body.extend_from_slice(value);
                pad4(&mut body);
            }
            body.extend_from_slice(&[0, 0, 0, 0]);
        }
        self.block(6, &body);
    }
}

impl Default for Pcapng {
    fn default() -> Self {
        Pcapng::new()
    }
}
