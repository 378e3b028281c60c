//! Signed checkpoints from a running chainlogd: on request, on count, on
//! time and at every seal; signed by the log's key (generated once, mode
//! 0600, outside the log's directory), kept in the log's checkpoints file,
//! and enough for segment-verify to check a copy of the log offline.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{connect, event, key};
use engine::note::{Checkpoint, VerifierKey};
use server::checkpoints::read_file;
use server::Server;

fn open(note: &str, vkey: &str) -> Checkpoint {
    let key = VerifierKey::parse(vkey).expect("verifier key");
    Checkpoint::open(note.as_bytes(), &[key]).expect("a checkpoint the key signed")
}

/// Waits until the log's checkpoints file holds `n` checkpoints.
fn wait_for_checkpoints(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let notes = std::fs::read(path)
            .map(|b| read_file(&b).0)
            .unwrap_or_default();
        if notes.len() >= n || Instant::now() > deadline {
            return notes;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn checkpoints_are_signed_by_the_logs_key_and_commit_to_durable_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = key("w", "default", &["append", "read"], &[]);
    let mut config = common::config(dir.path(), &[&writer]);
    // Neither on time nor at a seal here: on request and every 25 records.
    config.logs[0].checkpoint_interval_secs = 0;
    config.logs[0].checkpoint_every_records = 25;
    let server = Server::start(config.clone()).expect("start");
    let keys = server.verifier_keys();
    assert_eq!(keys.len(), 1);
    let (log, vkey) = keys[0].clone();
    assert_eq!(log, "default");
    assert!(vkey.starts_with("chainlog/default+"), "{vkey}");
    // The key: generated, private, outside the log's directory.
    let key_file = dir.path().join("keys/default.key");
    let mode = std::fs::metadata(&key_file)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let secret = std::fs::read_to_string(&key_file).expect("read");
    assert!(
        secret.starts_with("PRIVATE+KEY+chainlog/default+"),
        "{secret}"
    );
    assert!(!dir.path().join("default").join("default.key").exists());

    let mut c = connect(server.addr(), &writer);
    // An empty log: the empty tree.
    let first = c.checkpoint().expect("checkpoint");
    assert_eq!(first.verifier_key, vkey);
    let cp = open(&first.note, &vkey);
    assert_eq!((cp.origin.as_str(), cp.size), ("chainlog/default", 0));
    assert_eq!(cp.root_hash, engine::merkle::empty_root());

    let file = dir.path().join("default/checkpoints");
    let append = |c: &mut client::Client, i: u64| {
        c.append(&event("t1", &format!("u{i}"), "doc.read", "doc"))
            .expect("append")
    };
    let mut receipts: Vec<_> = (0..30).map(|i| append(&mut c, i)).collect();
    // 30 records since the last checkpoint, 25 asked for: the issuer signs
    // one of all 30.
    let notes = wait_for_checkpoints(&file, 2);
    let sizes: Vec<u64> = notes.iter().map(|n| open(n, &vkey).size).collect();
    assert_eq!(sizes, vec![0, 30], "one on request, one on count");
    receipts.extend((30..60).map(|i| append(&mut c, i)));
    let signed = c.checkpoint().expect("checkpoint");
    let cp = open(&signed.note, &vkey);
    assert_eq!(cp.size, 60);
    // Its root is the tree of the 60 receipts' hashes.
    let mut tree = engine::merkle::Frontier::new();
    for r in &receipts {
        tree.push(engine::merkle::leaf_hash(&r.hash));
    }
    assert_eq!(cp.root_hash, tree.root());
    // Asked again with nothing new: the same checkpoint, not a new one.
    assert_eq!(c.checkpoint().expect("checkpoint").note, signed.note);

    // The file: each checkpoint signed, sizes increasing, never beyond the
    // durable records, the last the one served.
    let notes = wait_for_checkpoints(&file, 3);
    let sizes: Vec<u64> = notes.iter().map(|n| open(n, &vkey).size).collect();
    assert_eq!(sizes[..2], [0, 30]);
    assert_eq!(sizes.last(), Some(&60));
    assert_eq!(notes.last(), Some(&signed.note));
    // Between, only what the rule allows: a slow machine may let the
    // issuer see 55 to 59 records before the request for 60.
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    assert!(
        sizes[2..sizes.len() - 1]
            .iter()
            .all(|s| (55..60).contains(s)),
        "{sizes:?}"
    );
    drop(c);
    server.shutdown();

    // The log's directory, the checkpoint and the key are enough offline.
    let cp = open(&signed.note, &vkey);
    let options = engine::verify::Options {
        checkpoint: Some((cp.size, cp.root_hash)),
        ..Default::default()
    };
    let report = engine::verify::verify(
        &engine::storage::FsStorage,
        &dir.path().join("default"),
        &options,
    )
    .expect("verify");
    assert!(report.checkpoint_checked);
    assert!(report.is_valid(), "{:?}", report.problems());

    // Restarted: the same key, and the newest checkpoint is still served.
    let server = Server::start(config).expect("restart");
    assert_eq!(server.verifier_keys()[0].1, vkey);
    let mut c = connect(server.addr(), &writer);
    assert_eq!(c.checkpoint().expect("checkpoint").note, signed.note);
    server.shutdown();
}

#[test]
fn a_seal_and_the_interval_issue_checkpoints_and_a_torn_entry_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = key("w", "default", &["append", "read"], &[]);
    let mut config = common::config(dir.path(), &[&writer]);
    config.logs[0].segment_size = 4096;
    config.logs[0].checkpoint_interval_secs = 0;
    config.logs[0].checkpoint_every_records = 0;
    let server = Server::start(config.clone()).expect("start");
    let vkey = server.verifier_keys()[0].1.clone();
    let mut c = connect(server.addr(), &writer);
    // Enough to seal the first segment.
    let mut n = 0u64;
    let file = dir.path().join("default/checkpoints");
    while std::fs::read_dir(dir.path().join("default"))
        .expect("read_dir")
        .filter(|e| {
            e.as_ref()
                .expect("entry")
                .path()
                .extension()
                .is_some_and(|x| x == "tree")
        })
        .count()
        == 0
    {
        c.append(&event("t1", "u", "doc.read", "doc"))
            .expect("append");
        n += 1;
        assert!(n < 1000, "no seal");
    }
    let notes = wait_for_checkpoints(&file, 1);
    assert!(!notes.is_empty(), "a checkpoint at the seal");
    let size = open(&notes[0], &vkey).size;
    assert!(size > 0 && size <= n, "size {size} of {n} records");
    drop(c);
    server.shutdown();

    // A crash in the middle of an append left half an entry: it is cut at
    // start, and the next checkpoint is whole.
    let whole = std::fs::read(&file).expect("read");
    let mut torn = whole.clone();
    torn.extend_from_slice(b"chainlog/default\n99\n");
    std::fs::write(&file, &torn).expect("write");
    config.logs[0].checkpoint_interval_secs = 1;
    let server = Server::start(config).expect("restart");
    assert_eq!(
        std::fs::read(&file).expect("read"),
        whole,
        "the torn entry is cut"
    );
    let mut c = connect(server.addr(), &writer);
    c.append(&event("t1", "u", "doc.read", "doc"))
        .expect("append");
    // On time: within the interval after a record was added.
    let notes = wait_for_checkpoints(&file, read_file(&whole).0.len() + 1);
    let last = open(notes.last().expect("notes"), &vkey);
    assert_eq!(last.size, n + 1);
    server.shutdown();
}
