//! The basics end to end: handshake, auth, append, read back, stats, ping.
#![allow(clippy::unwrap_used)]

mod common;

use client::{ErrorCode, Query};
use common::*;

#[test]
fn append_then_read_back_with_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let admin = key("admin", "default", &["append", "read", "admin"], &[]);
    let server = start(dir.path(), &[&admin]);
    let mut c = connect(server.addr(), &admin);
    c.ping().unwrap();
    let r = c
        .append(&event("acme", "u1", "user.login", "session"))
        .unwrap();
    assert_eq!((r.seq, r.duplicate), (0, false));
    let batch: Vec<_> = (0..10)
        .map(|i| event("acme", &format!("u{i}"), "doc.read", "doc"))
        .collect();
    let rs = c.append_batch(&batch).unwrap();
    assert_eq!(
        rs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..11).collect::<Vec<_>>()
    );
    let all: Vec<_> = c.query(Query::all()).collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), 11);
    assert_eq!(all[0].hash, r.hash);
    assert_eq!(all[0].created_at, r.created_at);
    assert_eq!(all[3].event, batch[2]);
    let s = c.stats().unwrap();
    assert_eq!((s.next_seq, s.head_hash), (11, rs[9].hash));
    let mut bad = event("acme", "", "x", "y");
    bad.metadata = "{}".into();
    let e = c
        .append_batch(&[event("acme", "u", "a", "r"), bad])
        .unwrap_err();
    match e {
        client::ClientError::Server(e) => {
            assert_eq!(
                (e.code, e.index, e.field.as_str()),
                (ErrorCode::InvalidEvent, Some(1), "actor_id")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.stats().unwrap().next_seq,
        11,
        "a refused batch stores nothing"
    );
}
