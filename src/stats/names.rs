//! Names seen for addresses in the traffic itself (DNS answers, TLS SNI,
//! HTTP Host), with where each came from. Bounded: at most [`PER_ADDRESS`]
//! names an address (the first in name order, so the same for any thread
//! count) and [`ADDRESSES`] addresses a table (past that, names of new
//! addresses are counted, not kept).
use crate::decode::Addr;
use rustc_hash::FxHashMap;

/// Names kept per address.
pub const PER_ADDRESS: usize = 4;
/// Addresses with names kept per table.
pub const ADDRESSES: usize = 65_536;

/// Where a name was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// An A or AAAA record of a DNS answer gave this address for the name.
    Dns,
    /// A TLS client asked this server for the name (SNI).
    TlsSni,
    /// An HTTP request to this server named it in `Host`.
    HttpHost,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Dns => "dns",
            Source::TlsSni => "tls-sni",
            Source::HttpHost => "http-host",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Names {
    map: FxHashMap<Addr, Vec<(String, Source)>>,
    /// Names not kept because the table had [`ADDRESSES`] addresses already.
    pub dropped: u64,
}

impl Names {
    /// Notes `name` for `addr`, seen from `source`.
    pub fn add(&mut self, addr: Addr, name: String, source: Source) {
        let full = self.map.len() >= ADDRESSES;
        let set = match self.map.get_mut(&addr) {
            Some(s) => s,
            None if full => {
                self.dropped += 1;
                return;
            }
            None => self.map.entry(addr).or_default(),
        };
        let entry = (name, source);
        if let Err(i) = set.binary_search(&entry) {
            if i < PER_ADDRESS {
                set.insert(i, entry);
                set.truncate(PER_ADDRESS);
            }
        }
    }

    /// The names of `addr`, in name order.
    pub fn of(&self, addr: &Addr) -> &[(String, Source)] {
        self.map.get(addr).map_or(&[], Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every address with names, in address order.
    pub fn all(&self) -> Vec<(&Addr, &[(String, Source)])> {
        let mut v: Vec<_> = self.map.iter().map(|(a, n)| (a, n.as_slice())).collect();
        v.sort_unstable_by_key(|(a, _)| **a);
        v
    }

    pub fn merge(&mut self, o: Names) {
        self.dropped += o.dropped;
        for (addr, names) in o.map {
            for (n, s) in names {
                self.add(addr, n, s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_keeps_its_first_names_in_order_whatever_the_order_seen() {
        let a = [1u8; 16];
        let (mut x, mut y) = (Names::default(), Names::default());
        let names = ["e.com", "a.com", "d.com", "c.com", "b.com", "a.com"];
        for n in names {
            x.add(a, n.into(), Source::TlsSni);
        }
        for n in names.iter().rev() {
            y.add(a, n.to_string(), Source::TlsSni);
        }
        let got: Vec<&str> = x.of(&a).iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(got, ["a.com", "b.com", "c.com", "d.com"]);
        assert_eq!(x.of(&a), y.of(&a));
    }
}
