//! Bare record walks, the ceiling for `portflow read` and the measurement
//! behind the choice of reader (docs/BENCHMARKS.md):
//!
//!   cargo run --release --example walk -- reader FILE        # portflow's file reader, no decoding
//!                                                            # (own record loop for pcap, pcap-parser
//!                                                            # for pcapng)
//!   cargo run --release --example walk -- pcap-parser FILE   # pcap-parser's record parser over a
//!                                                            # memory map (legacy pcap only): the
//!                                                            # walk the speed issue names
//!   cargo run --release --example walk -- libpcap FILE       # libpcap's offline reader (pcap crate)
//!   cargo run --release --example walk -- decode FILE        # portflow's reader + decoder, no flows
//!
//! Prints packets, wire bytes and the rate.
use portflow::decode::{decode, Decoded};
use portflow::source::{read_capture, Input};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, file) = match (args.get(1), args.get(2)) {
        (Some(m), Some(f)) => (m.as_str(), f.clone()),
        _ => {
            eprintln!("usage: walk reader|pcap-parser|libpcap|decode FILE");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let (mut packets, mut bytes, mut check) = (0u64, 0u64, 0u64);
    match mode {
        "libpcap" => {
            let mut cap = pcap::Capture::from_file(&file).expect("libpcap opens the file");
            while let Ok(p) = cap.next_packet() {
                packets += 1;
                bytes += p.header.len as u64;
            }
        }
        "pcap-parser" => {
            // The crate's fastest way through a legacy pcap file: its frame
            // parser over the whole file mapped, no copy, as in the "Choice of
            // reader" table of docs/BENCHMARKS.md.
            use pcap_parser::pcap::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_header};
            let f = std::fs::File::open(&file).expect("the file opens");
            // SAFETY: the file is only read, and not changed while mapped.
            let map = unsafe { memmap2::Mmap::map(&f) }.expect("the file maps");
            let (mut rest, header) = parse_pcap_header(&map).unwrap_or_else(|_| {
                eprintln!("walk pcap-parser: {file} is not a legacy pcap file");
                std::process::exit(2);
            });
            let frame = if header.is_bigendian() {
                parse_pcap_frame_be
            } else {
                parse_pcap_frame
            };
            while let Ok((next, block)) = frame(rest) {
                packets += 1;
                bytes += block.origlen as u64;
                rest = next;
            }
            // A walk that stopped early would look fast: say so.
            if !rest.is_empty() {
                eprintln!(
                    "walk pcap-parser: stopped at byte {} of {file} (a record it cannot parse)",
                    map.len() - rest.len()
                );
            }
        }
        "reader" | "decode" => {
            let mut d = Decoded::default();
            let decode_too = mode == "decode";
            read_capture(
                &Input::Path(file.clone().into()),
                Arc::new(AtomicU64::new(0)),
                &mut |p| {
                    packets += 1;
                    bytes += p.wire_len as u64;
                    if decode_too {
                        decode(p.link, p.data, &mut d);
                        check = check.wrapping_add(d.sport as u64 ^ d.dport as u64);
                    }
                },
            )
            .expect("readable");
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
    let s = started.elapsed().as_secs_f64();
    println!(
        "{mode}: {packets} packets, {bytes} bytes, {s:.3} s, {:.2} Mpps (check {check})",
        packets as f64 / s / 1e6
    );
}
