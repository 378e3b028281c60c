//! The CPU hot paths: one chain step per record size, record encode and
//! decode.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::chain;
use engine::format::record::{self, KIND_DATA};

fn chain_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("chain_step");
    for size in [64usize, 256, 1024, 4096] {
        let payload = vec![0x5a; size];
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            let mut prev = [0u8; 32];
            let mut seq = 0u64;
            b.iter(|| {
                prev = chain::step(&prev, seq, 1_700_000_000_000_000_000 + seq, KIND_DATA, p);
                seq += 1;
                black_box(&prev);
            })
        });
    }
    g.finish();
}

fn record_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_codec_256");
    let payload = vec![0x5a; 256];
    let hash = [7u8; 32];
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(4096);
    g.bench_function("encode", |b| {
        b.iter(|| {
            buf.clear();
            record::encode(&mut buf, 42, 1, KIND_DATA, 128, black_box(&payload), &hash);
            black_box(&buf);
        })
    });
    let mut enc = Vec::new();
    record::encode(&mut enc, 42, 1, KIND_DATA, 128, &payload, &hash);
    g.bench_function("decode", |b| {
        b.iter(|| black_box(record::decode(black_box(&enc), 1 << 20).is_ok()))
    });
    g.finish();
}

criterion_group!(benches, chain_step, record_codec);
criterion_main!(benches);
