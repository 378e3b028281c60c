//! Verifying a live log: a writer appends without pause while verification
//! runs again and again. Every run sees a valid, consistent prefix (at most
//! a tail still being written, reported as unverified), and the writer is
//! never blocked: its appends keep being acknowledged throughout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use engine::{Config, Durability, Log};

#[test]
fn verification_of_a_live_log_sees_a_valid_prefix_and_never_blocks_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        segment_size: 16 << 10,
        durability: Durability::UnsafeNoSync,
        log_id: Some(*b"verify-live-test"),
        ..Config::default()
    };
    let log = Arc::new(Log::open(dir.path(), config).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (log, stop, acked) = (log.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Vec<u8>> = (0..10)
                    .map(|k| format!("live {i} {k}").into_bytes())
                    .collect();
                log.append_batch(&batch).expect("append");
                acked.fetch_add(10, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    while acked.load(Ordering::Relaxed) < 1000 {
        std::thread::yield_now();
    }
    let (mut runs, mut runs_with_progress) = (0, 0);
    let mut last_checked = 0;
    while runs < 20 || acked.load(Ordering::Relaxed) < 20_000 {
        let before = acked.load(Ordering::Relaxed);
        let report = engine::verify::verify(
            &engine::storage::FsStorage,
            dir.path(),
            &engine::verify::Options {
                threads: 2,
                ..Default::default()
            },
        )
        .expect("verify");
        assert!(report.is_valid(), "run {runs}: {:?}", report.problems());
        // The prefix verified holds at least what was acknowledged before
        // the run started (in this no-sync mode, acknowledged = written).
        assert!(
            report.records_checked >= before,
            "run {runs}: {} < {before}",
            report.records_checked
        );
        assert!(
            report.records_checked >= last_checked,
            "the verified prefix only grows"
        );
        last_checked = report.records_checked;
        if acked.load(Ordering::Relaxed) > before {
            runs_with_progress += 1;
        }
        runs += 1;
    }
    let during = acked.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    // The writer was acknowledged while verification ran, in most runs.
    assert!(
        runs_with_progress * 2 > runs,
        "{runs_with_progress} of {runs} runs saw appends acknowledged"
    );
    eprintln!("{runs} verifications of a live log ({runs_with_progress} with appends acknowledged during the run); {during} records appended");
}
