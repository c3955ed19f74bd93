//! Hot-path hygiene: the number of heap allocations does not grow with the
//! number of packets. A counting global allocator wraps the system one; the
//! same 200 flows are read as 50,000 and as 400,000 packets (with payloads, so
//! payload inspection runs), and the longer read may allocate at most 16 more
//! times (batches are recycled; tables grow only with the flows), plus what
//! the time lines take as the capture spans more buckets: each time line (the
//! capture's and each port's, per table) grows to at most 361 buckets, by
//! doubling, so at most 10 times in all, whatever the packets. Both as pcap
//! and as pcapng whose packet blocks carry options (pcap-parser collects a
//! block's options in a vector; the reader reads packet blocks in place).
use portflow::pipeline::{analyze_files, Options};
use portflow::source::Input;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` above, i.e. from System.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// The same packets as a pcapng file whose every packet block carries
/// options, as capture tools write them: the direction flags and a comment.
fn as_pcapng_with_options(pcap: &[u8]) -> Vec<u8> {
    let mut ng = portflow_synth::write::Pcapng::new();
    let iface = ng.interface(1, 65535, 9);
    let word = |at: usize| u32::from_le_bytes(pcap[at..at + 4].try_into().unwrap());
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let (sec, usec, caplen) = (word(at), word(at + 4), word(at + 8) as usize);
        let frame = &pcap[at + 16..at + 16 + caplen];
        let ts = sec as u64 * 1_000_000_000 + usec as u64 * 1000;
        ng.packet_with_options(iface, ts, frame, &[(2, &1u32.to_le_bytes()), (1, b"seen")]);
        at += 16 + caplen;
    }
    ng.buf
}

/// Allocations reading `packets` packets, and the time lines that read kept
/// (the capture's and each port's, per table).
fn allocations_for(packets: u64, workers: usize, pcapng: bool) -> (u64, u64) {
    let dir = std::env::temp_dir().join(format!(
        "portflow-alloc-{}-{packets}-{workers}-{pcapng}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(if pcapng { "in.pcapng" } else { "in.pcap" });
    let mut bytes = Vec::new();
    portflow_synth::scale::generate(11, packets, 200, 20, |c| bytes.extend_from_slice(c));
    if pcapng {
        bytes = as_pcapng_with_options(&bytes);
    }
    std::fs::write(&path, &bytes).unwrap();
    drop(bytes);
    let opts = Options {
        workers,
        ..Options::default()
    };
    let inputs = vec![Input::Path(path)];
    let before = ALLOCS.load(Ordering::Relaxed);
    let a = analyze_files(&inputs, &opts, Arc::new(AtomicU64::new(0))).expect("reads");
    let n = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(a.totals.packets, packets);
    let timelines = (a.ports.iter().count() as u64 + 1) * workers as u64;
    drop(a);
    std::fs::remove_dir_all(&dir).unwrap();
    (n, timelines)
}

#[test]
fn allocations_do_not_grow_with_packets() {
    for (workers, pcapng) in [(1, false), (2, false), (2, true)] {
        let (small, _) = allocations_for(50_000, workers, pcapng);
        let (large, timelines) = allocations_for(400_000, workers, pcapng);
        let per_packet = large.saturating_sub(small) as f64 / 350_000.0;
        let format = if pcapng {
            "pcapng with packet options"
        } else {
            "pcap"
        };
        eprintln!("{format}, {workers} worker(s): {small} allocations for 50k packets, {large} for 400k ({per_packet:.4} per extra packet)");
        // 350,000 more packets over the same flows: nothing more to allocate
        // (a few for a batch more in flight at most).
        assert!(
            large.saturating_sub(small) <= 16 + 10 * timelines,
            "{per_packet} allocations per extra packet ({small} -> {large})"
        );
    }
}
