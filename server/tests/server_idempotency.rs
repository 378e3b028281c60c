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

/// The refusal `e` must be: a conflict at `index` on `field`, saying why.
fn assert_conflict(e: client::ClientError, index: u32, field: &str, why: &str) {
    match e {
        client::ClientError::Server(r) => {
            assert_eq!(r.code, ErrorCode::Conflict, "{r:?}");
            assert_eq!(r.index, Some(index), "{r:?}");
            assert_eq!(r.field, field, "{r:?}");
            assert_eq!(
                r.message,
                format!("this {field} was used for another event: {why}")
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn a_key_reused_for_other_content_is_a_conflict_and_a_true_retry_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut cfg = config(dir.path(), &[&admin]);
    let server = server::Server::start(cfg.clone()).unwrap();
    let mut c = connect(server.addr(), &admin);
    let mut first = keyed("k1", "");
    first.metadata = r#"{"ip":"10.0.0.1","tags":[1,2]}"#.into();
    let stored = c.append(&first).unwrap();
    assert_eq!(stored.seq, 0);

    // The same event again: metadata with its keys in another order and
    // other spacing, occurred_at left to the server: a duplicate.
    let mut retry = first.clone();
    retry.metadata = r#"{ "tags": [1, 2], "ip": "10.0.0.1" }"#.into();
    retry.occurred_at = 0;
    let again = c.append(&retry).unwrap();
    assert!(again.duplicate);
    assert_eq!((again.seq, again.hash), (stored.seq, stored.hash));

    // The same key with other content: each field that differs is named.
    let mut other_actor = first.clone();
    other_actor.actor_id = "u2".into();
    let why = "it was stored as seq 0, whose actor_id differs";
    assert_conflict(
        c.append(&other_actor).unwrap_err(),
        0,
        "idempotency_key",
        why,
    );
    let mut other_meta = first.clone();
    other_meta.metadata = r#"{"ip":"10.0.0.2","tags":[1,2]}"#.into();
    let mut other_time = first.clone();
    other_time.occurred_at += 1;
    // In a batch the conflict names the event; nothing of the batch is
    // stored.
    assert_conflict(
        c.append_batch(&[keyed("n1", ""), other_meta]).unwrap_err(),
        1,
        "idempotency_key",
        "it was stored as seq 0, whose metadata differs",
    );
    assert_conflict(
        c.append_batch(&[keyed("n1", ""), keyed("n2", ""), other_time])
            .unwrap_err(),
        2,
        "idempotency_key",
        "it was stored as seq 0, whose occurred_at differs",
    );
    assert_eq!(c.stats().unwrap().next_seq, 1);
    // The batch's keys were released: n1 stores now.
    assert!(!c.append(&keyed("n1", "")).unwrap().duplicate);

    // Source event ids the same way, and the other key counts when both
    // sides have one.
    let s = c.append(&keyed("k9", "s9")).unwrap();
    assert_eq!(s.seq, 2);
    let mut resource = keyed("", "s9");
    resource.resource = "document".into();
    assert_conflict(
        c.append(&resource).unwrap_err(),
        0,
        "source_event_id",
        "it was stored as seq 2, whose resource differs",
    );
    assert_conflict(
        c.append(&keyed("k9", "s10")).unwrap_err(),
        0,
        "idempotency_key",
        "it was stored as seq 2, whose source_event_id differs",
    );
    assert_conflict(
        c.append(&keyed("k10", "s9")).unwrap_err(),
        0,
        "source_event_id",
        "it was stored as seq 2, whose idempotency_key differs",
    );
    // A key added on the retry of an event stored by its source id alone
    // is the same event.
    assert_eq!(c.append(&keyed("k9", "")).unwrap().seq, 2);
    assert_eq!(c.append(&keyed("", "s9")).unwrap().seq, 2);

    // Within one batch: the later event conflicts with the earlier.
    let mut w2 = keyed("w1", "");
    w2.action = "user.logout".into();
    assert_conflict(
        c.append_batch(&[keyed("w1", ""), w2]).unwrap_err(),
        1,
        "idempotency_key",
        "it is also event 0 of this batch, whose action differs",
    );
    assert_eq!(c.stats().unwrap().next_seq, 3);
    // Equality does not carry from copy to copy: every copy is compared
    // with every earlier one sharing a key, and with the stored event.
    // k9 is stored with source s9; a copy without a source id matches it,
    // and a later copy with another source id must not slip through.
    assert_conflict(
        c.append_batch(&[keyed("k9", ""), keyed("k9", "s11")])
            .unwrap_err(),
        1,
        "idempotency_key",
        "it was stored as seq 2, whose source_event_id differs",
    );
    assert_conflict(
        c.append_batch(&[keyed("x1", ""), keyed("x1", "y1"), keyed("x1", "y2")])
            .unwrap_err(),
        2,
        "idempotency_key",
        "it is also event 1 of this batch, whose source_event_id differs",
    );
    assert_eq!(c.stats().unwrap().next_seq, 3);

    // Over HTTP: 409 in the one error shape.
    let body = serde_json::json!({
        "tenant_id": "acme", "actor_id": "u3", "action": "user.login",
        "resource": "session", "idempotency_key": "k1",
        "occurred_at": 1_700_000_000_000u64,
    });
    let auth = format!("Bearer {}", admin.text);
    let r = http(
        server.http_addr().unwrap(),
        "POST",
        "/api/v1/events",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "conflict");
    let v = r.json();
    assert_eq!(v["error"]["index"], 0);
    assert_eq!(v["error"]["field"], "idempotency_key");
    assert_eq!(
        v["error"]["message"],
        "this idempotency_key was used for another event: it was stored as seq 0, whose actor_id differs"
    );
    // Nine conflicts answered over the protocol (the metric counts its
    // error frames).
    assert!(
        server
            .metrics_text()
            .contains("\nchainlog_errors_total{code=\"conflict\"} 9\n"),
        "{}",
        server.metrics_text()
    );
    drop(c);
    drop(server);

    // After a restart the window is rebuilt from the log, and conflicts
    // are found as before.
    cfg.logs[0].dedup_window_secs = 3600 * 24 * 30;
    let server = server::Server::start(cfg).unwrap();
    let mut c = connect(server.addr(), &admin);
    assert_conflict(
        c.append(&other_actor).unwrap_err(),
        0,
        "idempotency_key",
        why,
    );
    assert!(c.append(&retry).unwrap().duplicate);
}

/// The `.seg.evx` files of the log `default` under `dir`.
fn index_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("default"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "evx"))
        .collect();
    files.sort();
    files
}

#[test]
fn keys_of_any_age_are_found_across_restarts_and_seals() {
    const S: u64 = 1_000_000_000;
    const DAY: u64 = 86_400 * S;
    const T0: u64 = 1_750_000_000 * S;
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let clock = Arc::new(HandClock(AtomicU64::new(T0)));
    let mut cfg = config(dir.path(), &[&admin]);
    cfg.logs[0].clock = clock.clone();
    // About 30 events per segment: the 300 below fill ten sealed segments.
    cfg.logs[0].segment_size = 8 << 10;
    let mut sent = Vec::new();
    let receipts = {
        let server = server::Server::start(cfg.clone()).unwrap();
        let mut c = connect(server.addr(), &admin);
        let mut receipts = Vec::new();
        for i in 0..300u64 {
            let mut e = keyed(&format!("idem-{i}"), &format!("src-{i}"));
            e.correlation_id = format!("corr-{}", i % 7);
            e.metadata = format!(r#"{{"pad":"{}"}}"#, "x".repeat(150));
            receipts.push(c.append(&e).unwrap());
            sent.push(e);
            clock.0.fetch_add(S, Ordering::SeqCst);
        }
        receipts
    };

    // A year later (the old window was 7 days), restarted twice: once as
    // written, once with every index file removed (rebuilt at open).
    clock.0.fetch_add(365 * DAY, Ordering::SeqCst);
    for round in 0..2 {
        let removed = if round == 1 {
            let files = index_files(dir.path());
            for f in &files {
                std::fs::remove_file(f).unwrap();
            }
            files
        } else {
            Vec::new()
        };
        let server = server::Server::start(cfg.clone()).unwrap();
        // One file per sealed segment, written by the start at the latest
        // (a year on, the idle active segment may also have been sealed
        // by age).
        let files = index_files(dir.path());
        assert!(files.len() >= 9, "{files:?}");
        assert!(removed.iter().all(|f| files.contains(f)), "{files:?}");
        let mut c = connect(server.addr(), &admin);
        // Every key, in sealed segments and the active one, by either
        // field alone: the original receipt.
        for i in (0..300).step_by(13).chain([299]) {
            let mut retry = sent[i].clone();
            retry.source_event_id.clear();
            let by_idem = c.append(&retry).unwrap();
            let original = &receipts[i];
            assert!(by_idem.duplicate, "round {round} key {i}");
            assert_eq!(
                (by_idem.seq, by_idem.hash, by_idem.created_at),
                (original.seq, original.hash, original.created_at),
                "round {round} key {i}"
            );
            let mut retry = sent[i].clone();
            retry.idempotency_key.clear();
            let by_source = c.append(&retry).unwrap();
            assert_eq!(
                (by_source.seq, by_source.duplicate),
                (original.seq, true),
                "round {round} key {i}"
            );
        }
        // An old key with other content is a conflict, not a duplicate.
        let mut other = sent[3].clone();
        other.actor_id = "u9".into();
        assert_conflict(
            c.append(&other).unwrap_err(),
            0,
            "idempotency_key",
            "it was stored as seq 3, whose actor_id differs",
        );
        // Exact lookups: one event per key, all of a correlation in order.
        let q = |idem: &str, source: &str, corr: &str, descending: bool| client::Query {
            idempotency_key: idem.into(),
            source_event_id: source.into(),
            correlation_id: corr.into(),
            descending,
            want_total: true,
            limit: 1000,
            ..client::Query::default()
        };
        let page = c.query_page(&q("idem-17", "", "", false)).unwrap();
        assert_eq!(
            page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![17]
        );
        assert_eq!(page.events[0].event, sent[17]);
        assert_eq!(page.total, Some(1));
        let page = c.query_page(&q("", "src-250", "", false)).unwrap();
        assert_eq!(
            page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![250]
        );
        assert_eq!(
            c.query_page(&q("idem-17", "src-18", "", false))
                .unwrap()
                .events
                .len(),
            0,
            "two keys of different events match nothing"
        );
        let corr3: Vec<u64> = (0..300).filter(|i| i % 7 == 3).collect();
        let page = c.query_page(&q("", "", "corr-3", false)).unwrap();
        assert_eq!(page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), corr3);
        assert_eq!(page.total, Some(corr3.len() as u64));
        let page = c.query_page(&q("", "", "corr-3", true)).unwrap();
        assert_eq!(
            page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            corr3.iter().rev().copied().collect::<Vec<_>>()
        );
        // Nothing of the above was stored.
        assert_eq!(c.stats().unwrap().next_seq, 300, "round {round}");
    }
}
