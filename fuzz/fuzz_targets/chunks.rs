//! Reading files in chunks on several threads (`read`'s parallel path) on
//! arbitrary bytes: the same packets and bytes as the sequential reader of
//! the same bytes in memory, and the same error where it stops. Each input
//! is tried as a file, as the payload of every record of a pcap file, and as
//! the packets of a pcapng file whose second interface is described after
//! packets (so guessed boundaries inside payloads look valid, and chunks are
//! read as if the section said what it had not yet). Chunks are 4 KiB, so a
//! few KiB of input make several.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use portflow::pipeline::FileReport;
use portflow::pipeline::{analyze_files, Options};
use portflow::source::{read_bytes, Input};
use std::sync::Arc;

fn check(data: &[u8]) {
    let path = std::env::temp_dir().join(format!("portflow-fuzz-chunks-{}", std::process::id()));
    std::fs::write(&path, data).expect("write the input");
    let mut packets = 0u64;
    let sequential = read_bytes("fuzz", data, &mut |_| packets += 1);
    // The services table is built once (it parses the IANA registry).
    static OPTS: std::sync::OnceLock<Options> = std::sync::OnceLock::new();
    let opts = OPTS.get_or_init(|| Options {
        workers: 2,
        ..Options::default()
    });
    let chunked = analyze_files(&[Input::Path(path)], opts, Arc::default());
    match (sequential, chunked) {
        (Ok(_), Ok(a)) => assert_eq!(a.totals.packets, packets),
        (Err(e), Ok(a)) => {
            // Only a cut last record lets the run go on.
            assert!(FileReport::is_cut_short(&e), "{e}");
            assert_eq!(a.totals.packets, packets);
            let cut = a.files[0].cut_short.as_ref().expect("reported cut short");
            assert_eq!(
                (cut.offset, cut.packets_before),
                (e.offset, e.packets_before)
            );
        }
        (Err(e), Err(portflow::pipeline::RunError::File { error, .. })) => {
            assert_eq!(
                (error.offset, error.packets_before, error.kind),
                (e.offset, e.packets_before, e.kind)
            );
        }
        (s, c) => panic!(
            "sequential {s:?}, chunked {:?}",
            c.map(|a| a.totals.packets)
        ),
    }
}

/// A little-endian pcapng file in memory.
#[derive(Default)]
struct Pcapng {
    buf: Vec<u8>,
}

impl Pcapng {
    fn block(&mut self, kind: u32, body: &[u8]) {
        let len = (12 + body.len().next_multiple_of(4)) as u32;
        self.buf.extend_from_slice(&kind.to_le_bytes());
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(body);
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
        self.buf.extend_from_slice(&len.to_le_bytes());
    }

    /// An interface of link type `link`, microseconds.
    fn interface(&mut self, link: u16) {
        let mut body = link.to_le_bytes().to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&262_144u32.to_le_bytes());
        self.block(1, &body);
    }

    fn packet(&mut self, iface: u32, ts: u32, data: &[u8]) {
        let mut body = Vec::new();
        for v in [iface, 0x0006_1234, ts, data.len() as u32, data.len() as u32] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        body.extend_from_slice(data);
        self.block(6, &body);
    }
}

fuzz_target!(|data: &[u8]| {
    // Read when a run starts, on this thread: no other thread runs between
    // inputs.
    std::env::set_var("PORTFLOW_CHUNK_BYTES", "4096");
    check(data);
    check(&common::wrapped_in_pcap(data));
    let mut ng = Pcapng::default();
    ng.block(
        0x0a0d_0d0a,
        &[
            0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    );
    ng.interface(1);
    for i in 0..3u32 {
        ng.packet(0, i, data);
    }
    ng.interface(101);
    for i in 0..3u32 {
        ng.packet(1, 7 * i, data);
    }
    check(&ng.buf);
});
