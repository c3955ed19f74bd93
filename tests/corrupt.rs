//! Corruption sweep: real captures from fixtures/corpus damaged three ways at
//! test time (seeded, nothing committed), each read under the sweep's time and
//! memory limits:
//! - `editcap -E P --seed S` (Wireshark's own fuzzing: random packet bytes
//!   changed, record headers intact), written as pcap and as pcapng. The file
//!   is sound, so the run must exit 0 and count every packet capinfos counts:
//!   a corrupt packet is counted and skipped, never a reason to stop.
//! - truncation at a random offset: exit 0 (cut on a record boundary) or exit
//!   2 with one line naming the file and the offset.
//! - random bytes overwritten anywhere, headers included: exit 0 or 2, as
//!   above; never a panic, a hang or an allocation of a claimed size.
//!
//! A summary goes to target/corruption.md. Needs editcap and capinfos
//! (`make test` installs them with tshark).
mod support;
use portflow_synth::Rng;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

/// Real captures of different link types, tunnels and formats.
const SOURCES: &[&str] = &[
    "corpus/zeek/testing/btest/Traces/tunnels/gtp/gtp1_gn_normal_incl_fragmentation.pcap",
    "corpus/gopacket/pcap/test_loopback.pcap",
    "corpus/zeek/testing/btest/Traces/smtp.pcap",
    "corpus/zeek/testing/btest/Traces/tunnels/Teredo.pcap",
    "corpus/zeek/testing/btest/Traces/ssl-and-ssh-using-sslh.pcap",
    "corpus/tcpdump/tests/mptcp-v1.pcap",
    "corpus/zeek/testing/btest/Traces/mixed-vlan-mpls.pcap",
    "corpus/zeek/testing/btest/Traces/llc.pcap",
    "generated/mixed-link.pcapng",
];
const PROBABILITIES: &[&str] = &["0.002", "0.02", "0.1", "0.5"];
const SEEDS_PER_PROBABILITY: u64 = 12;
const TRUNCATIONS_PER_SOURCE: usize = 35;
const OVERWRITES_PER_SOURCE: usize = 35;

fn capinfos_packets(f: &Path) -> u64 {
    let o = Command::new("capinfos")
        .args(["-c", "-M"])
        .arg(f)
        .output()
        .expect("capinfos");
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Number of packets:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("capinfos on {}: {text}", f.display()))
}

/// One damaged file, and the packets it holds when it is sound.
struct Case {
    file: PathBuf,
    /// Packets the file holds when it is sound (editcap variants).
    packets: Option<u64>,
}

/// `editcap -E`: packet bytes only; the packet count must survive.
fn editcap_variants(dir: &Path, si: usize, src: &Path) -> Vec<Case> {
    let mut jobs = Vec::new();
    for (pi, p) in PROBABILITIES.iter().enumerate() {
        for seed in 0..SEEDS_PER_PROBABILITY {
            // A pcapng of several link types cannot be written as pcap.
            let format = if seed % 2 == 0 && src.extension().is_some_and(|e| e == "pcap") {
                "pcap"
            } else {
                "pcapng"
            };
            let out = dir.join(format!("s{si}-E{pi}-seed{seed}.{format}"));
            jobs.push((p.to_string(), seed, format, out));
        }
    }
    std::thread::scope(|s| {
        for chunk in jobs.chunks(jobs.len().div_ceil(2)) {
            s.spawn(move || {
                for (p, seed, format, out) in chunk {
                    let st = Command::new("editcap")
                        .args(["-E", p, "--seed", &seed.to_string(), "-F", format])
                        .arg(src)
                        .arg(out)
                        .status()
                        .expect("editcap");
                    assert!(st.success(), "editcap on {}", src.display());
                }
            });
        }
    });
    jobs.into_iter()
        .map(|(_, _, _, out)| Case {
            packets: Some(capinfos_packets(&out)),
            file: out,
        })
        .collect()
}

/// Truncations anywhere past the first byte, and random bytes overwritten
/// (record and block headers included; half of the files get one to four
/// bytes, the rest one in every hundred).
fn cut_and_overwritten(dir: &Path, si: usize, data: &[u8], rng: &mut Rng) -> Vec<Case> {
    let mut cases = Vec::new();
    for t in 0..TRUNCATIONS_PER_SOURCE {
        let at = 1 + rng.range(0, data.len() as u64 - 2) as usize;
        let out = dir.join(format!("s{si}-cut{t}-{at}.pcap"));
        std::fs::write(&out, &data[..at]).unwrap();
        cases.push(Case {
            file: out,
            packets: None,
        });
    }
    for t in 0..OVERWRITES_PER_SOURCE {
        let mut d = data.to_vec();
        let n = if t % 2 == 0 {
            rng.range(1, 4) as usize
        } else {
            d.len() / 100
        };
        for _ in 0..n {
            let at = rng.range(0, d.len() as u64 - 1) as usize;
            d[at] = rng.next_u64() as u8;
        }
        let out = dir.join(format!("s{si}-bytes{t}.pcap"));
        std::fs::write(&out, &d).unwrap();
        cases.push(Case {
            file: out,
            packets: None,
        });
    }
    cases
}

/// The sweep's page in docs/sweeps.
fn write_note(cases: &[Case], outcomes: &[sweep::Outcome]) {
    let mut text = String::from(
        "Generated by `tests/corrupt.rs` (seeded; refresh with\n\
         `PORTFLOW_SWEEP_DOCS=docs/sweeps cargo test --release --test corrupt`).\n\n",
    );
    text += &format!(
        "{} variants of {} real captures: {} by `editcap -E` ({} probabilities x {} seeds, pcap and pcapng), \
         {} truncations at random offsets, {} with random bytes overwritten.\n\n",
        cases.len(),
        SOURCES.len(),
        SOURCES.len() * PROBABILITIES.len() * SEEDS_PER_PROBABILITY as usize,
        PROBABILITIES.len(),
        SEEDS_PER_PROBABILITY,
        SOURCES.len() * TRUNCATIONS_PER_SOURCE,
        SOURCES.len() * OVERWRITES_PER_SOURCE,
    );
    text += &sweep::summary("Corruption sweep", outcomes);
    sweep::write_summary("corruption.md", &text);
}

#[test]
fn corrupted_captures_are_read_or_refused_clearly() {
    require!(
        tool("editcap") && tool("capinfos"),
        "needs editcap and capinfos (apt-get install tshark)"
    );
    let dir = std::env::temp_dir().join(format!("portflow-corrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cases = Vec::new();
    let mut rng = Rng::new(0x5eed);
    for (si, src) in SOURCES.iter().enumerate() {
        let src = fixture(src);
        let data = std::fs::read(&src).unwrap();
        cases.extend(editcap_variants(&dir, si, &src));
        cases.extend(cut_and_overwritten(&dir, si, &data, &mut rng));
    }
    assert!(cases.len() >= 1000, "{} variants", cases.len());
    let files: Vec<PathBuf> = cases.iter().map(|c| c.file.clone()).collect();
    let outcomes = sweep::read_all(&files);
    let mut problems: Vec<String> = outcomes.iter().filter_map(|o| o.problem()).collect();
    for (c, o) in cases.iter().zip(&outcomes) {
        let Some(want) = c.packets else { continue };
        let got = o
            .report
            .as_ref()
            .and_then(|r| r["totals"]["packets"].as_u64());
        if o.code != Some(0) || got != Some(want) {
            problems.push(format!(
                "{}: a sound file with corrupt packets: exit {:?}, {got:?} packets where capinfos counts {want}: {}",
                c.file.display(),
                o.code,
                o.stderr
            ));
        }
    }
    write_note(&cases, &outcomes);
    if problems.is_empty() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(
        problems.is_empty(),
        "{} problems (files kept in {}):\n{}",
        problems.len(),
        dir.display(),
        problems.join("\n")
    );
}
