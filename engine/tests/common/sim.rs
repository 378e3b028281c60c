//! The simulated-storage workloads' shared pieces: a deterministic clock,
//! the configuration, and the checks made after every crash.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use engine::storage::SimStorage;
use engine::{Clock, Config, Log, Receipt};

/// A deterministic clock: every reading is 1 µs after the previous one.
#[derive(Debug)]
pub struct StepClock(AtomicU64);

impl Clock for StepClock {
    fn now_nanos(&self) -> u64 {
        self.0.fetch_add(1_000, Ordering::SeqCst)
    }
}

pub fn config() -> Config {
    Config {
        segment_size: 1024,
        segment_age: None,
        index_interval: 128,
        log_id: Some(*b"crash-sim-log-id"),
        clock: Arc::new(StepClock(AtomicU64::new(1_700_000_000_000_000_000))),
        ..Config::default()
    }
}

pub fn scale() -> u64 {
    std::env::var("CHAINLOG_CRASH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

pub fn dir() -> &'static Path {
    Path::new("/sim/log")
}

/// What a workload attempted and what was acknowledged.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Payloads in the order they were submitted (single writer: seq order).
    pub attempted: Vec<Vec<u8>>,
    pub acked: Vec<(Receipt, Vec<u8>)>,
}

/// Opens the recovered log and checks it against the outcome.
pub fn check_recovered(
    storage: &SimStorage,
    out: &Outcome,
    attempted_in_order: bool,
    base: usize,
) -> u64 {
    let log = match Log::open_with_storage(Arc::new(storage.clone()), dir(), config()) {
        Ok(l) => l,
        Err(e) => panic!("open after crash failed: {e}"),
    };
    let recs: Vec<engine::Record> = log
        .scan(..)
        .map(|r| r.unwrap_or_else(|e| panic!("scan after crash: {e}")))
        .collect();
    for (r, payload) in &out.acked {
        let rec = recs.get(r.seq as usize).unwrap_or_else(|| {
            panic!("acknowledged seq {} lost ({} recovered)", r.seq, recs.len())
        });
        assert_eq!(rec.hash, r.hash, "seq {}: hash differs", r.seq);
        assert_eq!(&rec.payload, payload, "seq {}: payload differs", r.seq);
    }
    assert!(
        recs.len() >= base,
        "records from before the workload were lost"
    );
    if attempted_in_order {
        let ours = &recs[base..];
        assert!(
            ours.len() <= out.attempted.len(),
            "more records than attempted"
        );
        for (i, rec) in ours.iter().enumerate() {
            assert_eq!(
                rec.payload, out.attempted[i],
                "seq {} is not what was attempted",
                rec.seq
            );
        }
    } else {
        let mut seen = std::collections::HashSet::new();
        for rec in &recs[base..] {
            assert!(
                out.attempted.contains(&rec.payload),
                "seq {} was never attempted",
                rec.seq
            );
            assert!(
                seen.insert(rec.payload.clone()),
                "seq {} stored twice",
                rec.seq
            );
        }
    }
    let report = engine::verify::verify_dir(storage, dir()).expect("verify");
    assert!(
        report.is_valid(),
        "chain does not verify: {:?}",
        report.problems()
    );
    assert_eq!(report.head.map(|h| h.0 + 1).unwrap_or(0), recs.len() as u64);
    // The recovered log takes appends and reopens with the exact count.
    let r = log
        .append(b"after recovery")
        .expect("append after recovery");
    assert_eq!(r.seq, recs.len() as u64);
    drop(log);
    let log = Log::open_with_storage(Arc::new(storage.clone()), dir(), config()).expect("reopen");
    assert_eq!(log.head().map(|h| h.seq + 1), Some(recs.len() as u64 + 1));
    recs.len() as u64
}
