//! Minimal pcap and pcapng writers for fixtures and synthetic inputs.

/// A classic pcap file in memory.
pub struct Pcap {
    pub buf: Vec<u8>,
    big_endian: bool,
    nanos: bool,
    snaplen: u32,
}

impl Pcap {
    pub fn new(link: u32, snaplen: u32, big_endian: bool, nanos: bool) -> Pcap {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut p = Pcap {
            buf: Vec::new(),
            big_endian,
            nanos,
            snaplen,
        };
        p.u32(magic);
        p.u16(2);
        p.u16(4);
        p.u32(0);
        p.u32(0);
        p.u32(snaplen);
        p.u32(link);
        p
    }

    fn u32(&mut self, v: u32) {
        let b = if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.buf.extend_from_slice(&b);
    }

    fn u16(&mut self, v: u16) {
        let b = if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.buf.extend_from_slice(&b);
    }

    /// Appends a packet, cut to the snaplen; the wire length stays the frame's.
    pub fn packet(&mut self, ts_ns: u64, frame: &[u8]) {
        let cap = frame.len().min(self.snaplen as usize);
        self.u32((ts_ns / 1_000_000_000) as u32);
        let frac = ts_ns % 1_000_000_000;
        self.u32(if self.nanos { frac } else { frac / 1000 } as u32);
        self.u32(cap as u32);
        self.u32(frame.len() as u32);
        self.buf.extend_from_slice(&frame[..cap]);
    }
}

/// A pcapng file (little-endian) in memory.
pub struct Pcapng {
    pub buf: Vec<u8>,
    ifaces: Vec<(u32, u8)>,
}

fn pad4(v: &mut Vec<u8>) {
    while v.len() % 4 != 0 {
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
