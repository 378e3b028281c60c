//! A failed write or sync poisons the log: the failing group and every
//! later append fail, nothing more is acknowledged, reads still work, and
//! only reopening recovers.

mod common;

use std::sync::Arc;

use common::{payload, small_config};
use engine::storage::{FaultPlan, FaultyStorage, FsStorage, Op, Storage};
use engine::{Config, Error, Log};

fn config() -> Config {
    small_config(1024)
}

#[test]
fn a_failed_fdatasync_fails_its_group_and_everything_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faulty = FaultyStorage::new(Arc::new(FsStorage));
    let storage: Arc<dyn Storage> = Arc::new(faulty.clone());
    let log = Log::open_with_storage(storage, dir.path(), small_config(1 << 20)).expect("open");
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(log.append(&payload(i)).expect("append"));
    }
    faulty.set_plan(Some(FaultPlan::eio(Op::Sync, 1)));
    match log.append(&payload(5)) {
        Err(Error::Io { op, source, .. }) => {
            assert_eq!(op, "fdatasync");
            assert_eq!(source.raw_os_error(), Some(5));
        }
        other => panic!("expected the fdatasync error, got {other:?}"),
    }
    assert!(log.is_poisoned());
    // The plan failed only one call, but the log never syncs again.
    for i in 6..10 {
        assert!(matches!(
            log.append(&payload(i)),
            Err(Error::Poisoned { .. })
        ));
    }
    assert_eq!(faulty.matched(), 1, "no sync was retried after the failure");
    // Reads still work and see only what was acknowledged.
    assert_eq!(log.head().expect("head").seq, 4);
    assert_eq!(log.read(4).expect("read").hash, acked[4].hash);
    assert!(matches!(log.read(5), Err(Error::NotFound { .. })));
    assert_eq!(log.scan(..).count(), 5);
    drop(log);

    // Reopening recovers from disk: the acknowledged records are there, and
    // the log is a prefix of what was attempted.
    let log = Log::open(dir.path(), small_config(1 << 20)).expect("reopen");
    let recs: Vec<_> = log.scan(..).map(|r| r.expect("scan")).collect();
    assert!(recs.len() == 5 || recs.len() == 6, "{} records", recs.len());
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.payload, payload(i as u64));
    }
    for a in &acked {
        assert_eq!(recs[a.seq as usize].hash, a.hash);
    }
    let r = log.append(b"after reopen").expect("append after reopen");
    assert_eq!(r.seq, recs.len() as u64);
}

/// For every N, fail the Nth fdatasync (appends, segment headers, seals and
/// index files all count) of a workload that rolls segments: no
/// acknowledgement after the failure, and the reopened log holds every
/// acknowledged record.
#[test]
fn fail_the_nth_sync_for_every_n() {
    let mut n = 1;
    loop {
        let dir = tempfile::tempdir().expect("tempdir");
        let faulty = FaultyStorage::new(Arc::new(FsStorage));
        faulty.set_plan(Some(FaultPlan::eio(Op::Sync, n)));
        let storage: Arc<dyn Storage> = Arc::new(faulty.clone());
        let mut acked = Vec::new();
        let mut failed_at = None;
        match Log::open_with_storage(storage, dir.path(), config()) {
            Err(Error::Io { .. }) => failed_at = Some(0),
            Err(e) => panic!("open failed with {e}"),
            Ok(log) => {
                for i in 0..60u64 {
                    match log.append(&payload(i)) {
                        Ok(r) => {
                            assert!(
                                failed_at.is_none(),
                                "append {i} acknowledged after a failure (N = {n})"
                            );
                            assert_eq!(r.seq, acked.len() as u64);
                            acked.push(r);
                        }
                        Err(Error::Io { .. }) | Err(Error::Poisoned { .. }) => {
                            failed_at.get_or_insert(i);
                        }
                        Err(e) => panic!("unexpected error {e}"),
                    }
                }
            }
        }
        if failed_at.is_none() {
            // N is past the workload's last sync: the sweep is complete.
            assert_eq!(acked.len(), 60);
            assert!(n > 20, "the workload made only {} syncs", n - 1);
            break;
        }
        assert_eq!(faulty.failures(), 1, "N = {n}");
        let log =
            Log::open(dir.path(), config()).unwrap_or_else(|e| panic!("reopen (N = {n}): {e}"));
        let head = log.head().map_or(0, |h| h.seq + 1);
        assert!(
            head >= acked.len() as u64,
            "N = {n}: lost acknowledged records"
        );
        for a in &acked {
            assert_eq!(log.read(a.seq).expect("read").hash, a.hash, "N = {n}");
        }
        let report = engine::verify::verify_dir(&FsStorage, dir.path()).expect("verify");
        assert!(report.is_valid(), "N = {n}: {:?}", report.problems());
        n += 1;
    }
}

#[test]
fn a_failed_write_with_a_short_write_poisons_and_recovery_cuts_the_partial_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faulty = FaultyStorage::new(Arc::new(FsStorage));
    let storage: Arc<dyn Storage> = Arc::new(faulty.clone());
    let log = Log::open_with_storage(storage, dir.path(), small_config(1 << 20)).expect("open");
    for i in 0..3 {
        log.append(&payload(i)).expect("append");
    }
    faulty.set_plan(Some(FaultPlan {
        op: Op::Write,
        nth: 1,
        persistent: true,
        errno: 28,
        short_write: true,
    }));
    let batch = [payload(3), vec![b'x'; 200], payload(5)];
    let err = log.append_batch(&batch).expect_err("write fails");
    assert!(err.is_no_space(), "{err}");
    assert!(err.to_string().contains("no space"), "{err}");
    assert!(matches!(
        log.append(&payload(6)),
        Err(Error::Poisoned { .. })
    ));
    drop(log);
    // Half of the group reached the file: the first record whole, the second
    // in part. Recovery keeps the whole one (it was never acknowledged, but
    // it is a valid prefix of what was attempted) and cuts the rest.
    let sizes: Vec<u64> = batch.iter().map(|p| 64 + p.len() as u64).collect();
    let written = sizes.iter().sum::<u64>() / 2;
    assert!(sizes[0] < written && written < sizes[0] + sizes[1]);
    let log = Log::open(dir.path(), small_config(1 << 20)).expect("reopen");
    assert_eq!(log.head().expect("head").seq, 3);
    assert_eq!(log.read(3).expect("read").payload, payload(3));
    let cut = log
        .recovery_report()
        .cut
        .clone()
        .expect("the half-written record is cut");
    assert_eq!(cut.len, written - sizes[0]);
}
