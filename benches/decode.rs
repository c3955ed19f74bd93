//! Decoder cost per packet kind: `cargo bench --bench decode`.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portflow::decode::{decode, Decoded, LinkType};
use portflow_synth::build::*;
use std::hint::black_box;

fn frames() -> Vec<(&'static str, LinkType, Vec<u8>)> {
    let t4 = tcp(
        v4(10, 0, 0, 1),
        40000,
        v4(10, 0, 0, 2),
        443,
        ACK | PSH,
        1,
        1,
        &[0u8; 512],
    );
    let u6 = udp(v6(1), 5353, v6(2), 53, &[0u8; 64]);
    vec![
        ("ethernet-ipv4-tcp", LinkType::ETHERNET, eth_ip(&t4)),
        ("ethernet-ipv6-udp", LinkType::ETHERNET, eth_ip(&u6)),
        (
            "qinq-ipv4-tcp",
            LinkType::ETHERNET,
            ethernet(0x0800, &[(0x88a8, 1), (0x8100, 2)], &t4),
        ),
        ("sll2-ipv4-tcp", LinkType::LINUX_SLL2, sll2(&t4)),
        (
            "vxlan-ipv4-tcp",
            LinkType::ETHERNET,
            tunnel(Tunnel::Vxlan, &t4),
        ),
        ("gre-ipv4-tcp", LinkType::ETHERNET, tunnel(Tunnel::Gre, &t4)),
        (
            "truncated-ipv4",
            LinkType::ETHERNET,
            eth_ip(&t4)[..30].to_vec(),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    for (name, link, f) in frames() {
        let mut d = Decoded::default();
        g.bench_function(name, |b| {
            b.iter(|| {
                decode(link, black_box(&f), &mut d);
                black_box(d.sport)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
