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

/// The first start without a config writes one, with the addresses the
/// command line gave, so that the next start (without them) listens in
/// the same places; the printed dev key works.
#[test]
fn a_first_start_writes_its_listen_flags_into_the_generated_config() {
    let dir = tempfile::tempdir().unwrap();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string()
    };
    let (listen, metrics, http) = (free(), free(), free());
    let d = Daemon::start(
        &[
            "--listen",
            &listen,
            "--metrics-listen",
            &metrics,
            "--http-listen",
            &http,
        ],
        dir.path(),
    );
    assert_eq!(d.addr.to_string(), listen);
    let out = d.stdout.lock().unwrap().clone();
    let key = out
        .lines()
        .skip_while(|l| !l.contains("development API key"))
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    assert!(d.terminate().success());
    let config = std::fs::read_to_string(dir.path().join("chainlog-data/chainlogd.toml")).unwrap();
    for line in [
        format!("listen = \"{listen}\""),
        format!("metrics_listen = \"{metrics}\""),
        format!("http_listen = \"{http}\""),
    ] {
        assert!(config.lines().any(|l| l == line), "{line} not in\n{config}");
    }
    assert!(config.contains("# Listens on loopback only."), "{config}");
    // Started again with no flags: the same addresses, the same key.
    let d = Daemon::start(&[], dir.path());
    assert_eq!(d.addr.to_string(), listen);
    assert_eq!(d.http_addr().to_string(), http);
    assert!(d
        .stdout
        .lock()
        .unwrap()
        .contains(&format!("metrics on http://{metrics}/metrics")));
    let mut c = client::Client::connect(d.addr).unwrap();
    c.auth(&key).unwrap();
    assert_eq!(
        c.append(&event("acme", "u1", "user.login", "session"))
            .unwrap()
            .seq,
        0
    );
    drop(c);
    assert!(d.terminate().success());
}

/// The README's first command puts the data in ./chainlog-data: a clone
/// of this repository must not offer it to `git add`.
#[test]
fn the_default_data_directory_is_ignored_by_git() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ignore = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "/chainlog-data/"),
        "{ignore}"
    );
}
