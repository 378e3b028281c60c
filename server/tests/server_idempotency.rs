//! Idempotency keys and source event ids: duplicates answered with the
//! original receipt, within a batch, across connections racing, across a
//! restart and a kill -9, and expiring with the window. Strict schemas
//! refuse unknown actions; permissive ones store and count them.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use client::{ErrorCode, Event};
use common::*;
use server::schema::Mode;

fn keyed(idem: &str, source: &str) -> Event {
    let mut e = event("acme", "u1", "user.login", "session");
    e.idempotency_key = idem.into();
    e.source_event_id = source.into();
    e
}

#[test]
fn duplicates_get_the_original_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let mut c = connect(server.addr(), &admin);
    let first = c.append(&keyed("k1", "")).unwrap();
    let again = c.append(&keyed("k1", "")).unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(
        (again.seq, again.hash, again.created_at),
        (first.seq, first.hash, first.created_at)
    );
    // Source ids too; and keys are per tenant.
    let s1 = c.append(&keyed("", "src-1")).unwrap();
    assert_eq!(c.append(&keyed("other", "src-1")).unwrap().seq, s1.seq);
    let mut other_tenant = keyed("k1", "");
    other_tenant.tenant_id = "globex".into();
    let g = c.append(&other_tenant).unwrap();
    assert!(!g.duplicate);
    // Within one batch: the third repeats the first's key.
    let rs = c
        .append_batch(&[
            keyed("b1", ""),
            keyed("b2", ""),
            keyed("b1", ""),
            keyed("k1", ""),
        ])
        .unwrap();
    assert_eq!(
        rs.iter().map(|r| r.duplicate).collect::<Vec<_>>(),
        vec![false, false, true, true]
    );
    assert_eq!((rs[2].seq, rs[2].hash), (rs[0].seq, rs[0].hash));
    assert_eq!(rs[3].seq, first.seq);
    // Stored: k1, src-1, globex k1, b1, b2; and "other" was released.
    assert_eq!(c.stats().unwrap().next_seq, 5);
    let o = c.append(&keyed("other", "")).unwrap();
    assert_eq!((o.seq, o.duplicate), (5, false));
}

#[test]
fn racing_duplicates_store_once() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let addr = server.addr();
    for round in 0..20 {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let text = admin.text.clone();
                std::thread::spawn(move || {
                    let mut c = client::Client::connect(addr).unwrap();
                    c.auth(&text).unwrap();
                    c.append(&keyed(&format!("race-{round}"), "")).unwrap()
                })
            })
            .collect();
        let rs: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            rs.iter().filter(|r| !r.duplicate).count(),
            1,
            "round {round}"
        );
        assert!(
            rs.iter().all(|r| r.seq == round && r.hash == rs[0].hash),
            "round {round}"
        );
    }
    let mut c = connect(addr, &admin);
    assert_eq!(c.stats().unwrap().next_seq, 20);
}

/// A clock the test moves by hand (the log's `created_at`, its dedup
/// window and admission all read it), so that expiry is decided by exact
/// times, not by how long a sleep took.
#[derive(Debug)]
struct HandClock(AtomicU64);

impl engine::Clock for HandClock {
    fn now_nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
fn the_window_survives_a_restart_and_expires() {
    const S: u64 = 1_000_000_000;
    const T0: u64 = 1_750_000_000 * S;
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let clock = Arc::new(HandClock(AtomicU64::new(T0)));
    let mut cfg = config(dir.path(), &[&admin]);
    cfg.logs[0].clock = clock.clone();
    let first = {
        let server = server::Server::start(cfg.clone()).unwrap();
        let mut c = connect(server.addr(), &admin);
        c.append(&keyed("k", "s")).unwrap()
    };
    assert_eq!((first.seq, first.created_at), (0, T0));
    // Restarted with a 2 s window, at its very last instant: the key was
    // rebuilt from the log and is still a duplicate.
    cfg.logs[0].dedup_window_secs = 2;
    clock.0.store(T0 + 2 * S, Ordering::SeqCst);
    let server = server::Server::start(cfg.clone()).unwrap();
    let mut c = connect(server.addr(), &admin);
    let again = c.append(&keyed("k", "")).unwrap();
    assert!(again.duplicate);
    assert_eq!((again.seq, again.hash), (first.seq, first.hash));
    // One nanosecond later it has expired: stored anew.
    clock.0.store(T0 + 2 * S + 1, Ordering::SeqCst);
    let later = c.append(&keyed("k", "")).unwrap();
    assert_eq!(
        (later.seq, later.duplicate, later.created_at),
        (1, false, T0 + 2 * S + 1)
    );
    assert!(c.append(&keyed("k", "")).unwrap().duplicate);
    drop(c);
    drop(server);
    // Restarted at the last instant of the second event's window: the
    // rebuilt table has it, and not the first event's expired source id.
    clock.0.store(T0 + 4 * S + 1, Ordering::SeqCst);
    let server = server::Server::start(cfg).unwrap();
    let mut c = connect(server.addr(), &admin);
    let inside = c.append(&keyed("k", "")).unwrap();
    assert!(inside.duplicate);
    assert_eq!((inside.seq, inside.hash), (later.seq, later.hash));
    let expired = c.append(&keyed("", "s")).unwrap();
    assert_eq!((expired.seq, expired.duplicate), (2, false));
}

#[test]
fn the_window_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    write_config(dir.path(), "127.0.0.1:0", &[&admin], "");
    let d = Daemon::with_config(dir.path());
    let mut c = connect(d.addr, &admin);
    let rs = c
        .append_batch(
            &(0..50)
                .map(|i| keyed(&format!("k{i}"), ""))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    d.kill9();
    let d = Daemon::with_config(dir.path());
    let mut c = connect(d.addr, &admin);
    let again = c
        .append_batch(
            &(0..60)
                .map(|i| keyed(&format!("k{i}"), ""))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    for i in 0..50 {
        assert!(again[i].duplicate, "k{i}");
        assert_eq!((again[i].seq, again[i].hash), (rs[i].seq, rs[i].hash));
    }
    assert_eq!(
        again[50..]
            .iter()
            .map(|r| (r.seq, r.duplicate))
            .collect::<Vec<_>>(),
        (50..60).map(|s| (s, false)).collect::<Vec<_>>()
    );
}

#[test]
fn strict_schemas_refuse_and_permissive_ones_count() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut cfg = config(dir.path(), &[&admin]);
    cfg.logs[0].schema_mode = Mode::Strict;
    cfg.logs[0].actions = vec!["user.*".into(), "document.deleted".into()];
    {
        let server = server::Server::start(cfg.clone()).unwrap();
        let mut c = connect(server.addr(), &admin);
        let ok = [
            event("t", "a", "user.login", "s"),
            event("t", "a", "document.deleted", "d"),
        ];
        assert_eq!(c.append_batch(&ok).unwrap().len(), 2);
        let err = c
            .append_batch(&[
                event("t", "a", "user.login", "s"),
                event("t", "a", "billing.charged", "b"),
            ])
            .unwrap_err();
        match err {
            client::ClientError::Server(e) => {
                assert_eq!(
                    (e.code, e.index, e.field.as_str()),
                    (ErrorCode::InvalidEvent, Some(1), "action")
                );
                assert!(e.message.contains("billing.charged"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.stats().unwrap().next_seq, 2);
    }
    // The same log, now permissive: unknown actions are stored and counted.
    cfg.logs[0].schema_mode = Mode::Permissive;
    let expect = vec![
        ("billing.charged".to_string(), 3),
        ("document.created".to_string(), 1),
    ];
    {
        let server = server::Server::start(cfg.clone()).unwrap();
        let mut c = connect(server.addr(), &admin);
        let batch = [
            event("t", "a", "billing.charged", "b"),
            event("t", "a", "billing.charged", "b"),
            event("t", "a", "user.logout", "s"),
            event("t", "a", "document.created", "d"),
            event("t", "a", "billing.charged", "b"),
        ];
        assert_eq!(c.append_batch(&batch).unwrap().len(), 5);
        // Counted by the indexer as events become durable.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while c.unknown_actions().unwrap() != expect && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(c.unknown_actions().unwrap(), expect);
        assert_eq!(c.stats().unwrap().unknown_actions, 4);
    }
    // Counts are rebuilt from the log on start.
    let server = server::Server::start(cfg).unwrap();
    let mut c = connect(server.addr(), &admin);
    assert_eq!(c.unknown_actions().unwrap(), expect);
}
