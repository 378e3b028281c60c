//! The tamper matrix: every kind of damage an operator must be told about,
//! applied to a real multi-segment log, each detected by segment-verify
//! with the right segment, seq and reason; and every single-byte flip of a
//! small sealed segment detected.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use engine::{Config, Log};
use segment_files::{fix_crc, fix_record_crc, records, segments};
use serde_json::Value;
use tools::verify_cmd::{self, Args};

mod segment_files;

fn config(log_id: [u8; 16]) -> Config {
    Config {
        segment_size: 2048,
        index_interval: 256,
        log_id: Some(log_id),
        ..Config::default()
    }
}

fn payload(i: u64, salt: &str) -> Vec<u8> {
    let mut p = format!("{salt} event {i:04} ").into_bytes();
    p.resize(60 + (i as usize % 5) * 10, b'.');
    p
}

/// A log of about 12 segments; returns the head seq.
fn make_log(dir: &Path, salt: &str) -> u64 {
    let log = Log::open(dir, config(*b"tamper-matrix-id")).expect("open");
    let mut head = 0;
    for i in 0..300 {
        head = log.append(&payload(i, salt)).expect("append").seq;
    }
    head
}

fn seg(dir: &Path, n: usize) -> PathBuf {
    segments(dir)[n].clone()
}

fn writable(p: &Path) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        std::fs::copy(e.path(), &dst).expect("copy");
        writable(&dst);
    }
}

fn verify_json(dir: &Path) -> (i32, Value) {
    let mut out = Vec::new();
    let code = verify_cmd::run(
        &Args {
            dir: dir.to_path_buf(),
            json: true,
            threads: Some(2),
            ..Args::default()
        },
        &mut out,
    );
    (code, serde_json::from_slice(&out).expect("JSON output"))
}

/// The first problem reported: (file name, seq, kind).
fn first_problem(v: &Value) -> (String, Option<u64>, String) {
    let from_segments = v["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .find(|s| !s["error"].is_null())
        .map(|s| s["error"].clone());
    let e = v["gaps"]
        .as_array()
        .expect("gaps")
        .first()
        .cloned()
        .or(from_segments)
        .expect("a problem is reported");
    let file = Path::new(e["file"].as_str().expect("file"))
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    (
        file,
        e["seq"].as_u64(),
        e["kind"].as_str().expect("kind").to_owned(),
    )
}

struct Case {
    name: &'static str,
    damage: fn(&Path) -> (String, Option<u64>, &'static str),
}

fn name_of(p: &Path) -> String {
    p.file_name().expect("name").to_string_lossy().into_owned()
}

const CASES: &[Case] = &[
    Case {
        name: "edited payload with its CRC recomputed",
        damage: |dir| {
            let s = seg(dir, 1);
            let r = records(&s);
            let mut b = std::fs::read(&s).expect("read");
            let (at, len, seq) = r[2];
            b[at + 40] ^= 0x20;
            fix_record_crc(&mut b, at, len);
            std::fs::write(&s, b).expect("write");
            (name_of(&s), Some(seq), "ChainBreak")
        },
    },
    Case {
        name: "deleted record",
        damage: |dir| {
            let s = seg(dir, 1);
            let r = records(&s);
            let mut b = std::fs::read(&s).expect("read");
            let (at, len, seq) = r[2];
            b.drain(at..at + len);
            std::fs::write(&s, b).expect("write");
            (name_of(&s), Some(seq), "SeqGap")
        },
    },
    Case {
        name: "duplicated record",
        damage: |dir| {
            let s = seg(dir, 1);
            let r = records(&s);
            let mut b = std::fs::read(&s).expect("read");
            let (at, len, seq) = r[2];
            let copy = b[at..at + len].to_vec();
            b.splice(at + len..at + len, copy);
            std::fs::write(&s, b).expect("write");
            (name_of(&s), Some(seq + 1), "SeqGap")
        },
    },
    Case {
        name: "reordered records",
        damage: |dir| {
            let s = seg(dir, 1);
            let r = records(&s);
            let mut b = std::fs::read(&s).expect("read");
            let (a, alen, seq) = r[2];
            let (_, blen, _) = r[3];
            let first = b[a..a + alen].to_vec();
            let second = b[a + alen..a + alen + blen].to_vec();
            b.splice(a..a + alen + blen, second.into_iter().chain(first));
            std::fs::write(&s, b).expect("write");
            (name_of(&s), Some(seq), "SeqGap")
        },
    },
    Case {
        name: "record spliced in from another log",
        damage: |dir| {
            let other = dir.with_extension("other");
            make_log(&other, "other");
            let s = seg(dir, 1);
            let r = records(&s);
            let theirs = std::fs::read(seg(&other, 1)).expect("read");
            let mut b = std::fs::read(&s).expect("read");
            let (at, len, seq) = r[2];
            // Same seq and length in both logs; different content.
            b[at..at + len].copy_from_slice(&theirs[at..at + len]);
            std::fs::write(&s, b).expect("write");
            (name_of(&s), Some(seq), "ChainBreak")
        },
    },
    Case {
        name: "deleted segment",
        damage: |dir| {
            let gone = seg(dir, 2);
            let next = seg(dir, 3);
            let seq = engine::parse_segment_name(&name_of(&gone));
            std::fs::remove_file(&gone).expect("remove");
            (name_of(&next), seq, "MissingSegment")
        },
    },
    Case {
        name: "swapped segments",
        damage: |dir| {
            let (a, b) = (seg(dir, 2), seg(dir, 3));
            let (ba, bb) = (
                std::fs::read(&a).expect("read"),
                std::fs::read(&b).expect("read"),
            );
            std::fs::write(&a, bb).expect("write");
            std::fs::write(&b, ba).expect("write");
            (
                name_of(&a),
                engine::parse_segment_name(&name_of(&a)),
                "Mismatch",
            )
        },
    },
    Case {
        name: "renamed segment",
        damage: |dir| {
            let s = seg(dir, 3);
            let seq = engine::parse_segment_name(&name_of(&s)).expect("seq");
            let to = dir.join(engine::segment_file_name(seq + 1));
            std::fs::rename(&s, &to).expect("rename");
            (name_of(&to), Some(seq + 1), "Mismatch")
        },
    },
    Case {
        name: "truncated sealed segment",
        damage: |dir| {
            let s = seg(dir, 1);
            let len = std::fs::metadata(&s).expect("stat").len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&s)
                .expect("open")
                .set_len(len - 10)
                .expect("truncate");
            (
                name_of(&s),
                engine::parse_segment_name(&name_of(&s)),
                "BadMagic",
            )
        },
    },
    Case {
        name: "extended sealed segment",
        damage: |dir| {
            let s = seg(dir, 1);
            let mut b = std::fs::read(&s).expect("read");
            b.extend_from_slice(&[0u8; 100]);
            std::fs::write(&s, b).expect("write");
            (
                name_of(&s),
                engine::parse_segment_name(&name_of(&s)),
                "BadMagic",
            )
        },
    },
    Case {
        name: "edited footer",
        damage: |dir| {
            let s = seg(dir, 1);
            let mut b = std::fs::read(&s).expect("read");
            let f = b.len() - 256;
            b[f + 80] ^= 1; // in last_hash
            std::fs::write(&s, b).expect("write");
            (
                name_of(&s),
                engine::parse_segment_name(&name_of(&s)),
                "ChecksumMismatch",
            )
        },
    },
    Case {
        name: "edited footer with its checksum recomputed",
        damage: |dir| {
            let s = seg(dir, 1);
            let last = records(&s).last().expect("records").2;
            let mut b = std::fs::read(&s).expect("read");
            let f = b.len() - 256;
            b[f + 80] ^= 1;
            fix_crc(&mut b[f..], 252);
            std::fs::write(&s, b).expect("write");
            (name_of(&s), Some(last), "Mismatch")
        },
    },
    Case {
        name: "footer last_seq edited with its checksum recomputed",
        damage: |dir| {
            let s = seg(dir, 1);
            let last = records(&s).last().expect("records").2;
            let mut b = std::fs::read(&s).expect("read");
            let f = b.len() - 256;
            // last_seq is at footer offset 24 (docs/format.md).
            let edited = (last + 3).to_le_bytes();
            b[f + 24..f + 32].copy_from_slice(&edited);
            fix_crc(&mut b[f..], 252);
            std::fs::write(&s, b).expect("write");
            (name_of(&s), Some(last), "Mismatch")
        },
    },
    Case {
        name: "edited header",
        damage: |dir| {
            let s = seg(dir, 2);
            let mut b = std::fs::read(&s).expect("read");
            b[60] ^= 1; // in prev_hash
            std::fs::write(&s, b).expect("write");
            (
                name_of(&s),
                engine::parse_segment_name(&name_of(&s)),
                "ChecksumMismatch",
            )
        },
    },
    Case {
        name: "edited header with its checksum recomputed",
        damage: |dir| {
            let s = seg(dir, 2);
            let mut b = std::fs::read(&s).expect("read");
            b[60] ^= 1;
            fix_crc(&mut b, 124);
            std::fs::write(&s, b).expect("write");
            (
                name_of(&s),
                engine::parse_segment_name(&name_of(&s)),
                "BrokenLink",
            )
        },
    },
    Case {
        name: "garbled index",
        damage: |dir| {
            let s = seg(dir, 1);
            let idx = s.with_extension("idx");
            let mut b = std::fs::read(&idx).expect("read");
            let last = b.len() - 1;
            b[last] ^= 0x10;
            std::fs::write(&idx, b).expect("write");
            (
                name_of(&idx),
                engine::parse_segment_name(&name_of(&s)),
                "ChecksumMismatch",
            )
        },
    },
];

#[test]
fn every_kind_of_damage_is_detected_with_segment_seq_and_reason() {
    let base = tempfile::tempdir().expect("tempdir");
    let orig = base.path().join("orig");
    make_log(&orig, "ours");
    let (code, v) = verify_json(&orig);
    assert_eq!(code, 0, "the pristine log is valid: {v}");
    assert_eq!(v["valid"], true);
    for (i, case) in CASES.iter().enumerate() {
        let dir = base.path().join(format!("case-{i}"));
        copy(&orig, &dir);
        let (file, seq, kind) = (case.damage)(&dir);
        let (code, v) = verify_json(&dir);
        assert_eq!(code, 1, "{}: exit code", case.name);
        assert_eq!(v["valid"], false, "{}", case.name);
        assert_eq!(
            first_problem(&v),
            (file, seq, kind.to_owned()),
            "{}",
            case.name
        );
    }
}

#[test]
fn every_byte_flip_of_a_sealed_segment_is_detected() {
    let base = tempfile::tempdir().expect("tempdir");
    let orig = base.path().join("orig");
    make_log(&orig, "ours");
    let dir = base.path().join("flip");
    copy(&orig, &dir);
    let victim = seg(&dir, 1);
    let pristine = std::fs::read(&victim).expect("read");
    // Where each structure starts: the header, every record, the footer.
    let structures: Vec<usize> = std::iter::once(0)
        .chain(records(&victim).iter().map(|r| r.0))
        .chain(std::iter::once(pristine.len() - 256))
        .collect();
    let mut detected = 0;
    for i in 0..pristine.len() {
        let mut b = pristine.clone();
        b[i] ^= 0x01;
        std::fs::write(&victim, &b).expect("write");
        let report = engine::verify::verify_dir(&engine::storage::FsStorage, &dir).expect("verify");
        assert!(!report.is_valid(), "flip of byte {i} not detected");
        let p = report.problems();
        assert_eq!(
            p[0].file, victim,
            "flip of byte {i} reported first in another file"
        );
        // At the start of the structure the byte belongs to.
        let start = structures
            .iter()
            .rev()
            .find(|&&at| at <= i)
            .copied()
            .expect("the header starts at 0");
        assert_eq!(
            p[0].offset, start as u64,
            "flip of byte {i} reported at offset {} ({:?})",
            p[0].offset, p[0].kind
        );
        detected += 1;
    }
    std::fs::write(&victim, &pristine).expect("restore");
    assert!(
        engine::verify::verify_dir(&engine::storage::FsStorage, &dir)
            .expect("verify")
            .is_valid()
    );
    assert_eq!(detected, pristine.len());
    eprintln!("{detected}/{} single-byte flips detected", pristine.len());
}
