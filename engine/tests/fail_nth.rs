//! Fail the Nth storage operation, for every N up to the workload's count,
//! transient and persistent, EIO and ENOSPC, with and without a short write:
//! over recovery (a torn tail to cut, an index to rebuild), appends, rolls,
//! seals and index writes. No panic, no acknowledgement after the failure,
//! and after a restart or a power loss the log opens, holds every
//! acknowledged record, and verifies.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use common::sim::{check_recovered, config, config_for, dir, Outcome, Prewrite, Tally, MODES};
use engine::storage::Storage;
use engine::testing::{FaultPlan, Op, SimStorage};
use engine::{Config, Durability, Log};

/// Chosen so that the crash in `setup` tears the tail (asserted below).
const SETUP_SEED: u64 = 2;

/// A log whose last segment ends in a torn tail and one of whose sealed
/// segments lost its index files: recovery has work to do.
fn setup() -> SimStorage {
    let storage = SimStorage::new(SETUP_SEED);
    storage.create_dir_all(dir()).expect("mkdir");
    let cfg = Config {
        durability: Durability::UnsafeNoSync,
        ..config()
    };
    let log = Log::open_with_storage(Arc::new(storage.clone()), dir(), cfg).expect("open");
    for i in 0..14u32 {
        let mut p = format!("setup {i} ").into_bytes();
        p.resize(100 + (i as usize * 37) % 150, b's');
        log.append(&p).expect("append");
    }
    drop(log);
    storage.crash_now();
    storage.reboot();
    let names = storage.list(dir()).expect("list");
    let idx = names
        .iter()
        .find(|n| n.ends_with(".idx"))
        .expect("a sealed segment");
    storage.remove(&dir().join(idx)).expect("remove index");
    storage.sync_dir(dir()).expect("sync");
    storage
}

/// Recovery, 16 appends that roll and seal, a close and reopen, 3 more.
/// Asserts that nothing is acknowledged once an operation has failed.
fn workload(storage: &SimStorage, cfg: &Config) -> Outcome {
    let mut out = Outcome::default();
    let open = || Log::open_with_storage(Arc::new(storage.clone()), dir(), cfg.clone());
    let Ok(mut log) = open() else { return out };
    // Spares that failed under the log opened first (its stats end with it).
    let mut spares_failed_before = 0;
    for k in 0..19u32 {
        if k == 16 {
            out.prewritten += log.stats().segments_prewritten;
            spares_failed_before = log.stats().spares_failed;
            drop(log);
            match open() {
                Ok(l) => log = l,
                Err(_) => return out,
            }
        }
        let mut p = format!("run {k} ").into_bytes();
        p.resize(90 + (k as usize * 53) % 170, b'r');
        out.attempted.push(p.clone());
        match log.append(&p) {
            Ok(r) => {
                // Only a failure of the pre-writer's spare may be followed
                // by acknowledgements: it costs the roll its spare, and the
                // next segment is created as a plain file.
                assert_eq!(
                    storage.failures(),
                    spares_failed_before + log.stats().spares_failed,
                    "append {k} acknowledged after a failed operation"
                );
                out.acked.push((r, p));
            }
            Err(_) => {
                assert!(log.is_poisoned() || storage.failures() > 0);
                return out;
            }
        }
    }
    out.prewritten += log.stats().segments_prewritten;
    out
}

/// How many records of the setup a clean recovery keeps.
fn setup_records() -> usize {
    let storage = setup();
    let log = Log::open_with_storage(Arc::new(storage), dir(), config()).expect("open");
    let rep = log.recovery_report();
    assert!(rep.cut.is_some(), "the setup left no torn tail");
    assert_eq!(rep.rebuilt_indexes.len(), 1);
    log.head().map_or(0, |h| h.seq as usize + 1)
}

/// The dry run's operation count with plain and with pre-written segments.
/// The workload is deterministic: a change here is a change in the order
/// of operations of recovery or the write path (update docs/durability.md
/// with it).
const DRY_OPS: [(Prewrite, u64); 2] = [(Prewrite::Off, 519), (Prewrite::AtRoll, 531)];

fn fail_nth_sweep(mode: Prewrite, dry_ops: u64) {
    let cfg = config_for(mode);
    let started = Instant::now();
    let base = setup_records();
    assert!(base >= 3, "the setup left {base} records");
    let dry = setup();
    let before = dry.ops();
    let out = workload(&dry, &cfg);
    assert_eq!(out.acked.len(), 19, "dry run failed");
    match mode {
        Prewrite::Off => assert_eq!(out.prewritten, 0),
        _ => assert!(out.prewritten >= 3, "{} pre-written", out.prewritten),
    }
    let total = dry.ops() - before;
    let sealed = dry
        .list(dir())
        .expect("list")
        .iter()
        .filter(|n| n.ends_with(".idx"))
        .count();
    assert!(sealed >= 4, "the workload sealed only {sealed} segments");

    let mut tally = Tally::default();
    for n in 1..=total + 1 {
        for persistent in [false, true] {
            for power_loss in [false, true] {
                let plan = FaultPlan {
                    op: Op::Any,
                    nth: n,
                    persistent,
                    errno: if n.is_multiple_of(2) { 28 } else { 5 },
                    short_write: n.is_multiple_of(3),
                };
                let run = || {
                    let mut t = Tally::default();
                    let storage = setup();
                    storage.set_fault(Some(plan));
                    let out = workload(&storage, &cfg);
                    let failed = storage.failures() > 0;
                    storage.set_fault(None);
                    if power_loss {
                        storage.crash_now();
                        t.crashed(&storage);
                    }
                    storage.reboot();
                    let rec = check_recovered(&storage, &cfg, &out, true, base);
                    t.checked(&out, &rec);
                    (failed, t)
                };
                match catch_unwind(AssertUnwindSafe(run)) {
                    Ok((failed, t)) => {
                        // Every N up to the dry run's count fails an
                        // operation; the one after it fails none.
                        assert_eq!(failed, n <= total, "N = {n} of {total}");
                        tally.add(&t);
                    }
                    Err(p) => {
                        eprintln!(
                            "fail-Nth case failed ({mode:?}): {plan:?}, power loss after: {power_loss}"
                        );
                        std::panic::resume_unwind(p);
                    }
                }
            }
        }
    }
    eprintln!(
        "fail-Nth ({mode:?}): {total} operations (recovery with a cut and an index rebuild, appends, seals; {sealed} sealed segments at the end, {} pre-written), {:.1} s; {tally}",
        out.prewritten,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        total, dry_ops,
        "{mode:?}: the dry run's operation count changed"
    );
    assert_eq!(tally.cases, (total + 1) * 4);
    // Damage to unsynced writes is the power-loss sweeps' subject
    // (crash_sim.rs): here a power loss comes after the workload stopped.
    // What it must show: lost directory entries, cuts, refused appends.
    assert!(tally.dir_ops_lost > 0, "{tally}");
    assert!(tally.cuts > 0, "{tally}");
    assert!(tally.fewer_acks > 0, "{tally}");
    if mode == Prewrite::AtRoll {
        assert!(tally.zeros_at_end > 0, "{tally}");
    }
}

#[test]
fn fail_the_nth_operation_for_every_n() {
    assert_eq!(DRY_OPS.map(|(m, _)| m), MODES);
    fail_nth_sweep(DRY_OPS[0].0, DRY_OPS[0].1);
}

#[test]
fn fail_the_nth_operation_for_every_n_prewritten() {
    fail_nth_sweep(DRY_OPS[1].0, DRY_OPS[1].1);
}
