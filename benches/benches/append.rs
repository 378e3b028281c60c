//! Durable appends through the engine, beside the raw ceiling of the same
//! disk measured in the same run: one write and one fdatasync per group of
//! the same number of 256-byte records, no engine.
//!
//! Each engine benchmark reports records per second; the matching
//! `ceiling/N` benchmark is the disk's limit at N records per sync. The
//! engine's records per sync under 16 threads is printed to stderr.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;
use std::time::{Duration, Instant};

use chainlog_benches::RawCeiling;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::{Config, Log};

const PAYLOAD: usize = 256;
/// On-disk size of a 256-byte record (64 bytes of header and hash).
const RECORD: usize = PAYLOAD + 64;

fn config() -> Config {
    Config {
        segment_size: 256 << 20,
        ..Config::default()
    }
}

fn engine_appends(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(".").expect("tempdir");
    let mut g = c.benchmark_group("durable_append");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    let payload = vec![0x5a; PAYLOAD];

    let log = Log::open(dir.path().join("one"), config()).expect("open");
    g.throughput(Throughput::Elements(1));
    g.bench_function("1_thread_x_1_record", |b| {
        b.iter(|| log.append(&payload).expect("append"))
    });
    drop(log);

    let batch: Vec<Vec<u8>> = vec![payload.clone(); 100];
    let log = Log::open(dir.path().join("batch"), config()).expect("open");
    g.throughput(Throughput::Elements(100));
    g.bench_function("1_thread_x_100_records", |b| {
        b.iter(|| log.append_batch(&batch).expect("append"))
    });
    drop(log);

    // 16 threads, each appending one record at a time; an iteration is one
    // round of 16 appends, timed over many rounds.
    let log = Arc::new(Log::open(dir.path().join("sixteen"), config()).expect("open"));
    g.throughput(Throughput::Elements(16));
    g.bench_function("16_threads_x_1_record", |b| {
        b.iter_custom(|rounds| {
            let start = Instant::now();
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let log = log.clone();
                    let payload = payload.clone();
                    std::thread::spawn(move || {
                        for _ in 0..rounds {
                            log.append(&payload).expect("append");
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("thread");
            }
            start.elapsed()
        })
    });
    let s = log.stats();
    eprintln!(
        "16 threads x 1 record: {:.1} records per fdatasync ({} records, {} syncs)",
        s.appends as f64 / s.syncs.max(1) as f64,
        s.appends,
        s.syncs
    );
    drop(log);
    g.finish();

    let mut g = c.benchmark_group("ceiling");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    for group in [1usize, 8, 16, 100] {
        let mut raw = RawCeiling::new(dir.path(), RECORD, group, false).expect("ceiling file");
        g.throughput(Throughput::Elements(group as u64));
        g.bench_with_input(BenchmarkId::new("growing", group), &group, |b, _| {
            b.iter(|| raw.group().expect("write+fdatasync"))
        });
    }
    let mut raw = RawCeiling::new(dir.path(), RECORD, 1, true).expect("ceiling file");
    g.throughput(Throughput::Elements(1));
    g.bench_function("prewritten/1", |b| {
        b.iter(|| raw.group().expect("write+fdatasync"))
    });
    g.finish();
}

criterion_group!(benches, engine_appends);
criterion_main!(benches);
