//! The log's Merkle tree: kept on the write path, sealed into each footer,
//! continued across a reopen from the tree files, rebuilt from the records
//! when a tree file is missing or wrong, recomputed by verification, and
//! checked against a checkpoint's size and root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use engine::format::footer::{Footer, FOOTER_LEN};
use engine::merkle::{leaf_hash, node_hash, Frontier};
use engine::storage::FsStorage;
use engine::verify::{self, Options};
use engine::{CorruptionKind, Hash, Log, Receipt};

fn config() -> engine::Config {
    engine::Config {
        segment_size: 2048,
        index_interval: 256,
        log_id: Some(*b"merkle-log-test!"),
        ..engine::Config::default()
    }
}

fn append(log: &Log, from: u64, n: u64) -> Vec<Receipt> {
    (from..from + n)
        .map(|i| {
            log.append(format!("tree event {i:04} padded to some length").as_bytes())
                .expect("append")
        })
        .collect()
}

/// MTH by its definition, over the records' chain hashes.
fn naive_root(hashes: &[Hash]) -> Hash {
    fn mth(l: &[Hash]) -> Hash {
        match l.len() {
            1 => leaf_hash(&l[0]),
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&mth(&l[..k]), &mth(&l[k..]))
            }
        }
    }
    if hashes.is_empty() {
        engine::merkle::empty_root()
    } else {
        mth(hashes)
    }
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

fn footer(seg: &Path) -> Option<Footer> {
    let b = std::fs::read(seg).expect("read");
    Footer::decode(&b[b.len().checked_sub(FOOTER_LEN)?..]).ok()
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut b = std::fs::read(path).expect("read");
    f(&mut b);
    std::fs::write(path, b).expect("write");
}

#[test]
fn the_head_carries_the_root_of_every_record_and_each_seal_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config()).expect("open");
    assert_eq!(log.head(), None);
    let mut hashes = Vec::new();
    for i in 0..70 {
        let r = append(&log, i, 1).remove(0);
        hashes.push(r.hash);
        let head = log.head().expect("head");
        assert_eq!(head.seq, i);
        assert_eq!(head.tree_root, naive_root(&hashes), "after seq {i}");
    }
    drop(log);
    let segs = files(dir.path(), "seg");
    assert!(segs.len() >= 4, "{} segments", segs.len());
    let mut sealed = 0;
    for s in &segs {
        let Some(f) = footer(s) else { continue };
        let n = f.last_seq as usize + 1;
        assert_eq!(f.merkle_root, naive_root(&hashes[..n]), "{}", s.display());
        sealed += 1;
    }
    assert_eq!(sealed, segs.len() - 1, "every segment but the active one");
    assert_eq!(files(dir.path(), "tree").len(), sealed);

    // Reopened, the tree goes on from the tree files.
    let log = Log::open(dir.path(), config()).expect("reopen");
    assert!(log.recovery_report().rebuilt_trees.is_empty());
    assert_eq!(log.head().expect("head").tree_root, naive_root(&hashes));
    for r in append(&log, 70, 40) {
        hashes.push(r.hash);
    }
    assert_eq!(log.head().expect("head").tree_root, naive_root(&hashes));
    drop(log);
    let report = verify::verify_dir(&FsStorage, dir.path()).expect("verify");
    assert!(report.is_valid(), "{:?}", report.problems());
    assert_eq!(report.tree_root, Some(naive_root(&hashes)));
}

#[test]
fn missing_or_damaged_tree_files_are_rebuilt_from_the_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config()).expect("open");
    let hashes: Vec<Hash> = append(&log, 0, 90).iter().map(|r| r.hash).collect();
    drop(log);
    let trees = files(dir.path(), "tree");
    assert!(trees.len() >= 4);
    let pristine: Vec<Vec<u8>> = trees
        .iter()
        .map(|t| std::fs::read(t).expect("read"))
        .collect();
    // One removed, one garbled, one whose frontier is another tree's (valid
    // file, wrong size for its footer).
    std::fs::remove_file(&trees[0]).expect("remove");
    edit(&trees[1], |b| b[70] ^= 1);
    std::fs::remove_file(&trees[2]).expect("remove");
    std::fs::write(&trees[2], &pristine[3]).expect("write");
    let log = Log::open(dir.path(), config()).expect("reopen");
    let rebuilt: Vec<String> = log
        .recovery_report()
        .rebuilt_trees
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    let expected: Vec<String> = trees[..3]
        .iter()
        .map(|t| {
            t.with_extension("seg")
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(rebuilt, expected);
    assert_eq!(log.head().expect("head").tree_root, naive_root(&hashes));
    drop(log);
    for (t, p) in trees.iter().zip(&pristine) {
        assert_eq!(
            &std::fs::read(t).expect("read"),
            p,
            "{} rewritten as it was",
            t.display()
        );
    }
}

#[test]
fn a_footer_root_that_the_records_do_not_give_is_reported_and_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config()).expect("open");
    append(&log, 0, 60);
    drop(log);
    let seg = files(dir.path(), "seg")[1].clone();
    let f = footer(&seg).expect("sealed");
    edit(&seg, |b| {
        let at = b.len() - FOOTER_LEN;
        let mut g = f.clone();
        g.merkle_root[0] ^= 1;
        b[at..].copy_from_slice(&g.encode());
    });
    let report = verify::verify_dir(&FsStorage, dir.path()).expect("verify");
    let p = report.problems();
    assert_eq!(p[0].file, seg);
    assert_eq!(p[0].seq, Some(f.last_seq));
    assert!(
        matches!(
            &p[0].kind,
            CorruptionKind::Mismatch {
                field: "merkle_root",
                ..
            }
        ),
        "{:?}",
        p[0].kind
    );
    // Recovery trusts the tree file while it agrees with the footer; it
    // does not, so the tree is recomputed from the records, which do not
    // give that root either.
    let err = Log::open(dir.path(), config()).expect_err("refused");
    let c = err.corruption().expect("corruption");
    assert_eq!(c.file, seg);
    assert!(matches!(
        &c.kind,
        CorruptionKind::Mismatch {
            field: "merkle_root",
            ..
        }
    ));
}

#[test]
fn segments_sealed_before_the_tree_existed_have_no_root_and_get_a_tree_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config()).expect("open");
    let hashes: Vec<Hash> = append(&log, 0, 60).iter().map(|r| r.hash).collect();
    drop(log);
    // What an older log looks like: footers with a zero root, no tree files.
    for seg in files(dir.path(), "seg") {
        if let Some(mut f) = footer(&seg) {
            f.merkle_root = [0; 32];
            let bytes = f.encode();
            edit(&seg, |b| {
                let at = b.len() - FOOTER_LEN;
                b[at..].copy_from_slice(&bytes);
            });
            std::fs::set_permissions(&seg, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        }
    }
    for t in files(dir.path(), "tree") {
        std::fs::remove_file(t).expect("remove");
    }
    let report = verify::verify_dir(&FsStorage, dir.path()).expect("verify");
    assert!(report.is_valid(), "{:?}", report.problems());
    let log = Log::open(dir.path(), config()).expect("open");
    let sealed = files(dir.path(), "seg").len() - 1;
    assert_eq!(log.recovery_report().rebuilt_trees.len(), sealed);
    assert_eq!(log.head().expect("head").tree_root, naive_root(&hashes));
}

#[test]
fn verification_checks_a_checkpoint_at_any_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), config()).expect("open");
    let receipts = append(&log, 0, 75);
    drop(log);
    let hashes: Vec<Hash> = receipts.iter().map(|r| r.hash).collect();
    // Segment boundaries and sizes inside segments, the empty tree and the
    // whole log.
    let mut sizes: Vec<u64> = vec![0, 1, 2, 3, 31, 32, 33, 74, 75];
    for seg in files(dir.path(), "seg") {
        if let Some(f) = footer(&seg) {
            sizes.extend([f.first_seq, f.last_seq + 1]);
        }
    }
    let check = |size: u64, root: Hash| {
        let options = Options {
            checkpoint: Some((size, root)),
            ..Options::default()
        };
        verify::verify(&FsStorage, dir.path(), &options).expect("verify")
    };
    for &size in &sizes {
        let root = naive_root(&hashes[..size as usize]);
        let r = check(size, root);
        assert!(r.checkpoint_checked);
        assert_eq!(r.checkpoint_problem, None, "size {size}");
        assert!(r.is_valid());
        // Another root at the same size: the log was rewritten.
        let mut other = root;
        other[5] ^= 0x40;
        let r = check(size, other);
        assert!(!r.is_valid());
        assert_eq!(
            r.checkpoint_problem.map(|p| p.kind),
            Some(CorruptionKind::CheckpointRootMismatch {
                size,
                signed: other,
                computed: root
            }),
            "size {size}"
        );
    }
    // More records than the log holds: its newest were removed.
    let r = check(76, naive_root(&hashes));
    assert_eq!(
        r.checkpoint_problem.map(|p| p.kind),
        Some(CorruptionKind::CheckpointBeyondLog {
            size: 76,
            records: 75
        })
    );
    // The frontier the writer would have: the same root.
    let mut f = Frontier::new();
    for h in &hashes {
        f.push(leaf_hash(h));
    }
    assert_eq!(check(75, f.root()).checkpoint_problem, None);
}
