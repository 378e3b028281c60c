//! Index files are derived data: missing or garbled ones are rebuilt from
//! the records on open, and lookups agree with a full scan.

mod common;

use std::path::Path;

use common::{make_writable, payload, small_config};
use engine::testing::Rng;
use engine::{Config, Log};

fn config() -> Config {
    small_config(4096)
}

fn fill(dir: &Path) -> Vec<engine::Record> {
    let log = Log::open(dir, config()).expect("open");
    for i in 0..600 {
        log.append(&payload(i)).expect("append");
    }
    log.scan(..).map(|r| r.expect("scan")).collect()
}

fn index_files(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn check_lookups(log: &Log, all: &[engine::Record]) {
    let mut rng = Rng::new(11);
    for _ in 0..300 {
        let seq = rng.below(all.len() as u64);
        assert_eq!(&log.read(seq).expect("read"), &all[seq as usize]);
        let t = all[seq as usize].created_at;
        let expected = all.iter().find(|r| r.created_at >= t).map(|r| r.seq);
        assert_eq!(log.seek_time(t).expect("seek"), expected);
    }
}

#[test]
fn deleted_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let all = fill(dir.path());
    let idx = index_files(dir.path(), "idx");
    let tix = index_files(dir.path(), "tix");
    assert!(idx.len() >= 10, "{} sealed segments", idx.len());
    let originals: Vec<Vec<u8>> = idx
        .iter()
        .chain(&tix)
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    std::fs::remove_file(&idx[3]).expect("remove");
    std::fs::remove_file(&tix[5]).expect("remove");
    let log = Log::open(dir.path(), config()).expect("open");
    assert_eq!(log.recovery_report().rebuilt_indexes.len(), 2);
    check_lookups(&log, &all);
    // The rebuilt files are byte for byte what sealing wrote.
    let now: Vec<Vec<u8>> = idx
        .iter()
        .chain(&tix)
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    assert_eq!(now, originals);
}

#[test]
fn garbled_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let all = fill(dir.path());
    let idx = index_files(dir.path(), "idx");
    let tix = index_files(dir.path(), "tix");
    // A flipped entry byte (checksum catches it), a truncated file, and a
    // file of garbage.
    make_writable(&idx[1]);
    let mut b = std::fs::read(&idx[1]).expect("read");
    let last = b.len() - 1;
    b[last] ^= 0x40;
    std::fs::write(&idx[1], &b).expect("write");
    make_writable(&tix[2]);
    let b = std::fs::read(&tix[2]).expect("read");
    std::fs::write(&tix[2], &b[..b.len() - 3]).expect("write");
    make_writable(&idx[4]);
    std::fs::write(&idx[4], Rng::new(5).bytes(300)).expect("write");
    let log = Log::open(dir.path(), config()).expect("open");
    assert_eq!(log.recovery_report().rebuilt_indexes.len(), 3);
    check_lookups(&log, &all);
    drop(log);
    let log = Log::open(dir.path(), config()).expect("reopen");
    assert!(log.recovery_report().rebuilt_indexes.is_empty());
    let report =
        engine::verify::verify_dir(&engine::storage::FsStorage, dir.path()).expect("verify");
    assert!(report.is_valid(), "{:?}", report.problems());
}

#[test]
fn a_consistent_looking_index_that_points_at_the_wrong_record_is_not_trusted() {
    // Entries are checked against the records on every lookup: move an
    // entry's position (and fix the checksums) and reads still return the
    // right records.
    let dir = tempfile::tempdir().expect("tempdir");
    let all = fill(dir.path());
    // Move entry 1 one byte into its record, in both index files: still in
    // order and inside the segment, so it passes the structural checks on
    // open, and only a lookup can tell.
    let idx = index_files(dir.path(), "idx");
    let tix = index_files(dir.path(), "tix");
    for (path, entry_len, pos_at) in [(&idx[2], 8, 4), (&tix[2], 16, 12)] {
        make_writable(path);
        let mut b = std::fs::read(path).expect("read");
        assert!(b.len() >= 64 + 3 * entry_len, "index has too few entries");
        let at = 64 + entry_len + pos_at;
        let pos = u32::from_le_bytes(b[at..at + 4].try_into().expect("4"));
        b[at..at + 4].copy_from_slice(&(pos + 1).to_le_bytes());
        let body_crc = crc32fast::hash(&b[64..]);
        b[32..36].copy_from_slice(&body_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(path, &b).expect("write");
    }
    let log = Log::open(dir.path(), config()).expect("open");
    assert!(log.recovery_report().rebuilt_indexes.is_empty());
    check_lookups(&log, &all);
    for r in &all {
        assert_eq!(&log.read(r.seq).expect("read"), r);
        let first_at_time = all
            .iter()
            .find(|x| x.created_at >= r.created_at)
            .map(|x| x.seq);
        assert_eq!(log.seek_time(r.created_at).expect("seek"), first_at_time);
    }
    // Verification names the bad entry.
    let report =
        engine::verify::verify_dir(&engine::storage::FsStorage, dir.path()).expect("verify");
    assert!(!report.is_valid());
    let p = report.problems();
    assert!(
        matches!(
            p[0].kind,
            engine::CorruptionKind::IndexEntry { entry: 1, .. }
        ),
        "{:?}",
        p[0]
    );
}
