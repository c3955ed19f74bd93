//! Splitting legacy pcap files for several reading threads
//! (`source::split`): over every legacy pcap file of the fixtures, the shared
//! corpus (`PORTFLOW_CORPUS`, default `../shared/corpus`) and the benchmark
//! input, the ranges walked on 2 to 8 threads and stitched give exactly the
//! records of the sequential walk, which are the packets the reader reads,
//! and stop where it stops. The benchmark input (benches/make-input.sh) is
//! the corpus's clean Ethernet captures repeated, checked with the corpus,
//! and a synthetic tail, made here as the script makes it.
mod support;

use portflow::source::split::{walk_split, Landing, PcapLayout};
use portflow::source::{read_bytes, FileErrorKind};
use std::path::Path;
use support::*;

/// What splitting one file found: wrong guesses walked again.
struct Checked {
    redone: usize,
}

/// Checks `file` if it is a legacy pcap file the reader opens.
fn check(file: &Path) -> Option<Checked> {
    check_bytes(&file.display().to_string(), &std::fs::read(file).unwrap())
}

fn check_bytes(name: &str, data: &[u8]) -> Option<Checked> {
    let layout = PcapLayout::of(data)?;
    let mut packets = 0u64;
    let read = read_bytes(name, data, &mut |_| packets += 1);
    if let Err(e) = &read {
        if e.offset == 0 || e.kind == FileErrorKind::NotACapture {
            return None;
        }
    }
    let mut all = Vec::new();
    let landing = layout.walk(data, layout.first, data.len(), &mut |at| all.push(at));
    assert_eq!(
        all.len() as u64,
        packets,
        "{name}: records and packets read"
    );
    match (&read, landing) {
        (Ok(_), Landing::At(end)) => assert_eq!(end, data.len(), "{name}"),
        (Err(e), Landing::Stopped(at)) => assert_eq!(e.offset, at as u64, "{name}"),
        (r, l) => panic!("{name}: the reader gave {r:?}, the walk {l:?}"),
    }
    let mut redone = 0;
    for n in 2..=8 {
        let ranges = layout.plan(data, n);
        let w = walk_split(&ranges, |start, end| {
            let mut v = Vec::new();
            let landing = layout.walk(data, start, end, &mut |at| v.push(at));
            (v, landing)
        });
        assert_eq!(w.parts.concat(), all, "{name}: {n} ranges {ranges:?}");
        assert_eq!(w.stopped, landing.stopped(), "{name}");
        redone += w.redone;
    }
    Some(Checked { redone })
}

fn check_all(files: &[std::path::PathBuf]) -> (usize, usize) {
    let (mut checked, mut redone) = (0, 0);
    for f in files {
        if let Some(c) = check(f) {
            checked += 1;
            redone += c.redone;
        }
    }
    (checked, redone)
}

#[test]
fn fixtures_split_like_the_sequential_walk() {
    let (checked, redone) = check_all(&files_under(&root().join("fixtures")));
    eprintln!("fixtures: {checked} legacy pcap files, {redone} ranges redone");
    assert!(checked >= 15, "{checked} files");
}

#[test]
fn corpus_splits_like_the_sequential_walk() {
    let corpus = corpus_dir();
    let why = format!("no corpus at {} (set PORTFLOW_CORPUS)", corpus.display());
    require!(corpus.is_dir(), &why);
    let (checked, redone) = check_all(&files_under(&corpus));
    eprintln!("corpus: {checked} legacy pcap files, {redone} ranges redone");
    assert!(checked > 500, "{checked} files");
}

#[test]
fn the_benchmark_inputs_synthetic_tail_splits_like_the_sequential_walk() {
    // `synth scale 400000 100000 5000`, as benches/make-input.sh runs it.
    let mut data = Vec::new();
    portflow_synth::scale::generate(7, 400_000, 100_000, 5_000, |b| data.extend_from_slice(b));
    let c = check_bytes("synthetic tail", &data).expect("a legacy pcap file");
    assert_eq!(c.redone, 0, "no wrong guess on plain traffic");
}
