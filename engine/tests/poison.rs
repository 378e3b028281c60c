//! A failed write or sync poisons the log: the failing group and every
//! later append fail, nothing more is acknowledged, reads still work, and
//! only reopening recovers.

mod common;

use std::sync::Arc;

use common::{payload, small_config};
use engine::storage::{FsStorage, Storage};
use engine::testing::{FaultPlan, FaultyStorage, Op};
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
    let seen: Vec<u64> = log.scan(..).map(|r| r.expect("scan").seq).collect();
    assert_eq!(seen, (0..5).collect::<Vec<_>>());
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

/// The sweep's configuration: small segments, plain or pre-written at the
/// roll (deterministic, so that the Nth sync is the same call every run).
fn sweep_config(prewrite: bool) -> Config {
    Config {
        prewrite_segments: prewrite,
        prewrite_inline: prewrite,
        ..config()
    }
}

/// What one run of the sweep's workload did.
struct Run {
    acked: Vec<engine::Receipt>,
    /// The first append that failed (0: the open failed).
    failed_at: Option<u64>,
    /// Syncs counted by the plan, and how many it failed.
    syncs: u64,
    failures: u64,
    spares_failed: u64,
}

const APPENDS: u64 = 60;

/// Opens a log in `dir` and makes 60 appends that roll segments, with the
/// Nth fdatasync failing (`None`: no failure, to count the syncs).
fn sync_workload(dir: &std::path::Path, cfg: &Config, n: Option<u64>) -> Run {
    let faulty = FaultyStorage::new(Arc::new(FsStorage));
    faulty.set_plan(Some(FaultPlan::eio(Op::Sync, n.unwrap_or(u64::MAX))));
    let storage: Arc<dyn Storage> = Arc::new(faulty.clone());
    let mut run = Run {
        acked: Vec::new(),
        failed_at: None,
        syncs: 0,
        failures: 0,
        spares_failed: 0,
    };
    match Log::open_with_storage(storage, dir, cfg.clone()) {
        Err(Error::Io { .. }) => run.failed_at = Some(0),
        Err(e) => panic!("open failed with {e}"),
        Ok(log) => {
            for i in 0..APPENDS {
                match log.append(&payload(i)) {
                    Ok(r) => {
                        assert!(
                            run.failed_at.is_none(),
                            "append {i} acknowledged after a failure (N = {n:?})"
                        );
                        assert_eq!(r.seq, run.acked.len() as u64);
                        run.acked.push(r);
                    }
                    Err(Error::Io { .. }) | Err(Error::Poisoned { .. }) => {
                        run.failed_at.get_or_insert(i);
                    }
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            run.spares_failed = log.stats().spares_failed;
        }
    }
    run.syncs = faulty.matched();
    run.failures = faulty.failures();
    run
}

/// The dry runs' fdatasync counts (header, appends, seals, index, tree and
/// level files, spares), plain and pre-written. The workload is deterministic: a change
/// is a change in the write path's syncs (update docs/durability.md).
const DRY_SYNCS: [u64; 2] = [103, 111];

/// For every N, fail the Nth fdatasync (appends, segment headers, seals,
/// index files and spares all count) of a workload that rolls segments:
/// no acknowledgement after the failure (unless the failed sync was a
/// spare's, which costs speed only), and the reopened log holds every
/// acknowledged record. N runs from 1 to one past the dry run's count: the
/// sweep ends only where no fault fired, and every N before fired one.
fn sync_sweep(prewrite: bool, dry_syncs: u64) {
    let cfg = sweep_config(prewrite);
    let dir = tempfile::tempdir().expect("tempdir");
    let dry = sync_workload(dir.path(), &cfg, None);
    assert_eq!(dry.acked.len() as u64, APPENDS, "dry run failed");
    assert_eq!(dry.failures, 0);
    let (mut poisoned, mut spare_only) = (0, 0);
    for n in 1..=dry.syncs + 1 {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = sync_workload(dir.path(), &cfg, Some(n));
        if n > dry.syncs {
            assert_eq!(
                run.failures, 0,
                "N = {n}: past the last sync, yet one failed"
            );
            assert_eq!(run.acked.len() as u64, APPENDS);
            break;
        }
        assert_eq!(run.failures, 1, "N = {n} of {}: no sync failed", dry.syncs);
        if run.spares_failed == 1 {
            // The spare's sync: the roll made a plain segment instead.
            assert_eq!(
                run.failed_at, None,
                "N = {n}: a spare's failure failed an append"
            );
            assert_eq!(run.acked.len() as u64, APPENDS);
            spare_only += 1;
        } else {
            assert_eq!(run.spares_failed, 0);
            assert!(
                run.failed_at.is_some(),
                "N = {n}: a failed sync went unnoticed"
            );
            poisoned += 1;
        }
        let log =
            Log::open(dir.path(), config()).unwrap_or_else(|e| panic!("reopen (N = {n}): {e}"));
        let head = log.head().map_or(0, |h| h.seq + 1);
        assert!(
            head >= run.acked.len() as u64,
            "N = {n}: lost acknowledged records"
        );
        for a in &run.acked {
            assert_eq!(log.read(a.seq).expect("read").hash, a.hash, "N = {n}");
        }
        drop(log);
        let report = engine::verify::verify_dir(&FsStorage, dir.path()).expect("verify");
        assert!(report.is_valid(), "N = {n}: {:?}", report.problems());
    }
    eprintln!(
        "fail the Nth sync (pre-written: {prewrite}): {} syncs in the dry run; {poisoned} failures poisoned the log, {spare_only} were a spare's",
        dry.syncs
    );
    assert_eq!(dry.syncs, dry_syncs, "the dry run's sync count changed");
    assert_eq!(poisoned + spare_only, dry.syncs);
    if prewrite {
        assert!(spare_only > 0, "no spare's sync failed");
    } else {
        assert_eq!(spare_only, 0);
    }
}

#[test]
fn fail_the_nth_sync_for_every_n() {
    sync_sweep(false, DRY_SYNCS[0]);
}

#[test]
fn fail_the_nth_sync_for_every_n_prewritten() {
    sync_sweep(true, DRY_SYNCS[1]);
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
