//! Append, read, scan and seek across many segments; reopen and continue.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{payload, small_config, ManualClock};
use engine::testing::Rng;
use engine::{chain, Config, Durability, Error, Log};

#[test]
fn append_read_scan_seek_across_twenty_segments_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let config = Config {
        clock: clock.clone(),
        ..small_config(4096)
    };
    let log = Log::open(dir.path(), config.clone()).expect("open");
    assert!(log.recovery_report().created);
    let mut receipts = Vec::new();
    for i in 0..1500u64 {
        clock.advance(1 + i % 3);
        let r = log.append(&payload(i)).expect("append");
        assert_eq!(r.seq, i);
        receipts.push(r);
    }
    let segments = log.segment_count();
    assert!(segments >= 20, "only {segments} segments");
    check_contents(&log, &receipts);
    let head = log.head().expect("head");
    assert_eq!(head.seq, 1499);
    assert_eq!(head.hash, receipts[1499].hash);
    log.close().expect("close");

    // Reopen: nothing to repair, same head, and the chain continues.
    let log = Log::open(dir.path(), config).expect("reopen");
    let rep = log.recovery_report();
    assert!(!rep.created);
    assert_eq!(rep.cut, None);
    assert!(rep.rebuilt_indexes.is_empty());
    assert_eq!(log.segment_count(), segments);
    assert_eq!(log.head().expect("head").hash, receipts[1499].hash);
    for i in 1500..1700u64 {
        clock.advance(2);
        let r = log.append(&payload(i)).expect("append");
        assert_eq!(r.seq, i);
        // The receipt's hash chains from the previous record's.
        let prev = &receipts[i as usize - 1];
        assert_eq!(
            r.hash,
            chain::step(&prev.hash, i, r.created_at, 1, &payload(i))
        );
        receipts.push(r);
    }
    check_contents(&log, &receipts);
    let report =
        engine::verify::verify_dir(&engine::storage::FsStorage, dir.path()).expect("verify");
    assert!(report.is_valid(), "{:?}", report.problems());
    assert_eq!(report.records_checked, 1700);
    assert_eq!(report.head, Some((1699, receipts[1699].hash)));
}

/// Every receipt matches the stored record; scans and time seeks agree with
/// a full scan at 1,000 random points.
fn check_contents(log: &Log, receipts: &[engine::Receipt]) {
    let all: Vec<engine::Record> = log.scan(..).map(|r| r.expect("scan")).collect();
    assert_eq!(all.len(), receipts.len());
    for (i, (rec, rcpt)) in all.iter().zip(receipts).enumerate() {
        assert_eq!(rec.seq, i as u64);
        assert_eq!(rec.hash, rcpt.hash);
        assert_eq!(rec.created_at, rcpt.created_at);
        assert_eq!(rec.payload, payload(i as u64));
    }
    let mut rng = Rng::new(7);
    let n = all.len() as u64;
    for _ in 0..1000 {
        let seq = rng.below(n);
        assert_eq!(log.read(seq).expect("read"), all[seq as usize]);
        let to = (seq + rng.below(40)).min(n);
        let part: Vec<_> = log.scan(seq..to).map(|r| r.expect("scan")).collect();
        assert_eq!(part.as_slice(), &all[seq as usize..to as usize]);
        // A time between records, and a time equal to one.
        let rec = &all[seq as usize];
        for t in [
            rec.created_at,
            rec.created_at.saturating_sub(1),
            rec.created_at + 1,
        ] {
            let expected = all.iter().find(|r| r.created_at >= t).map(|r| r.seq);
            assert_eq!(log.seek_time(t).expect("seek"), expected, "t = {t}");
        }
    }
    assert_eq!(log.seek_time(0).expect("seek"), Some(0));
    assert_eq!(log.seek_time(u64::MAX).expect("seek"), None);
    assert!(matches!(
        log.read(n),
        Err(Error::NotFound { seq, head: Some(h) }) if seq == n && h == n - 1
    ));
}

#[test]
fn created_at_never_goes_back_when_the_clock_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(5_000);
    let log = Log::open(
        dir.path(),
        Config {
            clock: clock.clone(),
            ..small_config(1 << 20)
        },
    )
    .expect("open");
    let a = log.append(b"a").expect("append");
    clock.set(1_000); // the wall clock steps back
    let b = log.append(b"b").expect("append");
    clock.set(9_000);
    let c = log.append(b"c").expect("append");
    assert_eq!(
        (a.created_at, b.created_at, c.created_at),
        (5_000, 5_000, 9_000)
    );
    log.close().expect("close");
    // After a reopen too: the floor is the last stored record's time.
    clock.set(10);
    let log = Log::open(
        dir.path(),
        Config {
            clock: clock.clone(),
            ..small_config(1 << 20)
        },
    )
    .expect("reopen");
    assert_eq!(log.append(b"d").expect("append").created_at, 9_000);
}

#[test]
fn batches_get_consecutive_seqs_and_bad_arguments_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(
        dir.path(),
        Config {
            max_record_len: 100,
            max_batch_bytes: 250,
            ..small_config(1 << 20)
        },
    )
    .expect("open");
    let r = log
        .append_batch(&[b"x".as_slice(), b"yy", b"zzz"])
        .expect("batch");
    assert_eq!(r.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(matches!(
        log.append(&[0u8; 101]),
        Err(Error::RecordTooLarge { len: 101, max: 100 })
    ));
    assert!(matches!(
        log.append_batch(&[[0u8; 100]; 3]),
        Err(Error::BatchTooLarge {
            bytes: 492,
            max: 250
        })
    ));
    assert!(matches!(
        log.append_batch::<&[u8]>(&[]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        log.append_kind(0, &[b"x"]),
        Err(Error::InvalidArgument(_))
    ));
    // Nothing was written by the rejected calls.
    assert_eq!(log.head().expect("head").seq, 2);
    assert_eq!(log.read(1).expect("read").payload, b"yy");
}

#[test]
fn empty_log_has_no_head_and_finds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small_config(4096)).expect("open");
    assert_eq!(log.head(), None);
    assert_eq!(
        log.scan(..)
            .collect::<Result<Vec<_>, _>>()
            .expect("scan")
            .len(),
        0
    );
    assert_eq!(log.seek_time(0).expect("seek"), None);
    assert!(matches!(
        log.read(0),
        Err(Error::NotFound { seq: 0, head: None })
    ));
    let id = log.log_id();
    log.close().expect("close");
    // The identity is fixed at creation and survives a reopen.
    let config = Config {
        log_id: None,
        ..small_config(4096)
    };
    let log = Log::open(dir.path(), config).expect("reopen");
    assert_eq!(log.log_id(), id);
    log.close().expect("close");
    // Opening it as a different log is refused.
    let wrong = Config {
        log_id: Some([9; 16]),
        ..small_config(4096)
    };
    assert!(matches!(
        Log::open(dir.path(), wrong),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn a_segment_is_sealed_when_it_reaches_its_age() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000_000);
    let log = Log::open(
        dir.path(),
        Config {
            clock: clock.clone(),
            segment_age: Some(Duration::from_millis(10)),
            ..small_config(1 << 20)
        },
    )
    .expect("open");
    log.append(b"first").expect("append");
    assert_eq!(log.segment_count(), 1);
    clock.advance(20_000_000); // 20 ms later, by the log's clock
                               // The writer wakes at least every second to check the age; wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while log.segment_count() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.stats().segments_sealed, 1);
    // An idle, empty active segment is not sealed, however old.
    clock.advance(1_000_000_000);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(log.segment_count(), 2);
    let r = log.append(b"second").expect("append");
    assert_eq!(r.seq, 1);
    assert_eq!(log.read(0).expect("read").payload, b"first");
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn a_full_queue_answers_busy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(
        Log::open(
            dir.path(),
            Config {
                queue_depth: 1,
                durability: Durability::SyncEveryGroup,
                ..small_config(1 << 20)
            },
        )
        .expect("open"),
    );
    // Many threads against a queue of one: some must be told to back off,
    // and every append that was accepted is acknowledged.
    let mut handles = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        handles.push(std::thread::spawn(move || {
            let (mut ok, mut busy) = (0u64, 0u64);
            for i in 0..200 {
                match log.append(format!("{t}-{i}").as_bytes()) {
                    Ok(_) => ok += 1,
                    Err(Error::Busy { depth: 1 }) => busy += 1,
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            (ok, busy)
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for h in handles {
        let (o, b) = h.join().expect("thread");
        ok += o;
        busy += b;
    }
    assert_eq!(ok + busy, 1600);
    assert!(busy > 0, "a queue of depth 1 never filled");
    assert_eq!(log.head().expect("head").seq + 1, ok);
    assert_eq!(
        log.scan(..)
            .collect::<Result<Vec<_>, _>>()
            .expect("scan")
            .len() as u64,
        ok
    );
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), small_config(4096)).expect("open");
    log.append(b"x").expect("append");
    assert!(matches!(
        Log::open(dir.path(), small_config(4096)),
        Err(Error::Locked { .. })
    ));
    drop(log);
    let log = Log::open(dir.path(), small_config(4096)).expect("open after close");
    assert_eq!(log.head().expect("head").seq, 0);
}
