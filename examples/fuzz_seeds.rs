//! Seed corpora for the fuzz targets (fuzz/), made from the fixtures:
//!
//!   cargo run --release --example fuzz_seeds -- OUT_DIR
//!
//! OUT_DIR/read_file, OUT_DIR/split and OUT_DIR/chunks: every capture of
//! fixtures/ up to 64 KiB, as it is.
//! OUT_DIR/decode: the first 20 packets of each, as the decode target takes
//! them: the link type (2 bytes, little-endian), then the frame.
use portflow::source::{read_capture, Input};
use std::path::{Path, PathBuf};

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("fixtures folder") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            captures(&p, out);
        } else if p
            .extension()
            .is_some_and(|x| x == "pcap" || x == "pcapng" || x == "gz" || x == "cap")
        {
            out.push(p);
        }
    }
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: fuzz_seeds OUT_DIR");
        std::process::exit(2)
    }));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut files = Vec::new();
    captures(&root, &mut files);
    files.sort();
    let (files_dir, decode_dir) = (out.join("read_file"), out.join("decode"));
    let (split_dir, chunks_dir) = (out.join("split"), out.join("chunks"));
    std::fs::create_dir_all(&files_dir).expect("create seed folder");
    std::fs::create_dir_all(&split_dir).expect("create seed folder");
    std::fs::create_dir_all(&chunks_dir).expect("create seed folder");
    std::fs::create_dir_all(&decode_dir).expect("create seed folder");
    let (mut nf, mut np) = (0, 0);
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).expect("read fixture");
        if bytes.len() <= 64 * 1024 {
            std::fs::write(files_dir.join(format!("{i:03}")), &bytes).expect("write seed");
            std::fs::write(split_dir.join(format!("{i:03}")), &bytes).expect("write seed");
            std::fs::write(chunks_dir.join(format!("{i:03}")), &bytes).expect("write seed");
            nf += 1;
        }
        let mut k = 0;
        let _ = read_capture(&Input::Path(f.clone()), Default::default(), &mut |p| {
            if k < 20 {
                let mut seed = (p.link.0 as u16).to_le_bytes().to_vec();
                seed.extend_from_slice(p.data);
                let _ = std::fs::write(decode_dir.join(format!("{i:03}-{k:02}")), seed);
                k += 1;
                np += 1;
            }
        });
    }
    println!("{nf} capture seeds, {np} packet seeds in {}", out.display());
}
