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

/// One registry row: transport code, first and last port, name, description.
struct Row {
    transport: u8,
    lo: u16,
    hi: u16,
    name: String,
    description: String,
}

fn transport_code(t: &str) -> Option<u8> {
    match t {
        "tcp" => Some(0),
        "udp" => Some(1),
        "sctp" => Some(2),
        "dccp" => Some(3),
        _ => None,
    }
}

/// The registry's named rows with a transport, each (transport, ports, name)
/// once, in registry order.
fn read_registry(src: &Path) -> Vec<Row> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(src)
        .expect("data/service-names-port-numbers.csv is part of the repository");
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for rec in rdr.records() {
        let rec = rec.expect("registry CSV parses");
        let field = |i: usize| rec.get(i).unwrap_or("").trim();
        let (name, port) = (field(0), field(1));
        if name.is_empty() || port.is_empty() {
            continue;
        }
        let Some(transport) = transport_code(field(2)) else {
            continue;
        };
        let (lo, hi) = match port.split_once('-') {
            Some((a, b)) => (a.parse::<u16>().unwrap(), b.parse::<u16>().unwrap()),
            None => {
                let v = port.parse::<u16>().unwrap();
                (v, v)
            }
        };
        if !seen.insert((transport, lo, hi, name.to_ascii_lowercase())) {
            continue;
        }
        let description = field(3).split_whitespace().collect::<Vec<_>>().join(" ");
        rows.push(Row {
            transport,
            lo,
            hi,
            name: name.to_string(),
            description,
        });
    }
    rows
}

/// A static table of rows, as Rust source.
fn table(out: &mut String, name: &str, rows: &[&Row]) {
    writeln!(out, "pub(crate) static {name}: &[RegistryRow] = &[").unwrap();
    for r in rows {
        writeln!(
            out,
            "RegistryRow {{ transport: {}, lo: {}, hi: {}, name: {:?}, description: {:?} }},",
            r.transport, r.lo, r.hi, r.name, r.description
        )
        .unwrap();
    }
    writeln!(out, "];").unwrap();
}

fn main() {
    let src = Path::new("data/service-names-port-numbers.csv");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed=build.rs");
    let rows = read_registry(src);
    // Sorted by transport and port; the sort is stable, so registry order
    // stays within a port.
    let mut singles: Vec<&Row> = rows.iter().filter(|r| r.lo == r.hi).collect();
    singles.sort_by_key(|r| (r.transport, r.lo));
    let ranges: Vec<&Row> = rows.iter().filter(|r| r.lo != r.hi).collect();
    let mut assigned = vec![[0u64; 1024]; 4];
    for r in &rows {
        for port in r.lo..=r.hi {
            assigned[r.transport as usize][(port / 64) as usize] |= 1u64 << (port % 64);
        }
    }
    let mut out = String::new();
    table(&mut out, "IANA_SINGLE", &singles);
    table(&mut out, "IANA_RANGES", &ranges);
    writeln!(out, "pub(crate) static IANA_ASSIGNED: [[u64; 1024]; 4] = [").unwrap();
    for a in &assigned {
        writeln!(out, "{a:?},").unwrap();
    }
    writeln!(out, "];").unwrap();
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("iana_services.rs");
    std::fs::write(dest, out).unwrap();
}
