//! A torn tail in the last segment is cut back to the last whole record,
//! the cut bytes are kept, and the log continues.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use common::{copy_dir, payload, segment_paths, small_config};
use engine::{Config, Durability, Log};

fn config() -> Config {
    small_config(1 << 20)
}

/// A log of `n` records in one segment; returns the end offset of each record.
fn make_log(dir: &Path, n: u64) -> Vec<u64> {
    let log = Log::open(dir, config()).expect("open");
    for i in 0..n {
        log.append(&payload(i)).expect("append");
    }
    drop(log);
    let mut ends = Vec::new();
    let mut pos = 128u64;
    for i in 0..n {
        pos += 64 + payload(i).len() as u64;
        ends.push(pos);
    }
    assert_eq!(
        std::fs::metadata(&segment_paths(dir)[0])
            .expect("stat")
            .len(),
        pos
    );
    ends
}

/// Reopens, checks the recovered count and the kept cut bytes, appends 10
/// more, and reopens again.
fn recover_and_continue(dir: &Path, expect_records: u64, cut_len: u64) {
    let seg = segment_paths(dir)[0].clone();
    let before = std::fs::read(&seg).expect("read");
    let log = Log::open(dir, config()).expect("open after damage");
    let rep = log.recovery_report().clone();
    let head = log.head().map(|h| h.seq + 1).unwrap_or(0);
    assert_eq!(head, expect_records);
    match rep.cut {
        Some(cut) => {
            assert_eq!(cut.len, cut_len);
            let kept = std::fs::read(&cut.saved_to).expect("cut bytes kept");
            assert_eq!(kept, before[cut.offset as usize..]);
            assert_eq!(cut.offset + cut.len, before.len() as u64);
        }
        None => assert_eq!(cut_len, 0, "nothing was cut"),
    }
    for i in 0..10 {
        let r = log.append(&payload(expect_records + i)).expect("append");
        assert_eq!(r.seq, expect_records + i);
    }
    drop(log);
    let log = Log::open(dir, config()).expect("reopen");
    assert_eq!(log.recovery_report().cut, None);
    assert_eq!(log.head().expect("head").seq + 1, expect_records + 10);
    assert_eq!(
        log.scan(..)
            .collect::<Result<Vec<_>, _>>()
            .expect("scan")
            .len() as u64,
        expect_records + 10
    );
    let report = engine::verify::verify_dir(&engine::storage::FsStorage, dir).expect("verify");
    assert!(report.is_valid(), "{:?}", report.problems());
}

#[test]
fn truncation_at_every_offset_of_the_last_two_records() {
    let base = tempfile::tempdir().expect("tempdir");
    let orig = base.path().join("orig");
    let ends = make_log(&orig, 6);
    let full = ends[5];
    let from = ends[3]; // the start of record 4
    let mut cases = 0;
    for cut_at in from..full {
        let dir = base.path().join(format!("case-{cut_at}"));
        copy_dir(&orig, &dir);
        let seg = segment_paths(&dir)[0].clone();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .expect("open")
            .set_len(cut_at)
            .expect("truncate");
        let whole = ends.iter().filter(|&&e| e <= cut_at).count() as u64;
        let last_end = if whole == 0 {
            128
        } else {
            ends[whole as usize - 1]
        };
        recover_and_continue(&dir, whole, cut_at - last_end);
        std::fs::remove_dir_all(&dir).expect("cleanup");
        cases += 1;
    }
    assert_eq!(cases, full - from);
}

#[test]
fn garbage_after_the_last_record_is_cut_and_zeros_are_where_the_log_ends() {
    let base = tempfile::tempdir().expect("tempdir");
    let orig = base.path().join("orig");
    make_log(&orig, 5);
    let mut rng = engine::testing::Rng::new(3);
    for (name, tail) in [
        ("zeros-1", vec![0u8; 1]),
        ("zeros-4096", vec![0u8; 4096]),
        ("garbage-7", rng.bytes(7)),
        ("garbage-5000", rng.bytes(5000)),
        ("ff-64", vec![0xff; 64]),
    ] {
        let dir = base.path().join(name);
        copy_dir(&orig, &dir);
        let seg = segment_paths(&dir)[0].clone();
        OpenOptions::new()
            .append(true)
            .open(&seg)
            .expect("open")
            .write_all(&tail)
            .expect("append garbage");
        // Zeros to the end of the file are a pre-written segment's unused
        // space (Config::prewrite_segments): not cut, overwritten by the
        // next appends. Anything else there is a torn tail.
        let zeros = tail.iter().all(|&b| b == 0);
        let expect_cut = if zeros { 0 } else { tail.len() as u64 };
        recover_and_continue(&dir, 5, expect_cut);
        if zeros {
            assert_eq!(
                dir.read_dir()
                    .expect("list")
                    .filter(|e| e
                        .as_ref()
                        .expect("entry")
                        .file_name()
                        .to_string_lossy()
                        .contains(".cut-"))
                    .count(),
                0,
                "{name}: zeros were saved as a cut"
            );
        }
    }
}

#[test]
fn a_torn_record_in_an_unsynced_log_is_cut_even_with_records_after_it() {
    // Without syncs nothing is ever durable, so damage anywhere in the
    // active segment is a crash artifact: cut back, never refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Config {
        durability: Durability::UnsafeNoSync,
        ..config()
    };
    let log = Log::open(dir.path(), cfg.clone()).expect("open");
    for i in 0..5 {
        log.append(&payload(i)).expect("append");
    }
    drop(log);
    let seg = segment_paths(dir.path())[0].clone();
    let mut bytes = std::fs::read(&seg).expect("read");
    let rec2 = 128 + (64 + payload(0).len()) + (64 + payload(1).len());
    bytes[rec2 + 40] ^= 0x01;
    std::fs::write(&seg, &bytes).expect("write");
    let log = Log::open(dir.path(), cfg).expect("open");
    assert_eq!(log.head().expect("head").seq, 1);
    let cut = log.recovery_report().cut.clone().expect("cut");
    assert_eq!(cut.offset, rec2 as u64);
}
