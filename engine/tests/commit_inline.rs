//! `Config::commit_inline`: an append with nothing else in flight is
//! written, synced and acknowledged on the submitting thread before the
//! submit returns; with anything else in flight, or with the option off,
//! it goes through the writer thread. Either way the receipts and the
//! chain are the same.

mod common;

use std::sync::mpsc;
use std::thread::ThreadId;

use common::{payload, small_config};
use engine::format::record::KIND_DATA;
use engine::{chain, Config, Log, Receipt};

/// Submits `p` and returns the thread the callback ran on, whether it had
/// run when the submit returned, and the receipt.
fn submit(log: &Log, p: &[u8]) -> (ThreadId, bool, Receipt) {
    let (tx, rx) = mpsc::channel();
    log.submit_then(KIND_DATA, &[p], move |r| {
        let mut r = r.expect("durable");
        tx.send((std::thread::current().id(), r.remove(0)))
            .expect("send");
    })
    .expect("submit");
    let ran_before_return = rx.try_recv();
    let (thread, receipt) = match ran_before_return {
        Ok(v) => return (v.0, true, v.1),
        Err(_) => rx.recv().expect("called"),
    };
    (thread, false, receipt)
}

#[test]
fn a_lone_append_is_committed_on_the_submitting_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No age limit: with one, the idle writer thread takes the writer's
    // lock once a second to look at the segment's age, and an inline
    // commit that finds it held (the thread preempted while holding it, on
    // a loaded machine) rightly queues instead. Without one, nothing but
    // this thread ever takes the lock, so every append here is inline.
    let config = Config {
        segment_age: None,
        ..small_config(1 << 16)
    };
    let log = Log::open(dir.path(), config).expect("open");
    let me = std::thread::current().id();
    let mut prev = chain::genesis(&log.log_id());
    for i in 0..50u64 {
        let (thread, before_return, r) = submit(&log, &payload(i));
        assert_eq!((thread, before_return), (me, true), "append {i}");
        assert_eq!(r.seq, i);
        // The same chain as through the writer thread.
        let rec = log.read(i).expect("read");
        assert_eq!(rec.hash, r.hash);
        assert_eq!(
            r.hash,
            chain::step(&prev, i, rec.created_at, KIND_DATA, &payload(i))
        );
        prev = r.hash;
    }
    // Every inline append synced: 50 appends, 50 syncs.
    let s = log.stats();
    assert_eq!((s.appends, s.syncs), (50, 50));
}

#[test]
fn with_commit_inline_off_the_writer_thread_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        commit_inline: false,
        ..small_config(1 << 16)
    };
    let log = Log::open(dir.path(), config).expect("open");
    let me = std::thread::current().id();
    for i in 0..20u64 {
        let (thread, before_return, r) = submit(&log, &payload(i));
        assert_ne!(thread, me, "append {i} was committed on the caller");
        assert!(!before_return, "append {i}");
        assert_eq!(r.seq, i);
    }
}

#[test]
fn while_a_commit_is_under_way_the_next_append_is_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::sync::Arc::new(Log::open(dir.path(), small_config(1 << 16)).expect("open"));
    let me = std::thread::current().id();
    // Another thread's append, committed on that thread, whose callback
    // holds the commit open until released.
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let first = {
        let log = log.clone();
        std::thread::spawn(move || {
            let (tx, rx) = mpsc::channel();
            log.submit_then(KIND_DATA, &[b"first".as_slice()], move |r| {
                started_tx.send(()).expect("started");
                release_rx.recv().expect("released");
                tx.send(r.expect("durable")).expect("send");
            })
            .expect("submit");
            rx.recv().expect("first")
        })
    };
    started_rx.recv().expect("the first commit is under way");
    // The writer is busy: this one goes to the queue and completes on the
    // engine's thread once the first is done.
    let (tx, rx) = mpsc::channel();
    log.submit_then(KIND_DATA, &[b"second".as_slice()], move |r| {
        tx.send((std::thread::current().id(), r.expect("durable")))
            .expect("send");
    })
    .expect("submit");
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        rx.try_recv().is_err(),
        "acknowledged before the first finished"
    );
    release_tx.send(()).expect("release");
    let first = first.join().expect("first thread");
    let (thread, second) = rx.recv().expect("second");
    assert_ne!(thread, me, "the queued append was committed by the writer");
    assert_eq!((first[0].seq, second[0].seq), (0, 1));
    assert_eq!(log.read(1).expect("read").payload, b"second");
}
