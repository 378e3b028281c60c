//! Merkle proofs over the binary protocol, and client-side trust: every
//! proof the server sends verifies against its signed checkpoint, a proof
//! passed off for another seq does not, and a client that remembers its
//! last checkpoint catches a log rolled back, forked, rewritten or
//! re-signed behind its back (on real restarts over copied directories).

mod common;

use std::path::Path;

use client::{
    AppendReceipt, Client, ClientError, ErrorCode, Proof, Trust, TrustError, VerifierKey,
};
use common::{connect, event, key, server_error, TestKey};
use engine::merkle::{self, MemoryTree, VerifyError};
use engine::note::ProofVerifyError;
use server::{Server, ServerConfig};

fn append(c: &mut Client, tenant: &str, i: u64) -> AppendReceipt {
    c.append(&event(tenant, &format!("u{i}"), "doc.read", "doc"))
        .expect("append")
}

fn vkey(server: &Server) -> VerifierKey {
    VerifierKey::parse(&server.verifier_keys()[0].1).expect("verifier key")
}

/// The tree of the receipts' chain hashes, computed here.
fn tree(receipts: &[AppendReceipt]) -> MemoryTree {
    let mut t = MemoryTree::new();
    for r in receipts {
        t.push(merkle::leaf_hash(&r.hash));
    }
    t
}

fn root(t: &MemoryTree, size: u64) -> client::Hash {
    merkle::root_at(t, size).expect("a size the tree holds")
}

#[test]
fn proofs_over_the_protocol_verify_and_a_proof_for_another_seq_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let all = key("all", "default", &["append", "read"], &[]);
    let t1 = key("t1", "default", &["read"], &["t1"]);
    let appender = key("w", "default", &["append"], &[]);
    let mut config = common::config(dir.path(), &[&all, &t1, &appender]);
    // Small segments: the proofs span sealed segments and the active one.
    config.logs[0].segment_size = 8192;
    config.logs[0].checkpoint_interval_secs = 0;
    let server = Server::start(config).expect("start");
    let key = vkey(&server);
    let mut c = connect(server.addr(), &all);
    let receipts: Vec<_> = (0..300)
        .map(|i| append(&mut c, if i % 3 == 0 { "t2" } else { "t1" }, i))
        .collect();
    assert!(
        std::fs::read_dir(dir.path().join("default"))
            .expect("read_dir")
            .filter(|e| e
                .as_ref()
                .expect("entry")
                .path()
                .extension()
                .is_some_and(|x| x == "seg"))
            .count()
            > 2,
        "several segments"
    );

    let mut trust = Trust::new(vec![key.clone()]);
    for seq in [0, 1, 63, 64, 65, 127, 128, 200, 299] {
        let proof = c.prove(seq, &mut trust).expect("prove");
        assert_eq!(proof.index(), seq);
        assert_eq!(proof.chain_hash(), Some(receipts[seq as usize].hash));
        assert_eq!(proof.checkpoint().size, 300);
        let verified = proof
            .verify(std::slice::from_ref(&key), &receipts[seq as usize].hash)
            .expect("verifies");
        assert_eq!(verified.root_hash, root(&tree(&receipts), 300));
        // The exported file parses back to the same proof.
        assert_eq!(
            Proof::parse(proof.encode().as_bytes()).expect("parse"),
            proof
        );
    }
    // At an earlier size too: the raw proof checks against that size's root.
    let t = tree(&receipts);
    for (seq, size) in [(0, 1), (10, 11), (99, 100), (5, 200)] {
        let (hash, hashes) = c.inclusion_proof(seq, size).expect("inclusion");
        assert_eq!(hash, receipts[seq as usize].hash);
        merkle::verify_inclusion(
            seq,
            size,
            &merkle::leaf_hash(&hash),
            &hashes,
            &root(&t, size),
        )
        .expect("verifies at the earlier size");
    }
    for (old, new) in [(1, 300), (100, 300), (64, 128), (299, 300), (300, 300)] {
        let hashes = c.consistency_proof(old, new).expect("consistency");
        merkle::verify_consistency(old, new, &root(&t, old), &root(&t, new), &hashes)
            .expect("consistent");
    }

    // A proof of seq 5 passed off as seq 6's (its own hash, or 6's): the
    // root it leads to is not the checkpoint's.
    let p5 = c.prove(5, &mut trust).expect("prove");
    let note = trust.note().expect("trusted").as_bytes().to_vec();
    for claimed in [receipts[5].hash, receipts[6].hash] {
        let forged = Proof::for_record(6, &claimed, p5.hashes().to_vec(), &note).expect("parts");
        match forged.verify(std::slice::from_ref(&key), &claimed) {
            Err(e @ ProofVerifyError::Inclusion(VerifyError::RootMismatch { .. })) => {
                assert_eq!(e.kind(), "RootMismatch")
            }
            other => panic!("a proof for the wrong seq: {other:?}"),
        }
    }
    // And the true proof checked against another record's hash.
    assert!(matches!(
        p5.verify(std::slice::from_ref(&key), &receipts[6].hash),
        Err(ProofVerifyError::HashMismatch { .. })
    ));

    // Out of range: typed errors naming the bound.
    for (r, needle) in [
        (c.inclusion_proof(300, 300), "index 300"),
        (c.inclusion_proof(0, 301), "301"),
        (c.inclusion_proof(5, 0), "index 5"),
    ] {
        let e = server_error(r);
        assert_eq!(e.code, ErrorCode::InvalidRequest, "{e}");
        assert!(e.message.contains(needle), "{e}");
    }
    for r in [
        c.consistency_proof(0, 10),
        c.consistency_proof(11, 10),
        c.consistency_proof(1, 301),
    ] {
        assert_eq!(server_error(r).code, ErrorCode::InvalidRequest);
    }

    // A tenant-limited key proves its tenants' records only; a key without
    // the read right proves nothing.
    let mut limited = connect(server.addr(), &t1);
    let (hash, _) = limited.inclusion_proof(1, 300).expect("a t1 record");
    assert_eq!(hash, receipts[1].hash);
    let e = server_error(limited.inclusion_proof(3, 300));
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert_eq!(e.message, "record 3 is not of this key's tenants");
    assert!(limited.consistency_proof(10, 300).is_ok());
    let mut w = connect(server.addr(), &appender);
    assert_eq!(
        server_error(w.inclusion_proof(1, 300)).code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        server_error(w.consistency_proof(1, 300)).code,
        ErrorCode::Forbidden
    );
    server.shutdown();
}

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Replaces the log's directory with `snapshot`.
fn restore(config: &ServerConfig, snapshot: &Path) {
    let log_dir = config.data_dir.join("default");
    std::fs::remove_dir_all(&log_dir).expect("remove");
    copy_dir(snapshot, &log_dir);
}

/// Starts the server, appends `n` events of `tenant`, and asks for a
/// checkpoint through `trust`.
fn run(
    config: &ServerConfig,
    writer: &TestKey,
    tenant: &str,
    n: u64,
    trust: &mut Trust,
) -> Result<client::Checkpoint, ClientError> {
    let server = Server::start(config.clone()).expect("start");
    let mut c = connect(server.addr(), writer);
    for i in 0..n {
        append(&mut c, tenant, i);
    }
    let r = c.verified_checkpoint(trust);
    drop(c);
    server.shutdown();
    r
}

fn trust_error(r: Result<client::Checkpoint, ClientError>) -> TrustError {
    match r {
        Err(ClientError::Trust(e)) => e,
        other => panic!("expected a trust error, got {other:?}"),
    }
}

#[test]
fn a_client_that_remembers_its_checkpoint_detects_rollback_fork_rewrite_and_another_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = tempfile::tempdir().expect("tempdir");
    let writer = key("w", "default", &["append", "read"], &[]);
    let mut config = common::config(dir.path(), &[&writer]);
    config.logs[0].checkpoint_interval_secs = 0;
    let key = {
        let server = Server::start(config.clone()).expect("start");
        let k = vkey(&server);
        server.shutdown();
        k
    };
    let mut trust = Trust::new(vec![key.clone()]);
    assert_eq!(
        run(&config, &writer, "a", 10, &mut trust).expect("10").size,
        10
    );
    let at10 = snapshots.path().join("at10");
    copy_dir(&config.data_dir.join("default"), &at10);
    assert_eq!(
        run(&config, &writer, "a", 10, &mut trust).expect("20").size,
        20
    );
    let at20 = snapshots.path().join("at20");
    copy_dir(&config.data_dir.join("default"), &at20);
    let trusted = trust.note().expect("trusted").to_owned();

    // Rolled back to the copy of 10 records.
    restore(&config, &at10);
    assert_eq!(
        trust_error(run(&config, &writer, "a", 0, &mut trust)),
        TrustError::RolledBack {
            trusted: 20,
            got: 10
        }
    );
    // Forked: 10 other records after the copy of 10: the same size, another
    // root.
    restore(&config, &at10);
    assert_eq!(
        trust_error(run(&config, &writer, "b", 10, &mut trust)),
        TrustError::Forked { size: 20 }
    );
    // Forked and grown past the trusted size: no consistency proof from 20
    // to 25 leads from the trusted root.
    restore(&config, &at10);
    match trust_error(run(&config, &writer, "b", 15, &mut trust)) {
        TrustError::Inconsistent {
            old: 20, new: 25, ..
        } => {}
        other => panic!("a forked log grown to 25: {other}"),
    }
    // The log's key replaced (a rewritten log re-signed): not accepted.
    restore(&config, &at20);
    let key_file = config.data_dir.join("keys/default.key");
    let saved_key = std::fs::read(&key_file).expect("key");
    std::fs::remove_file(&key_file).expect("remove key");
    assert!(matches!(
        trust_error(run(&config, &writer, "a", 5, &mut trust)),
        TrustError::Checkpoint(_)
    ));
    // Every refusal kept what was trusted.
    assert_eq!(trust.note(), Some(trusted.as_str()));

    // The honest log, grown: accepted, by a trust resumed from the saved
    // note as well as by the one in memory.
    restore(&config, &at20);
    std::fs::write(&key_file, saved_key).expect("restore key");
    let mut resumed = Trust::resume(vec![key], &trusted).expect("resume");
    assert_eq!(
        run(&config, &writer, "a", 5, &mut trust).expect("25").size,
        25
    );
    assert_eq!(
        run(&config, &writer, "a", 0, &mut resumed)
            .expect("25")
            .size,
        25
    );
    assert_eq!(trust.note(), resumed.note());
}
