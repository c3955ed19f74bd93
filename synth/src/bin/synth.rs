//! Seeded synthetic captures for benchmarks and flood tests (never committed).
//!
//! `cargo run --release -p portflow-synth --bin synth -- scale PACKETS FLOWS PORTS OUT.pcap`
//!     PACKETS packets over FLOWS TCP/UDP flows, servers on PORTS distinct ports
//! `cargo run --release -p portflow-synth --bin synth -- established PACKETS FLOWS PORTS OUT.pcap`
//!     the same, but the first FLOWS packets open every flow in turn, so the
//!     packets after them only update flows (the scale curves use it)
//! `cargo run --release -p portflow-synth --bin synth -- flood FLOWS OUT.pcap`
//!     FLOWS SYNs from random sources to 172.16.0.1:80, each a new flow
use std::io::Write;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|s| s.replace('_', "").parse().ok())
            .unwrap_or_else(|| usage())
    };
    let (out, kind) = match args.first().map(String::as_str) {
        Some("scale") if args.len() == 5 => (&args[4], 0),
        Some("established") if args.len() == 5 => (&args[4], 2),
        Some("flood") if args.len() == 3 => (&args[2], 1),
        _ => usage(),
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut err = Ok(());
    let mut sink = |b: &[u8]| {
        if err.is_ok() {
            err = f.write_all(b);
        }
    };
    match kind {
        0 => portflow_synth::scale::generate(7, num(1), num(2) as u32, num(3) as u16, &mut sink),
        2 => portflow_synth::scale::generate_established(
            7,
            num(1),
            num(2) as u32,
            num(3) as u16,
            &mut sink,
        ),
        _ => portflow_synth::scale::syn_flood(7, num(1), 80, &mut sink),
    }
    err?;
    f.flush()
}

fn usage() -> ! {
    eprintln!(
        "usage: synth scale|established PACKETS FLOWS PORTS OUT.pcap | synth flood FLOWS OUT.pcap"
    );
    std::process::exit(2)
}
