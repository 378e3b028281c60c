//! A full engine queue answers `busy` at once, and every append that was
//! accepted is acknowledged: pipelining more than the queue holds loses
//! nothing and acknowledges nothing twice.
#![allow(clippy::unwrap_used)]

mod common;

use client::ErrorCode;
use common::*;

#[test]
fn a_full_queue_answers_busy_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let mut cfg = config(dir.path(), &[&admin]);
    cfg.logs[0].queue_depth = 1;
    // Every append through the writer's queue: with inline commits, one
    // connection's appends would each be written before the next is read,
    // and the queue would never fill.
    cfg.logs[0].commit_inline = false;
    let server = server::Server::start(cfg).unwrap();
    let mut c = connect(server.addr(), &admin);
    let batch: Vec<_> = (0..20)
        .map(|i| event("t", "a", "x.y", &format!("{i}")))
        .collect();
    let ids: Vec<_> = (0..300).map(|_| c.submit_append(&batch).unwrap()).collect();
    let (mut ok, mut busy) = (Vec::new(), 0);
    for id in ids {
        match c.wait_receipts(id) {
            Ok(rs) => ok.extend(rs.into_iter().map(|r| r.seq)),
            Err(e) if e.code() == Some(ErrorCode::Busy) => busy += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        busy > 0,
        "a queue of one should overflow with 300 pipelined appends"
    );
    assert_eq!(ok.len() + busy * 20, 300 * 20);
    let stored = c.stats().unwrap().next_seq;
    assert_eq!(
        stored,
        ok.len() as u64,
        "stored exactly the acknowledged appends"
    );
    ok.sort_unstable();
    assert_eq!(ok, (0..stored).collect::<Vec<_>>());
    eprintln!("{busy} of 300 appends answered busy");
}
