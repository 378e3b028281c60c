//! Merkle roots and proofs from a log (`Log::tree_root_at`,
//! `inclusion_proof`, `consistency_proof`): equal to what a tree over every
//! receipt's hash gives, at sizes inside segments, at their boundaries and
//! at the head; the same after a reopen (level files loaded), with level
//! files removed or damaged (rebuilt), and with a node edited and its
//! checksums made good (rebuilt, or refused, never a wrong proof);
//! out-of-range arguments refused with typed errors.
//!
//! `CHAINLOG_PROOF_RECORDS` sets the log's size (default 3,000).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::format::footer::{Footer, FOOTER_LEN};
use engine::format::levels::LEVELS_HEADER_LEN;
use engine::merkle::{self, leaf_hash, MemoryTree, SizeError};
use engine::testing::Rng;
use engine::{Config, Error, Hash, Log};

fn records() -> u64 {
    std::env::var("CHAINLOG_PROOF_RECORDS").map_or(3_000, |s| {
        s.parse()
            .unwrap_or_else(|_| panic!("CHAINLOG_PROOF_RECORDS={s:?}"))
    })
}

/// Segments of about 14 records (a stored node, at level 6 or above with
/// the default `tree_min_level`, spans several) or about 150 (many stored
/// nodes inside one).
fn config(segment_size: u64) -> Config {
    Config {
        segment_size,
        index_interval: 512,
        log_id: Some(*b"merkle-proof-tst"),
        ..Config::default()
    }
}

/// Appends `n` records in batches of 1 to 40; returns their chain hashes.
fn fill(log: &Log, n: u64, seed: u64) -> Vec<Hash> {
    let mut rng = Rng::new(seed);
    let mut hashes = Vec::new();
    while (hashes.len() as u64) < n {
        let k = (1 + rng.below(40)).min(n - hashes.len() as u64);
        let batch: Vec<Vec<u8>> = (0..k)
            .map(|i| {
                format!(
                    "proof event {} {}",
                    hashes.len() as u64 + i,
                    "x".repeat(rng.below(60) as usize)
                )
                .into_bytes()
            })
            .collect();
        hashes.extend(
            log.append_batch(&batch)
                .expect("append")
                .iter()
                .map(|r| r.hash),
        );
    }
    hashes
}

fn reference(hashes: &[Hash]) -> MemoryTree {
    let mut t = MemoryTree::new();
    for h in hashes {
        t.push(leaf_hash(h));
    }
    t
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// The sealed segments' leaf ranges `[first_seq, last_seq + 1)`.
fn sealed_ranges(dir: &Path) -> Vec<(u64, u64)> {
    files(dir, "seg")
        .iter()
        .filter_map(|s| {
            let b = std::fs::read(s).expect("read");
            let f = Footer::decode(&b[b.len().checked_sub(FOOTER_LEN)?..]).ok()?;
            Some((f.first_seq, f.last_seq + 1))
        })
        .collect()
}

/// Sizes worth checking: the first few, powers of two and their
/// neighbours, the boundaries of ten segments spread over the log (the
/// first and the last sealed ones included) and a size inside each, and
/// the head.
fn sizes(dir: &Path, n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = vec![1, 2, 3, 5, 63, 64, 65, 127, 128, 129];
    for k in 8..40 {
        v.extend([(1u64 << k) - 1, 1 << k, (1 << k) + 1]);
    }
    let sealed = sealed_ranges(dir);
    let step = sealed.len().div_ceil(10).max(1);
    let picked = sealed.iter().step_by(step).chain(sealed.last());
    for &(first, end) in picked {
        v.extend([first, first + 1, end, (first + end) / 2]);
    }
    v.push(n - 1);
    v.push(n);
    v.retain(|&s| s >= 1 && s <= n);
    v.sort_unstable();
    v.dedup();
    v
}

/// Every size's root; every seq's inclusion proof at the `full` sizes (and
/// every 17th seq's at the others); consistency proofs between every pair
/// of sizes and at random pairs: each equal to the reference's, and each
/// verifying.
fn check_everything(log: &Log, hashes: &[Hash], dir: &Path, full: usize, seed: u64) {
    let t = reference(hashes);
    let n = hashes.len() as u64;
    let sizes = sizes(dir, n);
    assert!(sizes.len() > 20, "{sizes:?}");
    assert_eq!(log.tree_root_at(0).expect("empty"), merkle::empty_root());
    // The head's root is the one every other check rests on.
    assert_eq!(
        log.head().expect("head").tree_root,
        merkle::root_at(&t, n).expect("root")
    );
    // Spread the full sizes over the list, head included.
    let step = (sizes.len() / full.max(1)).max(1);
    for (i, &size) in sizes.iter().enumerate() {
        let root = merkle::root_at(&t, size).expect("root");
        assert_eq!(log.tree_root_at(size).expect("root"), root, "size {size}");
        let every = if i % step == 0 || size == n { 1 } else { 17 };
        for seq in (0..size).step_by(every) {
            let p = log.inclusion_proof(seq, size).expect("inclusion");
            assert_eq!(
                p,
                merkle::inclusion_proof(&t, seq, size).expect("reference"),
                "seq {seq} at size {size}"
            );
            merkle::verify_inclusion(seq, size, &leaf_hash(&hashes[seq as usize]), &p, &root)
                .unwrap_or_else(|e| panic!("seq {seq} at size {size}: {e}"));
        }
    }
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    for (i, &old) in sizes.iter().enumerate() {
        pairs.extend(sizes[i..].iter().map(|&new| (old, new)));
    }
    let mut rng = Rng::new(seed);
    for _ in 0..300 {
        let new = 1 + rng.below(n);
        pairs.push((1 + rng.below(new), new));
    }
    for (old, new) in pairs {
        let p = log.consistency_proof(old, new).expect("consistency");
        assert_eq!(
            p,
            merkle::consistency_proof(&t, old, new).expect("reference"),
            "{old} -> {new}"
        );
        let (a, b) = (
            merkle::root_at(&t, old).expect("root"),
            merkle::root_at(&t, new).expect("root"),
        );
        merkle::verify_consistency(old, new, &a, &b, &p)
            .unwrap_or_else(|e| panic!("{old} -> {new}: {e}"));
    }
}

fn make_writable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

/// Replaces the level file's first node (at its lowest level),
/// recomputing its checksums: a file that decodes, and lies.
fn edit_node_consistently(path: &Path) {
    make_writable(path);
    let mut b = std::fs::read(path).expect("read");
    assert!(
        b.len() > LEVELS_HEADER_LEN,
        "{} holds no node",
        path.display()
    );
    b[LEVELS_HEADER_LEN] ^= 0x55;
    let nodes_crc = engine::format::crc32(&b[LEVELS_HEADER_LEN..]);
    b[40..44].copy_from_slice(&nodes_crc.to_le_bytes());
    let crc = engine::format::crc32(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, &b).expect("write");
    assert!(engine::format::levels::decode(&b).is_ok());
}

fn proofs_across_segments(segment_size: u64, seed: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = records();
    let log = Log::open(dir.path(), config(segment_size)).expect("open");
    let hashes = fill(&log, n, seed);
    let sealed = sealed_ranges(dir.path()).len();
    assert!(sealed >= 15, "{sealed} sealed segments");
    // One level file per sealed segment, written by its seal.
    assert_eq!(files(dir.path(), "lvl").len(), sealed);

    // 1. The live log: sealed segments' files, the active one's memory.
    check_everything(&log, &hashes, dir.path(), 6, seed);
    assert_eq!(log.stats().level_files_rebuilt, 0);
    drop(log);
    let pristine: Vec<(PathBuf, Vec<u8>)> = files(dir.path(), "lvl")
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect();

    // 2. Reopened: the level files are loaded on first use, the active
    // segment's nodes recomputed by recovery's walk of its records.
    let log = Log::open(dir.path(), config(segment_size)).expect("reopen");
    check_everything(&log, &hashes, dir.path(), 3, seed + 1);
    assert_eq!(log.stats().level_files_rebuilt, 0);
    drop(log);

    // 3. Level files removed, garbled, or another segment's: rebuilt from
    // the records, and written back as they were.
    let lvl: Vec<&(PathBuf, Vec<u8>)> = pristine
        .iter()
        .filter(|(_, b)| b.len() > LEVELS_HEADER_LEN)
        .collect();
    assert!(lvl.len() >= 6, "{} level files hold nodes", lvl.len());
    let damaged = [0, lvl.len() / 3, lvl.len() / 2, lvl.len() - 1];
    std::fs::remove_file(&lvl[damaged[0]].0).expect("remove");
    make_writable(&lvl[damaged[1]].0);
    let mut garbled = lvl[damaged[1]].1.clone();
    garbled[LEVELS_HEADER_LEN + 3] ^= 1;
    std::fs::write(&lvl[damaged[1]].0, &garbled).expect("write");
    make_writable(&lvl[damaged[2]].0);
    std::fs::write(&lvl[damaged[2]].0, &lvl[damaged[3]].1).expect("write");
    std::fs::remove_file(&lvl[damaged[3]].0).expect("remove");
    let log = Log::open(dir.path(), config(segment_size)).expect("reopen");
    check_everything(&log, &hashes, dir.path(), 2, seed + 2);
    assert_eq!(log.stats().level_files_rebuilt, damaged.len() as u64);
    drop(log);
    assert_pristine(&pristine);

    // 4. A node edited, its checksums made good: the proofs that read it
    // do not verify, its file is rebuilt from the records, and the proofs
    // made again are right.
    for &i in &damaged {
        edit_node_consistently(&lvl[i].0);
    }
    let log = Log::open(dir.path(), config(segment_size)).expect("reopen");
    check_everything(&log, &hashes, dir.path(), 2, seed + 3);
    assert_eq!(log.stats().level_files_rebuilt, damaged.len() as u64);
    drop(log);
    assert_pristine(&pristine);

    // 5. Another lowest stored level: each file holding nodes from it up
    // is rebuilt as a proof needs it, and back again.
    let holding = |min_level: u32| {
        sealed_ranges(dir.path())
            .iter()
            .filter(|&&(first, end)| end >> min_level > first >> min_level)
            .count() as u64
    };
    let lower = Config {
        tree_min_level: 3,
        ..config(segment_size)
    };
    let log = Log::open(dir.path(), lower).expect("reopen");
    check_everything(&log, &hashes, dir.path(), 2, seed + 4);
    assert_eq!(log.stats().level_files_rebuilt, holding(3));
    drop(log);
    let log = Log::open(dir.path(), config(segment_size)).expect("reopen");
    check_everything(&log, &hashes, dir.path(), 1, seed + 5);
    assert_eq!(log.stats().level_files_rebuilt, holding(6));
    assert_eq!(holding(6), lvl.len() as u64);
    drop(log);
    // (A file with no node from level 6 up is never needed at 6: it stays
    // as level 3 left it.)
    assert_pristine(lvl.iter().copied());
}

fn assert_pristine<'a>(pristine: impl IntoIterator<Item = &'a (PathBuf, Vec<u8>)>) {
    for (p, b) in pristine {
        assert_eq!(
            &std::fs::read(p).expect("read"),
            b,
            "{} rewritten as it was",
            p.display()
        );
    }
}

#[test]
fn proofs_with_segments_smaller_than_a_stored_node() {
    proofs_across_segments(2048, 1);
}

#[test]
fn proofs_with_many_stored_nodes_inside_each_segment() {
    proofs_across_segments(20_000, 2);
}

fn beyond(e: Error) -> (u64, u64) {
    match e {
        Error::TreeSizeBeyondDurable { size, durable } => (size, durable),
        other => panic!("expected TreeSizeBeyondDurable, got {other}"),
    }
}

fn invalid(e: Error) -> SizeError {
    match e {
        Error::InvalidTreeArguments(e) => e,
        other => panic!("expected InvalidTreeArguments, got {other}"),
    }
}

#[test]
fn arguments_without_a_proof_are_refused_with_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config(2048)).expect("open");
    // The empty log: only the empty tree.
    assert_eq!(log.tree_root_at(0).expect("empty"), merkle::empty_root());
    assert_eq!(beyond(log.tree_root_at(1).expect_err("none")), (1, 0));
    assert_eq!(
        invalid(log.inclusion_proof(0, 0).expect_err("none")),
        SizeError::IndexOutOfRange { index: 0, size: 0 }
    );
    assert_eq!(
        beyond(log.consistency_proof(1, 1).expect_err("none")),
        (1, 0)
    );

    let hashes = fill(&log, 100, 3);
    let n = hashes.len() as u64;
    assert_eq!(
        beyond(log.tree_root_at(n + 1).expect_err("past")),
        (n + 1, n)
    );
    assert_eq!(
        beyond(log.tree_root_at(u64::MAX).expect_err("past")),
        (u64::MAX, n)
    );
    assert_eq!(
        beyond(log.inclusion_proof(0, n + 1).expect_err("past")),
        (n + 1, n)
    );
    assert_eq!(
        invalid(log.inclusion_proof(n, n).expect_err("not inside")),
        SizeError::IndexOutOfRange { index: n, size: n }
    );
    assert_eq!(
        invalid(log.inclusion_proof(u64::MAX, 7).expect_err("not inside")),
        SizeError::IndexOutOfRange {
            index: u64::MAX,
            size: 7
        }
    );
    assert_eq!(
        beyond(log.consistency_proof(1, n + 1).expect_err("past")),
        (n + 1, n)
    );
    assert_eq!(
        invalid(log.consistency_proof(0, n).expect_err("from nothing")),
        SizeError::OldSizeZero
    );
    assert_eq!(
        invalid(log.consistency_proof(9, 8).expect_err("backwards")),
        SizeError::OldSizeGreater {
            old_size: 9,
            new_size: 8
        }
    );
    // Equal sizes: the empty proof.
    assert_eq!(
        log.consistency_proof(n, n).expect("equal"),
        Vec::<Hash>::new()
    );
}

/// The stored offset of record `seq` in a segment's bytes.
fn record_at(seg: &[u8], first_seq: u64, seq: u64) -> usize {
    let mut at = engine::format::header::HEADER_LEN;
    for _ in first_seq..seq {
        let len = u32::from_le_bytes(seg[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += 64 + len;
    }
    at
}

/// Changes record `seq`'s stored chain hash in the `k`-th sealed segment
/// and recomputes its CRC (only the chain notices); returns the segment.
fn edit_chain_hash(dir: &Path, k: usize, seq: u64, hash: &Hash) -> PathBuf {
    let (first, _) = sealed_ranges(dir)[k];
    let seg = files(dir, "seg")[k].clone();
    make_writable(&seg);
    let mut b = std::fs::read(&seg).expect("read");
    let at = record_at(&b, first, seq);
    let len = u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")) as usize;
    assert_eq!(&b[at + 32 + len..at + 64 + len], hash);
    b[at + 32 + len] ^= 1;
    let mut covered = b[at..at + 4].to_vec();
    covered.extend_from_slice(&b[at + 8..at + 64 + len]);
    let crc = engine::format::crc32(&covered);
    b[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &b).expect("write");
    std::fs::set_permissions(&seg, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    seg
}

#[test]
fn a_record_whose_hash_was_edited_gives_a_corruption_error_not_a_proof() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config(20_000)).expect("open");
    let hashes = fill(&log, 1_000, 4);
    drop(log);
    // A record in the middle of the second sealed segment.
    let (first, end) = sealed_ranges(dir.path())[1];
    let seq = (first + end) / 2;
    let seg = edit_chain_hash(dir.path(), 1, seq, &hashes[seq as usize]);

    // Opening checks sealed segments cheaply: it opens.
    let log = Log::open(dir.path(), config(20_000)).expect("open");
    let n = hashes.len() as u64;
    let t = reference(&hashes);
    // The proof made with the edited leaf does not verify; the level files
    // it read are rebuilt from their records, and the walk of the edited
    // segment finds the break, where it is.
    let chain_break = |e: Error| {
        let c = e.corruption().unwrap_or_else(|| panic!("{e}")).clone();
        assert_eq!((c.file, c.seq), (seg.clone(), Some(seq)), "{}", c.kind);
        assert!(
            matches!(c.kind, engine::CorruptionKind::ChainBreak { .. }),
            "{}",
            c.kind
        );
    };
    for size in [seq + 1, end, n] {
        chain_break(
            log.inclusion_proof(seq, size)
                .expect_err("the record is not the one written"),
        );
    }
    // Its neighbour's proof at the head has the edited leaf as its
    // sibling: refused too.
    chain_break(log.inclusion_proof(seq ^ 1, n).expect_err("sibling edited"));
    // A proof far from it reads only stored nodes over that segment: right.
    let p = log.inclusion_proof(n - 1, n).expect("far from the edit");
    assert_eq!(p, merkle::inclusion_proof(&t, n - 1, n).expect("reference"));
    drop(log);

    // In a log too small for any stored node, the proof reads no level
    // file: nothing to rebuild, and the proof is refused as such.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config(2048)).expect("open");
    let hashes = fill(&log, 60, 6);
    drop(log);
    let (first, _) = sealed_ranges(dir.path())[1];
    edit_chain_hash(dir.path(), 1, first, &hashes[first as usize]);
    let log = Log::open(dir.path(), config(2048)).expect("open");
    let e = log.inclusion_proof(first, 60).expect_err("edited");
    let c = e.corruption().unwrap_or_else(|| panic!("{e}"));
    assert_eq!((c.file.as_path(), c.seq), (dir.path(), Some(59)));
    match &c.kind {
        engine::CorruptionKind::TreeProofRejected {
            size: 60,
            cause: merkle::VerifyError::RootMismatch { expected, .. },
        } => assert_eq!(*expected, log.head().expect("head").tree_root),
        other => panic!("{other}"),
    }
    assert_eq!(c.kind.name(), "TreeProofRejected");
    // The root of a past size is checked the same way.
    let e = log.tree_root_at(first + 1).expect_err("edited");
    assert_eq!(
        e.corruption().map(|c| c.kind.name()),
        Some("TreeProofRejected"),
        "{e}"
    );
}

#[test]
fn proofs_at_the_head_while_appends_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(Log::open(dir.path(), config(4096)).expect("open"));
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || fill(&log, 1_500, 5))
    };
    let mut checked = 0;
    while !writer.is_finished() || checked == 0 {
        let Some(head) = log.head() else { continue };
        let size = head.seq + 1;
        let seq = size / 3;
        let record = log.read(seq).expect("read");
        let root = log.tree_root_at(size).expect("root");
        let p = log.inclusion_proof(seq, size).expect("inclusion");
        merkle::verify_inclusion(seq, size, &leaf_hash(&record.hash), &p, &root).expect("verifies");
        if size > 1 {
            let c = log.consistency_proof(size / 2, size).expect("consistency");
            let old = log.tree_root_at(size / 2).expect("root");
            merkle::verify_consistency(size / 2, size, &old, &root, &c).expect("verifies");
        }
        checked += 1;
    }
    let hashes = writer.join().expect("writer");
    assert!(checked > 1, "{checked}");
    let t = reference(&hashes);
    let n = hashes.len() as u64;
    assert_eq!(
        log.tree_root_at(n).expect("root"),
        merkle::root_at(&t, n).expect("root")
    );
}
