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

use common::sim::{check_recovered, config, dir, Outcome};
use engine::storage::{FaultPlan, Op, SimStorage, Storage};
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
fn workload(storage: &SimStorage) -> Outcome {
    let mut out = Outcome::default();
    let open = || Log::open_with_storage(Arc::new(storage.clone()), dir(), config());
    let Ok(mut log) = open() else { return out };
    for k in 0..19u32 {
        if k == 16 {
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
                assert_eq!(
                    storage.failures(),
                    0,
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

#[test]
fn fail_the_nth_operation_for_every_n() {
    let started = Instant::now();
    let base = setup_records();
    assert!(base >= 3, "the setup left {base} records");
    let dry = setup();
    let before = dry.ops();
    let out = workload(&dry);
    assert_eq!(out.acked.len(), 19, "dry run failed");
    let total = dry.ops() - before;
    let sealed = dry
        .list(dir())
        .expect("list")
        .iter()
        .filter(|n| n.ends_with(".idx"))
        .count();
    assert!(sealed >= 4, "the workload sealed only {sealed} segments");

    let mut cases = 0;
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
                    let storage = setup();
                    storage.set_fault(Some(plan));
                    let out = workload(&storage);
                    let failed = storage.failures() > 0;
                    storage.set_fault(None);
                    if power_loss {
                        storage.crash_now();
                    }
                    storage.reboot();
                    check_recovered(&storage, &out, true, base);
                    failed
                };
                match catch_unwind(AssertUnwindSafe(run)) {
                    Ok(failed) => assert!(failed || n > total, "N = {n} never failed"),
                    Err(p) => {
                        eprintln!("fail-Nth case failed: {plan:?}, power loss after: {power_loss}");
                        std::panic::resume_unwind(p);
                    }
                }
                cases += 1;
            }
        }
    }
    eprintln!(
        "fail-Nth: {total} operations (recovery with a cut and an index rebuild, appends, seals; {sealed} sealed segments at the end), {cases} cases, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
