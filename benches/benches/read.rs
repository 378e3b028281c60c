//! The read side: a point read through the sparse index, a scan, a time
//! seek, and full verification, over a log of 256-byte records.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use engine::testing::Rng;
use engine::{Config, Durability, Log};

const RECORDS: u64 = 200_000;

fn read_side(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(".").expect("tempdir");
    let config = Config {
        segment_size: 8 << 20,
        durability: Durability::UnsafeNoSync,
        ..Config::default()
    };
    let log = Log::open(dir.path(), config.clone()).expect("open");
    let batch: Vec<Vec<u8>> = (0..1000).map(|i| vec![(i % 251) as u8; 256]).collect();
    for _ in 0..RECORDS / 1000 {
        log.append_batch(&batch).expect("append");
    }
    drop(log);
    let log = Log::open(dir.path(), config).expect("reopen");
    let head = log.head().expect("head");

    let mut g = c.benchmark_group("read");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    let mut rng = Rng::new(12345);
    g.bench_function("point_read_via_index", |b| {
        b.iter(|| black_box(log.read(rng.below(RECORDS)).expect("read")))
    });
    g.bench_function("seek_time", |b| {
        b.iter(|| {
            black_box(
                log.seek_time(head.created_at - rng.below(1_000_000))
                    .expect("seek"),
            )
        })
    });
    g.throughput(Throughput::Elements(RECORDS));
    g.bench_function("scan_all", |b| {
        b.iter(|| assert_eq!(log.scan(..).filter(|r| r.is_ok()).count() as u64, RECORDS))
    });
    drop(log);
    for threads in [1usize, 2] {
        g.bench_function(format!("verify_{threads}_threads"), |b| {
            b.iter(|| {
                let options = engine::verify::Options {
                    threads,
                    ..Default::default()
                };
                let r = engine::verify::verify(&engine::storage::FsStorage, dir.path(), &options)
                    .expect("verify");
                assert_eq!(r.records_checked, RECORDS);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, read_side);
criterion_main!(benches);
