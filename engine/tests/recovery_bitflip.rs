//! Flip every byte, one at a time, of a small sealed segment and of the
//! active segment: open refuses or verification reports the damage, or (in
//! the active segment only) recovery cuts it as a torn tail, and no changed
//! record is ever returned. Never a panic.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::sim::{config, dir};
use engine::storage::Storage;
use engine::testing::SimStorage;
use engine::{Error, Log, Record};

/// A log directory's files: bytes and read-only flag.
type Files = BTreeMap<PathBuf, (Vec<u8>, bool)>;

/// Builds a log of a few sealed segments and an active one holding several
/// records; returns its files and its records.
fn pristine() -> (Files, Vec<Record>) {
    let storage = SimStorage::new(1);
    storage.create_dir_all(dir()).expect("mkdir");
    let log = Log::open_with_storage(Arc::new(storage.clone()), dir(), config()).expect("open");
    for i in 0..20u32 {
        let mut p = format!("record {i} ").into_bytes();
        p.resize(40 + (i as usize * 29) % 90, b'p');
        log.append(&p).expect("append");
    }
    let records: Vec<Record> = log.scan(..).map(|r| r.expect("scan")).collect();
    drop(log);
    let mut files = BTreeMap::new();
    for name in storage.list(dir()).expect("list") {
        let path = dir().join(&name);
        let ro = storage.is_read_only(&path).expect("stat");
        files.insert(path.clone(), (storage.read_file(&path).expect("read"), ro));
    }
    (files, records)
}

/// A fresh simulated machine holding exactly these files, durably.
fn load(files: &Files) -> SimStorage {
    let storage = SimStorage::new(2);
    storage.create_dir_all(dir()).expect("mkdir");
    for (path, (bytes, ro)) in files {
        let f = storage.create_new(path).expect("create");
        engine::storage::write_all_at(&*f, bytes, 0).expect("write");
        f.sync_data().expect("sync");
        if *ro {
            storage.set_read_only(path).expect("chmod");
        }
    }
    storage.sync_dir(dir()).expect("sync dir");
    storage
}

#[derive(Debug, Default)]
struct Tally {
    refused: u64,
    verify_reported: u64,
    cut: u64,
}

/// Flips every byte of `victim` and classifies what the engine did.
fn sweep(victim: &Path, active: bool) -> Tally {
    let (files, records) = pristine();
    let len = files[victim].0.len();
    let mut t = Tally::default();
    for i in 0..len {
        let mut damaged = files.clone();
        damaged.get_mut(victim).expect("victim").0[i] ^= 0x01;
        let storage = load(&damaged);
        match Log::open_with_storage(Arc::new(storage.clone()), dir(), config()) {
            Err(Error::Corruption(_)) => t.refused += 1,
            Err(e) => panic!("byte {i}: open failed with a non-corruption error: {e}"),
            Ok(log) => {
                // Whatever the log returns must be exactly what was written.
                let got: Vec<_> = log.scan(..).collect();
                let mut ok_records = 0;
                for (n, r) in got.iter().enumerate() {
                    match r {
                        Ok(r) => {
                            assert_eq!(r, &records[n], "byte {i}: a changed record was returned");
                            ok_records += 1;
                        }
                        Err(Error::Corruption(_)) => break,
                        Err(e) => panic!("byte {i}: scan failed with {e}"),
                    }
                }
                let report = engine::verify::verify_dir(&storage, dir()).expect("verify");
                match log.recovery_report().cut.clone() {
                    Some(cut) => {
                        assert!(active, "byte {i}: a sealed segment was cut");
                        assert!(
                            cut.offset <= i as u64,
                            "byte {i}: cut at {} leaves the flip",
                            cut.offset
                        );
                        assert!(
                            report.is_valid(),
                            "byte {i}: invalid after the cut: {:?}",
                            report.problems()
                        );
                        assert!(ok_records < records.len());
                        t.cut += 1;
                    }
                    None => {
                        assert!(
                            !report.is_valid(),
                            "byte {i} of {}: flip neither refused, cut nor reported",
                            victim.display()
                        );
                        t.verify_reported += 1;
                    }
                }
            }
        }
    }
    assert_eq!(t.refused + t.verify_reported + t.cut, len as u64);
    eprintln!("{} ({len} bytes): {t:?}", victim.display());
    t
}

#[test]
fn every_byte_of_a_sealed_segment() {
    let (files, _) = pristine();
    let segs: Vec<&PathBuf> = files
        .keys()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert!(segs.len() >= 3, "{} segments", segs.len());
    let t = sweep(segs[1], false);
    assert_eq!(t.cut, 0);
}

#[test]
fn every_byte_of_the_active_segment() {
    let (files, _) = pristine();
    let active = files
        .keys()
        .rfind(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("segments")
        .clone();
    assert!(
        files[&active].0.len() > 400,
        "active segment too small to be interesting"
    );
    let t = sweep(&active, true);
    assert!(t.refused > 0, "no flip in the active segment was refused");
}
