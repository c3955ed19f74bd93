//! Flow table and whole-pipeline cost: `cargo bench --bench pipeline`.
//!
//! - `flow_table/{flows}`: accounting packets spread over N flows in one worker
//!   (shows whether the cost per packet grows with the number of flows).
//! - `read/{workers}`: `analyze_files` on a generated capture (100k packets,
//!   5,000 flows, 500 service ports) with 1 and 2 workers.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portflow::decode::v4_mapped;
use portflow::pipeline::{analyze_files, Options};
use portflow::services::{Services, Transport};
use portflow::source::Input;
use portflow::stats::flow::{FlowKey, FlowPacket, FlowTable, Timeouts};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

fn packets(flows: u32, n: usize) -> Vec<FlowPacket> {
    let mut rng = portflow_synth::Rng::new(42);
    (0..n)
        .map(|i| {
            let f = rng.range(0, flows as u64 - 1) as u32;
            let c = v4_mapped(&[10, (f >> 16) as u8, (f >> 8) as u8, f as u8]);
            let s = v4_mapped(&[172, 16, 0, 1]);
            let (key, from_lo) =
                FlowKey::new(Transport::Tcp, c, 30000 + (f % 30000) as u16, s, 443);
            FlowPacket::new(key, from_lo, 1_000_000 * i as u64, 600, 0x10)
        })
        .collect()
}

fn flow_table(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_table");
    let services = Arc::new(Services::iana());
    for flows in [100u32, 10_000, 1_000_000] {
        let pkts = packets(flows, 200_000);
        g.throughput(Throughput::Elements(pkts.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(flows), &pkts, |b, pkts| {
            b.iter_with_setup(
                || FlowTable::new(services.clone(), Timeouts::default(), 4_000_000, false),
                |mut t| {
                    for p in pkts {
                        t.account(p, &[]);
                    }
                    t
                },
            )
        });
    }
    g.finish();
}

fn read(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("portflow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("synth.pcap");
    let mut bytes = Vec::new();
    portflow_synth::scale::generate(7, 100_000, 5_000, 500, |chunk| {
        bytes.extend_from_slice(chunk)
    });
    std::fs::write(&path, &bytes).unwrap();
    let inputs = vec![Input::Path(path)];
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(100_000));
    g.sample_size(20);
    for workers in [1usize, 2] {
        let opts = Options {
            workers,
            ..Options::default()
        };
        g.bench_with_input(BenchmarkId::from_parameter(workers), &opts, |b, opts| {
            b.iter(|| analyze_files(&inputs, opts, Arc::new(AtomicU64::new(0))).expect("reads"))
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, flow_table, read);
criterion_main!(benches);
