//! Embeds the IANA "Service Name and Transport Protocol Port Number Registry"
//! (`data/service-names-port-numbers.csv`, CC0) into the binary at build time.
//!
//! Output (`$OUT_DIR/iana_services.rs`):
//! - `IANA_SINGLE`: one row per (transport, port, name), sorted by transport then
//!   port, registry order kept inside a port (the first row is the primary name).
//! - `IANA_RANGES`: rows registered for a port range (`6000-6063 x11`).
//! - `IANA_ASSIGNED`: per transport, a 65,536-bit set of ports that carry a name.
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

fn transport_code(t: &str) -> Option<u8> {
    match t {
        "tcp" => Some(0),
        "udp" => Some(1),
        "sctp" => Some(2),
        "dccp" => Some(3),
        _ => None,
    }
}

fn main() {
    let src = Path::new("data/service-names-port-numbers.csv");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed=build.rs");
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(src)
        .expect("data/service-names-port-numbers.csv is part of the repository");
    let mut singles: Vec<(u8, u16, usize, String, String)> = Vec::new();
    let mut ranges: Vec<(u8, u16, u16, String, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    for (row, rec) in rdr.records().enumerate() {
        let rec = rec.expect("registry CSV parses");
        let name = rec.get(0).unwrap_or("").trim();
        let port = rec.get(1).unwrap_or("").trim();
        let proto = rec.get(2).unwrap_or("").trim();
        let desc = rec
            .get(3)
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if name.is_empty() || port.is_empty() {
            continue;
        }
        let Some(p) = transport_code(proto) else {
            continue;
        };
        let (lo, hi) = match port.split_once('-') {
            Some((a, b)) => (a.parse::<u16>().unwrap(), b.parse::<u16>().unwrap()),
            None => {
                let v = port.parse::<u16>().unwrap();
                (v, v)
            }
        };
        if !seen.insert((p, lo, hi, name.to_ascii_lowercase())) {
            continue;
        }
        if lo == hi {
            singles.push((p, lo, row, name.to_string(), desc));
        } else {
            ranges.push((p, lo, hi, name.to_string(), desc));
        }
    }
    singles.sort_by_key(|s| (s.0, s.1, s.2));
    let mut assigned = vec![[0u64; 1024]; 4];
    for s in &singles {
        assigned[s.0 as usize][(s.1 / 64) as usize] |= 1u64 << (s.1 % 64);
    }
    for r in &ranges {
        for port in r.1..=r.2 {
            assigned[r.0 as usize][(port / 64) as usize] |= 1u64 << (port % 64);
        }
    }
    let mut out = String::new();
    writeln!(out, "pub(crate) static IANA_SINGLE: &[RegistryRow] = &[").unwrap();
    for s in &singles {
        writeln!(
            out,
            "RegistryRow {{ transport: {}, lo: {}, hi: {}, name: {:?}, description: {:?} }},",
            s.0, s.1, s.1, s.3, s.4
        )
        .unwrap();
    }
    writeln!(
        out,
        "];\npub(crate) static IANA_RANGES: &[RegistryRow] = &["
    )
    .unwrap();
    for r in &ranges {
        writeln!(
            out,
            "RegistryRow {{ transport: {}, lo: {}, hi: {}, name: {:?}, description: {:?} }},",
            r.0, r.1, r.2, r.3, r.4
        )
        .unwrap();
    }
    writeln!(
        out,
        "];\npub(crate) static IANA_ASSIGNED: [[u64; 1024]; 4] = ["
    )
    .unwrap();
    for a in &assigned {
        writeln!(out, "{a:?},").unwrap();
    }
    writeln!(out, "];").unwrap();
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("iana_services.rs");
    std::fs::write(dest, out).unwrap();
}
