//! Many threads appending at once share fdatasync calls.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::small_config;
use engine::{Config, Log};

#[test]
fn sixteen_threads_of_ten_thousand_appends_share_syncs() {
    const THREADS: u64 = 16;
    const PER_THREAD: u64 = 10_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        index_interval: 4096,
        ..small_config(1 << 20)
    };
    let log = Arc::new(Log::open(dir.path(), config.clone()).expect("open"));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..PER_THREAD)
                    .map(|i| {
                        let p = format!("thread {t:02} record {i:05}");
                        (p.clone(), log.append(p.as_bytes()).expect("append"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut by_seq = HashMap::new();
    for h in handles {
        for (p, r) in h.join().expect("thread") {
            assert!(
                by_seq.insert(r.seq, (p, r)).is_none(),
                "seq {} twice",
                r.seq
            );
        }
    }
    let total = THREADS * PER_THREAD;
    assert_eq!(by_seq.len() as u64, total);
    assert!(
        (0..total).all(|s| by_seq.contains_key(&s)),
        "seqs have gaps"
    );
    let stats = log.stats();
    assert_eq!(stats.appends, total);
    println!(
        "16 threads x 10,000 appends: {} fdatasync calls, {} writes, {:.1} appends per sync, {} segments",
        stats.syncs,
        stats.writes,
        total as f64 / stats.syncs as f64,
        log.segment_count()
    );
    // Far fewer syncs than appends: groups formed.
    assert!(
        stats.syncs * 4 < total,
        "{} syncs for {total} appends",
        stats.syncs
    );
    drop(log);

    // Every receipt is durable: reopen and find it, byte for byte.
    let log = Log::open(dir.path(), config).expect("reopen");
    assert_eq!(log.head().expect("head").seq, total - 1);
    let mut n = 0;
    for rec in log.scan(..) {
        let rec = rec.expect("scan");
        let (p, r) = &by_seq[&rec.seq];
        assert_eq!(rec.payload, p.as_bytes());
        assert_eq!(rec.hash, r.hash);
        assert_eq!(rec.created_at, r.created_at);
        n += 1;
    }
    assert_eq!(n, total);
}

#[test]
fn submit_then_calls_back_once_per_append_in_submission_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small_config(1 << 20)).expect("open");
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..200u64 {
        let tx = tx.clone();
        let payloads = [format!("a{i}"), format!("b{i}")];
        log.submit_then(1, &payloads, move |r| {
            tx.send((i, r)).expect("the test is listening");
        })
        .expect("submit");
    }
    drop(tx);
    let got: Vec<_> = rx.iter().collect();
    assert_eq!(got.len(), 200);
    for (n, (i, r)) in got.into_iter().enumerate() {
        assert_eq!(i, n as u64, "callbacks out of submission order");
        let seqs: Vec<u64> = r.expect("durable").iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [2 * i, 2 * i + 1]);
    }
    // A refused submission is not called back.
    let called = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = called.clone();
    let err = log
        .submit_then(1, &[vec![0u8; 2 << 20]], move |_| {
            c.store(true, std::sync::atomic::Ordering::SeqCst)
        })
        .expect_err("a record over max_record_len");
    assert!(
        matches!(err, engine::Error::RecordTooLarge { .. }),
        "{err:?}"
    );
    drop(log);
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
    let log = Log::open(dir.path(), small_config(1 << 20)).expect("reopen");
    assert_eq!(log.head().map(|h| h.seq), Some(399));
}
