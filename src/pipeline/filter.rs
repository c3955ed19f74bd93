//! BPF filters (`-f`), compiled by libpcap once per link type and run with
//! `pcap_offline_filter`, as `tcpdump -r FILE EXPR` does.
use crate::decode::LinkType;

pub struct Filter {
    expr: String,
    programs: Vec<(LinkType, Option<pcap::BpfProgram>)>,
    /// Link types the expression could not be compiled for (their packets do not match).
    pub failed: Vec<(LinkType, String)>,
}

impl Filter {
    /// Compiles `expr` for Ethernet to check it; other link types compile on first use.
    pub fn new(expr: &str) -> Result<Filter, String> {
        let mut f = Filter {
            expr: expr.to_string(),
            programs: Vec::new(),
            failed: Vec::new(),
        };
        let prog = compile(expr, LinkType::ETHERNET)?;
        f.programs.push((LinkType::ETHERNET, Some(prog)));
        Ok(f)
    }

    #[inline]
    pub fn matches(&mut self, link: LinkType, data: &[u8], _wire_len: u32) -> bool {
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
            Some(p) => p.filter(data),
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
        assert!(e.contains("syntax"), "{e}");
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
}
