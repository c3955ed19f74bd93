//! Splitting legacy pcap files for several reading threads: whatever the
//! bytes, the ranges walked apart and stitched (wrong guesses walked again)
//! give exactly the records of the sequential walk, and stop where it stops.
//! The ranges' first walks run one after another here (`stitch`; threads
//! would only make each run slower: tests/split.rs runs them on threads).
//! Each input is tried as a file and as the payload of every record of a
//! file (a capture of a pcap file being copied), where record headers inside
//! payloads make wrong boundaries look valid.
#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;
use portflow::source::split::{stitch, PcapLayout};

fn check(data: &[u8]) {
    let Some(layout) = PcapLayout::of(data) else {
        return;
    };
    let mut all = Vec::new();
    let landing = layout.walk(data, layout.first, data.len(), &mut |at| all.push(at));
    let stopped = landing.stopped();
    for n in 2..=5 {
        let ranges = layout.plan(data, n);
        let walk_range = |start: usize, end: usize| {
            let mut v = Vec::new();
            let landing = layout.walk(data, start, end, &mut |at| v.push(at));
            (v, landing)
        };
        let first = ranges.iter().map(|r| walk_range(r.start, r.end)).collect();
        let w = stitch(&ranges, first, walk_range);
        assert_eq!(w.parts.concat(), all, "{n} ranges: {ranges:?}");
        assert_eq!(w.stopped, stopped);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    check(&common::wrapped_in_pcap(data));
});
