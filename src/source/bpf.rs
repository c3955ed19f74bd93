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
    /// Where a syntax error is, found by compiling parts of the expression
    /// (libpcap itself says only "syntax error").
    pub place: Option<Place>,
}

/// Where in an expression libpcap's parser gave up, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Word `index` (from 1) is the first that no expression can continue
    /// with; `word` is that word.
    Word { index: usize, word: String },
    /// Every word could begin a valid expression, which then stops short
    /// (an unclosed parenthesis or bracket, an operator or keyword missing
    /// its operand).
    End,
}

impl FilterError {
    /// The error for `expression`, which libpcap refused with `message` when
    /// compiling for `link`; syntax errors are located.
    pub fn new(expression: &str, link: LinkType, message: String) -> FilterError {
        // The header line already says the expression is bad.
        let message = match message.strip_prefix("can't parse filter expression: ") {
            Some(rest) => rest.to_string(),
            None => message,
        };
        let place = if message.contains("syntax error") {
            locate(expression, link)
        } else {
            None
        };
        FilterError {
            expression: expression.to_string(),
            message,
            place,
        }
    }
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bad filter expression '{}': {}",
            self.expression, self.message
        )?;
        match &self.place {
            Some(Place::Word { index, word }) => {
                write!(f, " at word {index}, '{word}'")?;
                let before = words(&self.expression)
                    .take(index - 1)
                    .collect::<Vec<_>>()
                    .join(" ");
                if !before.is_empty() {
                    write!(f, " (what comes before it, '{before}', is fine)")?;
                }
                Ok(())
            }
            Some(Place::End) => write!(
                f,
                " at the end: the expression stops before it is complete \
                 (an unclosed '(' or '[', or an operator without its operand?)"
            ),
            None => Ok(()),
        }
    }
}

impl std::error::Error for FilterError {}

fn words(expression: &str) -> impl Iterator<Item = &str> {
    expression.split_whitespace()
}

/// Endings that complete most unfinished filters: a primitive after an
/// operator, a value after a keyword or comparison, a closing bracket or
/// parenthesis. A prefix that compiles with one of them is one some valid
/// expression starts with.
const ENDINGS: &[&str] = &[
    "", " tcp", " 1", " 1)", ")", " 1))", "))", " 1] = 0", "] = 0", " = 0", " 0 = 0",
];

/// Longest expressions looked at; past this the error is left unlocated
/// rather than compiling hundreds of prefixes.
const MAX_WORDS: usize = 64;

/// Finds the first word after which no ending in [`ENDINGS`] compiles.
fn locate(expression: &str, link: LinkType) -> Option<Place> {
    let all: Vec<&str> = words(expression).collect();
    if all.len() > MAX_WORDS {
        return None;
    }
    let viable = |n: usize| {
        let prefix = all[..n].join(" ");
        ENDINGS
            .iter()
            .any(|end| compile(&format!("{prefix}{end}"), link).is_ok())
    };
    for n in 1..=all.len() {
        if !viable(n) {
            return Some(Place::Word {
                index: n,
                word: all[n - 1].to_string(),
            });
        }
    }
    Some(Place::End)
}

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
        let prog = compile(expr, LinkType::ETHERNET)
            .map_err(|message| FilterError::new(expr, LinkType::ETHERNET, message))?;
        f.programs.push((LinkType::ETHERNET, Some(prog)));
        Ok(f)
    }

    /// Link types the filter could not be compiled for, as messages.
    pub fn warnings(&self) -> Vec<String> {
        self.failed
            .iter()
            .map(|(l, e)| format!("filter does not apply to link type {}: {e}", l.name()))
            .collect()
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

/// Compiles `expr` for packets of `link`, or gives libpcap's message.
pub fn compile(expr: &str, link: LinkType) -> Result<pcap::BpfProgram, String> {
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

    fn place(expr: &str) -> Option<Place> {
        Filter::new(expr).err().expect("must fail").place
    }

    fn word(index: usize, word: &str) -> Option<Place> {
        Some(Place::Word {
            index,
            word: word.to_string(),
        })
    }

    #[test]
    fn syntax_errors_are_located_by_word() {
        assert_eq!(place("tcp and and"), word(3, "and"));
        assert_eq!(place("tcpp"), word(1, "tcpp"));
        assert_eq!(place("vlan and tcp port 80 and or udp"), word(7, "or"));
        assert_eq!(place("ip and udp[100 = 0"), word(4, "="));
        assert_eq!(place("tcp port http and"), Some(Place::End));
        assert_eq!(place("tcp and (port 80"), Some(Place::End));
        assert_eq!(place("tcp port"), Some(Place::End));
        let e = Filter::new("tcp and and").err().unwrap();
        assert_eq!(
            e.to_string(),
            "bad filter expression 'tcp and and': syntax error at word 3, 'and' \
             (what comes before it, 'tcp and', is fine)"
        );
    }

    #[test]
    fn other_errors_keep_libpcaps_words() {
        let e = Filter::new("port 99999").err().expect("must fail");
        assert_eq!(e.place, None);
        assert_eq!(
            e.to_string(),
            "bad filter expression 'port 99999': illegal port number 99999 > 65535"
        );
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
