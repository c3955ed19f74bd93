//! The capture-file reader (pcap, pcapng, gzip) on arbitrary bytes, through
//! both of its paths: in memory (what a mapped file takes) and as a stream
//! (standard input). Each packet is decoded too. The two paths must agree on
//! what they read.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portflow::decode::{decode, Decoded};
use portflow::source::{read_bytes, read_stream_bytes};

fuzz_target!(|data: &[u8]| {
    let mut d = Decoded::default();
    let mut in_memory = Vec::new();
    let a = read_bytes("fuzz", data, &mut |p| {
        decode(p.link, p.data, &mut d);
        in_memory.push((p.ts_ns, p.wire_len, p.data.len()));
    });
    let mut streamed = Vec::new();
    let b = read_stream_bytes("fuzz", data, &mut |p| {
        streamed.push((p.ts_ns, p.wire_len, p.data.len()))
    });
    if let (Ok(a), Ok(b)) = (&a, &b) {
        assert_eq!(a.packets, b.packets);
        assert_eq!(in_memory, streamed);
    }
});
