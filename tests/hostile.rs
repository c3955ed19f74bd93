//! Hostile headers, crafted byte by byte: file-level lies are one clear error
//! (exit 2, file and offset named), packet-level lies are counted decode
//! errors in a report that goes on; none may allocate what a length claims
//! (each run has the sweep's 1 GiB address-space limit).
mod support;
use serde_json::Value;
use std::path::PathBuf;
use support::*;

fn pcap_header(snaplen: u32, major: u16, minor: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    v.extend_from_slice(&major.to_le_bytes());
    v.extend_from_slice(&minor.to_le_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&snaplen.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    v
}

fn record(v: &mut Vec<u8>, caplen: u32, origlen: u32, data: &[u8]) {
    v.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&caplen.to_le_bytes());
    v.extend_from_slice(&origlen.to_le_bytes());
    v.extend_from_slice(data);
}

/// Ethernet + IPv4 (header as given) + `rest`.
fn eth_ipv4(ihl_byte: u8, total_len: u16, proto: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00];
    p.extend_from_slice(&[ihl_byte, 0]);
    p.extend_from_slice(&total_len.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    p.extend_from_slice(rest);
    p
}

fn tcp(data_offset_words: u8) -> Vec<u8> {
    let mut t = vec![0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0];
    t.push(data_offset_words << 4);
    t.extend_from_slice(&[0x02, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn good_packet() -> Vec<u8> {
    eth_ipv4(0x45, 40, 6, &tcp(5))
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portflow-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Exit 2 with one line naming the file and containing `msg`.
fn refused(name: &str, bytes: &[u8], msg: &str) {
    let f = write(name, bytes);
    let o = sweep::read_limited(&f);
    assert_eq!(o.code, Some(2), "{name}: {}", o.stderr);
    assert!(o.problem().is_none(), "{name}: {:?}", o.problem());
    assert!(o.stderr.contains(msg), "{name}: {}", o.stderr);
}

/// Exit 0; the report.
fn read_ok(name: &str, bytes: &[u8]) -> Value {
    let f = write(name, bytes);
    let o = sweep::read_limited(&f);
    assert_eq!(o.code, Some(0), "{name}: {}", o.stderr);
    o.report.expect("a report")
}

fn errors(r: &Value) -> Vec<(String, String, u64)> {
    r["totals"]["decode_error_detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["layer"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
                e["packets"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn record_claiming_four_gigabytes_is_refused_without_allocating_it() {
    let mut f = pcap_header(65535, 2, 4);
    record(&mut f, 54, 54, &good_packet());
    let at = f.len();
    record(&mut f, 0xffff_fff0, 0xffff_fff0, &good_packet());
    refused(
        "caplen-4g.pcap",
        &f,
        &format!("record claims 4294967280 captured bytes, more than 262144 at byte offset {at} (packet 2)"),
    );
}

#[test]
fn original_length_of_four_gigabytes_counts_as_a_bad_length_not_as_bytes() {
    let mut f = pcap_header(65535, 2, 4);
    let p = good_packet();
    record(&mut f, p.len() as u32, 0xffff_ffff, &p);
    let r = read_ok("origlen-4g.pcap", &f);
    assert_eq!(r["totals"]["packets"], 1);
    assert_eq!(r["totals"]["bytes"], p.len() as u64);
    assert_eq!(errors(&r), vec![("link".into(), "bad-length".into(), 1)]);
}

#[test]
fn snaplen_of_zero_in_the_file_header_reads_the_records() {
    let mut f = pcap_header(0, 2, 4);
    for _ in 0..3 {
        let p = good_packet();
        record(&mut f, p.len() as u32, p.len() as u32, &p);
    }
    let r = read_ok("snaplen-0.pcap", &f);
    assert_eq!(r["totals"]["packets"], 3);
    assert_eq!(r["totals"]["decode_errors"], 0);
}

#[test]
fn unsupported_file_versions_are_refused_like_libpcap() {
    refused(
        "v1.pcap",
        &pcap_header(65535, 1, 4),
        "unsupported pcap file format version 1.4",
    );
    refused(
        "v2-9.pcap",
        &pcap_header(65535, 2, 9),
        "unsupported pcap file format version 2.9",
    );
}

fn pcapng_shb() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
    v.extend_from_slice(&28u32.to_le_bytes());
    v.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&(-1i64).to_le_bytes());
    v.extend_from_slice(&28u32.to_le_bytes());
    v
}

fn pcapng_idb() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&20u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&20u32.to_le_bytes());
    v
}

/// An enhanced packet block whose length fields are as given.
fn pcapng_epb(block_len: u32, caplen: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&6u32.to_le_bytes());
    v.extend_from_slice(&block_len.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes()); // interface
    v.extend_from_slice(&[0; 8]); // timestamp
    v.extend_from_slice(&caplen.to_le_bytes());
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v.extend_from_slice(&block_len.to_le_bytes());
    v
}

#[test]
fn pcapng_block_lengths_that_loop_or_overrun_are_refused() {
    let p = good_packet();
    let good = pcapng_epb(32 + 56, p.len() as u32, &p);
    let mut base = pcapng_shb();
    base.extend(pcapng_idb());
    base.extend(&good);
    let at = base.len();
    // A block length of 0 would make a naive reader parse the same block forever.
    for (name, len) in [("zero", 0u32), ("eight", 8), ("unaligned", 90)] {
        let mut f = base.clone();
        f.extend(pcapng_epb(len, p.len() as u32, &p));
        let o = sweep::read_limited(&write(&format!("ng-len-{name}.pcapng"), &f));
        assert_eq!(o.code, Some(2), "{name}: {}", o.stderr);
        assert!(o.problem().is_none(), "{name}: {:?}", o.problem());
        assert!(
            o.stderr
                .contains(&format!("at byte offset {at} (packet 2)")),
            "{name}: {}",
            o.stderr
        );
    }
    // A block claiming 2 GB past the end is a damaged length, not a file cut
    // short (no block is that long).
    let mut f = base.clone();
    f.extend(pcapng_epb(0x7fff_fff0, p.len() as u32, &p));
    refused(
        "ng-len-2g.pcapng",
        &f,
        &format!("corrupt block (a block cannot be 2147483632 bytes long) at byte offset {at} (packet 2)"),
    );
    // A captured length past its own block.
    let mut f = base.clone();
    f.extend(pcapng_epb(32 + 56, 4000, &p));
    refused(
        "ng-caplen-past-block.pcapng",
        &f,
        &format!("at byte offset {at} (packet 2)"),
    );
}

#[test]
fn ip_and_tcp_lengths_that_lie_are_counted_decode_errors() {
    // (name, packet, error, TCP packets counted: a lying IP header hides the
    // ports; a lying TCP header still has them, and the packet counts for its flow)
    type Case = (&'static str, Vec<u8>, (&'static str, &'static str), u64);
    let cases: Vec<Case> = vec![
        // IHL 15 (60 bytes) in a 40-byte packet.
        (
            "ihl-past-end",
            eth_ipv4(0x4f, 40, 6, &tcp(5)),
            ("ipv4", "truncated"),
            1,
        ),
        // IHL 3: shorter than the fixed header.
        (
            "ihl-too-small",
            eth_ipv4(0x43, 40, 6, &tcp(5)),
            ("ipv4", "bad-header-length"),
            1,
        ),
        // Total length 12: shorter than the header itself.
        (
            "total-below-header",
            eth_ipv4(0x45, 12, 6, &tcp(5)),
            ("ipv4", "bad-length"),
            1,
        ),
        // TCP data offset 15 (60 bytes) where the datagram holds 20.
        (
            "tcp-offset-past-end",
            eth_ipv4(0x45, 40, 6, &tcp(15)),
            ("tcp", "bad-header-length"),
            2,
        ),
        // TCP data offset 2: shorter than the fixed header.
        (
            "tcp-offset-too-small",
            eth_ipv4(0x45, 40, 6, &tcp(2)),
            ("tcp", "bad-header-length"),
            2,
        ),
    ];
    for (name, p, (layer, reason), tcp_packets) in cases {
        let mut f = pcap_header(65535, 2, 4);
        record(&mut f, p.len() as u32, p.len() as u32, &p);
        let good = good_packet();
        record(&mut f, good.len() as u32, good.len() as u32, &good);
        let r = read_ok(&format!("{name}.pcap"), &f);
        assert_eq!(r["totals"]["packets"], 2, "{name}");
        assert_eq!(r["totals"]["decode_errors"], 1, "{name}");
        assert_eq!(
            errors(&r),
            vec![(layer.to_string(), reason.to_string(), 1)],
            "{name}"
        );
        assert_eq!(r["totals"]["tcp_packets"], tcp_packets, "{name}");
    }
}

#[test]
fn ipv6_extension_chains_that_never_end_are_bounded_and_counted() {
    // Hop-by-hop, then destination options pointing at each other, filling a
    // jumbo-sized packet: the chain never reaches a transport header.
    let mut ext = Vec::new();
    let n = 2000;
    for _ in 0..n {
        ext.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
    }
    let mut p = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x86, 0xdd];
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    p.push(0); // hop-by-hop first
    p.push(64);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend_from_slice(&ext);
    let mut f = pcap_header(65535, 2, 4);
    record(&mut f, p.len() as u32, p.len() as u32, &p);
    // The same chain cut short by the capture.
    record(&mut f, 200, p.len() as u32, &p[..200]);
    let r = read_ok("ipv6-ext-chain.pcap", &f);
    assert_eq!(r["totals"]["packets"], 2);
    assert_eq!(r["totals"]["decode_errors"], 2);
    let e = errors(&r);
    assert!(
        e.iter().all(|(l, _, _)| l == "ipv6"),
        "errors at the IPv6 layer: {e:?}"
    );
}
