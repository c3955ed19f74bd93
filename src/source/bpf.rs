//! BPF filters (`-f`) on packets read from files, compiled by libpcap once
//! per link type and run with `pcap_offline_filter`, as `tcpdump -r FILE EXPR`
//! does: with the record's original length as the packet's length (`len`,
//! `greater`, `less` test it) and the captured bytes as what loads may read.
//! (A live capture compiles its filter into the kernel: [`super::live`].)
use crate::decode::LinkType;

/// A filter expression libpcap cannot compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub expression: String,
    /// What libpcap said.
    pub message: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad filter expression: {}", self.message)
    }
}

impl std::error::Error for FilterError {}

/// libpcap's `struct pcap_pkthdr`.
#[repr(C)]
struct PktHdr {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

extern "C" {
    // libpcap, linked by the `pcap` crate. `prog` is a `struct bpf_program *`.
    fn pcap_offline_filter(prog: *const libc::c_void, h: *const PktHdr, pkt: *const u8) -> i32;
}

/// Runs `prog` on a packet of `wire_len` bytes of which `data` was captured.
fn run(prog: &pcap::BpfProgram, data: &[u8], wire_len: u32) -> bool {
    let h = PktHdr {
        ts: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        caplen: data.len() as u32,
        len: wire_len,
    };
    // SAFETY: `BpfProgram` is `#[repr(transparent)]` over libpcap's
    // `bpf_program`, so the pointer is one; the filter reads at most `caplen`
    // bytes of `data` (libpcap's `bpf_filter` checks every load against it)
    // and only tests `len`.
    unsafe { pcap_offline_filter((prog as *const pcap::BpfProgram).cast(), &h, data.as_ptr()) > 0 }
}

/// A filter expression, compiled for each link type it meets.
pub struct Filter {
    expr: String,
    programs: Vec<(LinkType, Option<pcap::BpfProgram>)>,
    /// Link types the expression could not be compiled for (their packets do not match).
    pub failed: Vec<(LinkType, String)>,
}

impl Filter {
    /// Compiles `expr` for Ethernet to check it; other link types compile on first use.
    pub fn new(expr: &str) -> Result<Filter, FilterError> {
        let mut f = Filter {
            expr: expr.to_string(),
            programs: Vec::new(),
            failed: Vec::new(),
        };
        let prog = compile(expr, LinkType::ETHERNET).map_err(|message| FilterError {
            expression: expr.to_string(),
            message,
        })?;
        f.programs.push((LinkType::ETHERNET, Some(prog)));
        Ok(f)
    }

    /// Whether a packet of `link` with `data` captured of `wire_len` bytes
    /// passes; a link type the expression does not compile for passes nothing
    /// (and is listed in [`Self::failed`]).
    #[inline]
    pub fn matches(&mut self, link: LinkType, data: &[u8], wire_len: u32) -> bool {
        let idx = match self.programs.iter().position(|(l, _)| *l == link) {
            Some(i) => i,
            None => {
                let prog = match compile(&self.expr, link) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        self.failed.push((link, e));
                        None
                    }
                };
                self.programs.push((link, prog));
                self.programs.len() - 1
            }
        };
        match &self.programs[idx].1 {
            Some(p) => run(p, data, wire_len),
            None => false,
        }
    }
}

fn compile(expr: &str, link: LinkType) -> Result<pcap::BpfProgram, String> {
    // pcap files carry LINKTYPE_ values; libpcap compiles for DLT_ values, which
    // differ for raw IP (LINKTYPE_RAW 101 is DLT_RAW 12).
    let dlt = match link {
        LinkType::RAW => 12,
        l => l.0 as i32,
    };
    let dead = pcap::Capture::dead(pcap::Linktype(dlt)).map_err(|e| e.to_string())?;
    dead.compile(expr, true).map_err(|e| match e {
        pcap::Error::PcapError(m) => m,
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_expression_is_an_error() {
        let e = Filter::new("tcp and and").err().expect("must fail");
        assert!(e.message.contains("syntax"), "{e}");
        assert_eq!(e.expression, "tcp and and");
    }

    #[test]
    fn matches_by_protocol() {
        let mut f = Filter::new("udp").unwrap();
        // Ethernet + IPv4 + UDP header.
        let mut pkt = vec![0u8; 14 + 20 + 8];
        pkt[12] = 0x08;
        pkt[14] = 0x45;
        pkt[14 + 9] = 17;
        assert!(f.matches(LinkType::ETHERNET, &pkt, 42));
        pkt[14 + 9] = 6;
        assert!(!f.matches(LinkType::ETHERNET, &pkt, 42));
    }

    #[test]
    fn lengths_are_the_packets_not_the_captured_bytes() {
        // 42 bytes captured of a 1,500-byte packet, as with a small snaplen.
        let mut pkt = vec![0u8; 14 + 20 + 8];
        pkt[12] = 0x08;
        pkt[14] = 0x45;
        pkt[14 + 9] = 17;
        let mut big = Filter::new("greater 1000").unwrap();
        assert!(big.matches(LinkType::ETHERNET, &pkt, 1500));
        assert!(!big.matches(LinkType::ETHERNET, &pkt, 42));
        let mut small = Filter::new("udp and less 100").unwrap();
        assert!(!small.matches(LinkType::ETHERNET, &pkt, 1500));
        assert!(small.matches(LinkType::ETHERNET, &pkt, 42));
        // Loads past the captured bytes fail the match, whatever the length.
        let mut deep = Filter::new("udp[100] = 0").unwrap();
        assert!(!deep.matches(LinkType::ETHERNET, &pkt, 1500));
    }
}
