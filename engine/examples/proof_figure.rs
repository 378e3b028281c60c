//! The inclusion-proof figure of docs/benchmarks.md: build a log of N
//! records of 64-byte payloads, then time roots and proofs made from it
//! (`Log::tree_root_at`, `inclusion_proof`, `consistency_proof`) in a fresh
//! process. Not run in CI.
//!
//! ```text
//! cargo run --release -p chainlog-engine --example proof_figure -- build DIR 10000000
//! cargo run --release -p chainlog-engine --example proof_figure -- prove DIR [COUNT] [MIN_LEVEL]
//! ```
//!
//! `prove` times the first proof after the open separately (its level
//! files are loaded then), then COUNT (default 2,000) proofs of random
//! seqs at the head, COUNT at random sizes, COUNT consistency proofs; each
//! is checked with `merkle::verify_*`. For a cold page cache, evict the
//! log's files first (`dd if=FILE iflag=nocache count=0` for each).

use std::time::{Duration, Instant};

use engine::merkle::{self, leaf_hash};
use engine::testing::Rng;
use engine::{Config, Log};

fn config(min_level: Option<u32>) -> Config {
    let mut c = Config {
        log_id: Some(*b"proof-figure-log"),
        ..Config::default()
    };
    if let Some(l) = min_level {
        c.tree_min_level = l;
    }
    c
}

fn build(dir: &str, n: u64) {
    let started = Instant::now();
    let log = Log::open(dir, config(None)).expect("open");
    let mut next = log.head().map_or(0, |h| h.seq + 1);
    const BATCH: u64 = 1_000;
    while next < n {
        let k = BATCH.min(n - next);
        let batch: Vec<Vec<u8>> = (next..next + k)
            .map(|i| {
                format!(
                    "{{\"actor\":\"user-{:08}\",\"action\":\"doc.read\",\"n\":{i:014}}}",
                    i % 99_991
                )
                .into_bytes()
            })
            .collect();
        assert!(batch.iter().all(|p| p.len() == 64), "64-byte payloads");
        log.append_batch(&batch).expect("append");
        next += k;
    }
    let took = started.elapsed();
    println!(
        "built {n} records of 64-byte payloads in {:.1} s ({:.0} records/s), {} segments, segment_size {} MiB, tree_min_level {}",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        log.segment_count(),
        log_segment_mib(),
        config(None).tree_min_level,
    );
}

fn log_segment_mib() -> u64 {
    Config::default().segment_size >> 20
}

struct Times(Vec<Duration>);

impl Times {
    fn report(&mut self, what: &str) {
        self.0.sort_unstable();
        let n = self.0.len();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mean = self.0.iter().map(|&d| us(d)).sum::<f64>() / n as f64;
        println!(
            "{what}: {n} runs, mean {mean:.1} us, p50 {:.1} us, p99 {:.1} us, max {:.1} us",
            us(self.0[n / 2]),
            us(self.0[n * 99 / 100]),
            us(self.0[n - 1])
        );
    }
}

fn prove(dir: &str, count: usize, min_level: Option<u32>) {
    let started = Instant::now();
    let log = Log::open(dir, config(min_level)).expect("open");
    let opened = started.elapsed();
    let head = log.head().expect("a log with records");
    let n = head.seq + 1;
    println!(
        "opened {n} records in {:.1} ms (recovery; level files not read), tree_min_level {}",
        opened.as_secs_f64() * 1e3,
        config(min_level).tree_min_level
    );
    // The seed from the environment, so that runs after evicting the page
    // cache each prove another record.
    let seed = std::env::var("PROOF_SEED").map_or(7, |s| s.parse().expect("PROOF_SEED"));
    let mut rng = Rng::new(seed);

    // The first proof: every level file it needs is mapped (or rebuilt).
    let seq = rng.below(n);
    let t = Instant::now();
    let proof = log.inclusion_proof(seq, n).expect("proof");
    let first = t.elapsed();
    let leaf = leaf_hash(&log.read(seq).expect("read").hash);
    merkle::verify_inclusion(seq, n, &leaf, &proof, &head.tree_root).expect("verifies");
    println!(
        "first inclusion proof after open: seq {seq} at size {n}: {} hashes ({} bytes), {:.1} us; level files rebuilt: {}",
        proof.len(),
        proof.len() * 32,
        first.as_secs_f64() * 1e6,
        log.stats().level_files_rebuilt
    );
    if count == 0 {
        return;
    }

    let mut head_times = Times(Vec::new());
    let mut lens = 0usize;
    for _ in 0..count {
        let seq = rng.below(n);
        let t = Instant::now();
        let proof = log.inclusion_proof(seq, n).expect("proof");
        head_times.0.push(t.elapsed());
        lens += proof.len();
        let leaf = leaf_hash(&log.read(seq).expect("read").hash);
        merkle::verify_inclusion(seq, n, &leaf, &proof, &head.tree_root).expect("verifies");
    }
    println!(
        "inclusion proofs at the head ({n}): mean {:.1} hashes ({:.0} bytes)",
        lens as f64 / count as f64,
        lens as f64 * 32.0 / count as f64
    );
    head_times.report("inclusion proof at the head");

    let mut past_times = Times(Vec::new());
    let mut root_times = Times(Vec::new());
    for _ in 0..count {
        let size = 1 + rng.below(n);
        let seq = rng.below(size);
        let t = Instant::now();
        let root = log.tree_root_at(size).expect("root");
        root_times.0.push(t.elapsed());
        let t = Instant::now();
        let proof = log.inclusion_proof(seq, size).expect("proof");
        past_times.0.push(t.elapsed());
        let leaf = leaf_hash(&log.read(seq).expect("read").hash);
        merkle::verify_inclusion(seq, size, &leaf, &proof, &root).expect("verifies");
    }
    root_times.report("tree_root_at(random size)");
    past_times.report("inclusion proof at a random size");

    let mut cons_times = Times(Vec::new());
    let mut lens = 0usize;
    for _ in 0..count {
        let old = 1 + rng.below(n);
        let t = Instant::now();
        let proof = log.consistency_proof(old, n).expect("proof");
        cons_times.0.push(t.elapsed());
        lens += proof.len();
        let old_root = log.tree_root_at(old).expect("root");
        merkle::verify_consistency(old, n, &old_root, &head.tree_root, &proof).expect("verifies");
    }
    println!(
        "consistency proofs to the head: mean {:.1} hashes",
        lens as f64 / count as f64
    );
    cons_times.report("consistency proof (random old size -> head)");
    println!(
        "level files rebuilt in all: {}",
        log.stats().level_files_rebuilt
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["build", dir, n] => build(dir, n.parse().expect("record count")),
        ["prove", dir] => prove(dir, 2_000, None),
        ["prove", dir, count] => prove(dir, count.parse().expect("count"), None),
        ["prove", dir, count, level] => prove(
            dir,
            count.parse().expect("count"),
            Some(level.parse().expect("min level")),
        ),
        _ => {
            eprintln!("usage: proof_figure build DIR N | prove DIR [COUNT] [MIN_LEVEL]");
            std::process::exit(2);
        }
    }
}
