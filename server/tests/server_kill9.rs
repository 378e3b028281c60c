//! kill -9 of chainlogd under load from 8 clients that record every
//! receipt: after a restart every receipted event is there, with the same
//! seq, hash, created_at and content.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use engine::testing::Rng;

fn rounds() -> usize {
    std::env::var("CHAINLOG_SERVER_KILL9_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

#[test]
fn every_receipt_survives_kill_9_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    write_config(dir.path(), "127.0.0.1:0", &[&admin], "");
    let mut receipts: HashMap<u64, (client::AppendReceipt, client::Event)> = HashMap::new();
    for round in 0..rounds() {
        let d = Daemon::with_config(dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let (addr, text, stop) = (d.addr, admin.text.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let Ok(mut c) = client::Client::connect(addr) else {
                        return got;
                    };
                    if c.auth(&text).is_err() {
                        return got;
                    }
                    let mut rng = Rng::new(0x9e37_79b9 + t * 7 + round as u64 * 1000);
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let n = 1 + rng.below(20) as usize;
                        let batch: Vec<_> = (0..n)
                            .map(|k| {
                                let mut e = event("acme", &format!("c{t}"), "doc.write", "doc");
                                e.resource_id = format!("r{round}-{t}-{i}-{k}");
                                e
                            })
                            .collect();
                        i += 1;
                        match c.append_batch(&batch) {
                            Ok(rs) => got.extend(rs.into_iter().zip(batch)),
                            Err(_) => return got,
                        }
                    }
                    got
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(800));
        d.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            for (r, e) in t.join().unwrap() {
                assert!(
                    receipts.insert(r.seq, (r, e)).is_none(),
                    "seq {} receipted twice",
                    r.seq
                );
            }
        }
    }
    assert!(
        receipts.len() > 100,
        "only {} receipts: the load did not run",
        receipts.len()
    );
    let d = Daemon::with_config(dir.path());
    let mut c = connect(d.addr, &admin);
    let next = assert_every_receipt_stored(&mut c, &receipts);
    eprintln!(
        "{} receipted events of {next} stored, all present after kill -9",
        receipts.len()
    );
}

#[test]
fn sigterm_acknowledges_what_is_durable_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    write_config(dir.path(), "127.0.0.1:0", &[&admin], "");
    let d = Daemon::with_config(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (addr, text, stop) = (d.addr, admin.text.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = client::Client::connect(addr).unwrap();
                c.auth(&text).unwrap();
                let mut got = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let e = event("acme", &format!("c{t}"), "doc.write", &format!("{i}"));
                    i += 1;
                    match c.append(&e) {
                        Ok(r) => got.push((r, e)),
                        Err(_) => break,
                    }
                }
                got
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let stderr = d.stderr.clone();
    let status = d.terminate();
    stop.store(true, Ordering::Relaxed);
    assert!(
        status.success(),
        "exit status {status:?}: {}",
        stderr.lock().unwrap()
    );
    assert!(stderr.lock().unwrap().contains("chainlogd stopped"));
    let receipts: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(!receipts.is_empty());
    let d = Daemon::with_config(dir.path());
    let mut c = connect(d.addr, &admin);
    for (r, e) in &receipts {
        let page = c.read(r.seq, r.seq + 1, 1).unwrap();
        assert_eq!(page.events.len(), 1, "seq {}", r.seq);
        assert_eq!((&page.events[0].hash, &page.events[0].event), (&r.hash, e));
    }
}
