//! Damage that is not a torn tail: open refuses with a typed error naming
//! the segment, offset and seq, and modifies nothing.

mod common;

use std::path::Path;

use common::{make_writable, payload, segment_paths, small_config, snapshot};
use engine::{Config, CorruptionKind, Error, Log};

fn config() -> Config {
    small_config(2048)
}

/// A log of several sealed segments plus an active one, every record
/// appended (and synced) on its own.
fn make_log(dir: &Path, n: u64) {
    let log = Log::open(dir, config()).expect("open");
    for i in 0..n {
        log.append(&payload(i)).expect("append");
    }
}

fn refuse(dir: &Path) -> engine::Corruption {
    let before = snapshot(dir);
    let err = Log::open(dir, config()).expect_err("open must refuse");
    assert_eq!(
        snapshot(dir),
        before,
        "a refused open modified the directory"
    );
    match err {
        Error::Corruption(c) => *c,
        other => panic!("expected corruption, got {other}"),
    }
}

/// Offsets of each record in a segment file.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut pos = 128;
    while pos + 64 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if &bytes[pos..pos + 8] == b"CLOGEND\0" {
            break;
        }
        v.push(pos);
        pos += 64 + len;
    }
    v
}

#[test]
fn a_flipped_byte_followed_by_durable_records_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_log(dir.path(), 100);
    let segs = segment_paths(dir.path());
    let active = segs.last().expect("segments").clone();
    let mut bytes = std::fs::read(&active).expect("read");
    let offs = record_offsets(&bytes);
    assert!(offs.len() >= 5, "active segment has {} records", offs.len());
    let first_seq: u64 =
        engine::parse_segment_name(active.file_name().and_then(|n| n.to_str()).expect("name"))
            .expect("segment name");
    let victim = offs[1];
    bytes[victim + 40] ^= 0x20; // in the payload
    std::fs::write(&active, &bytes).expect("write");
    let c = refuse(dir.path());
    assert_eq!(c.file, active);
    assert_eq!(c.offset, victim as u64);
    assert_eq!(c.seq, Some(first_seq + 1));
    match c.kind {
        CorruptionKind::NotATornTail {
            cause,
            valid_record_at,
            durable_through,
        } => {
            assert!(matches!(*cause, CorruptionKind::ChecksumMismatch { .. }));
            assert_eq!(valid_record_at, offs[2] as u64);
            assert!(durable_through > victim as u64);
        }
        other => panic!("wrong kind {other:?}"),
    }
}

#[test]
fn a_recomputed_crc_does_not_hide_an_edit_chain_break() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_log(dir.path(), 100);
    let active = segment_paths(dir.path()).last().expect("segments").clone();
    let mut bytes = std::fs::read(&active).expect("read");
    let offs = record_offsets(&bytes);
    let victim = offs[2];
    let len = u32::from_le_bytes(bytes[victim..victim + 4].try_into().expect("4")) as usize;
    bytes[victim + 33] ^= 0x01;
    // Recompute the CRC as a careful forger would.
    let rec = &bytes[victim..victim + 64 + len];
    let mut h = crc32fast::Hasher::new();
    h.update(&rec[..4]);
    h.update(&rec[8..]);
    let crc = h.finalize();
    bytes[victim + 4..victim + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&active, &bytes).expect("write");
    let c = refuse(dir.path());
    assert_eq!(c.offset, victim as u64);
    assert!(
        matches!(c.kind, CorruptionKind::ChainBreak { .. }),
        "{:?}",
        c.kind
    );
}

#[test]
fn a_deleted_middle_segment_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_log(dir.path(), 200);
    let segs = segment_paths(dir.path());
    assert!(segs.len() >= 4, "{} segments", segs.len());
    let gone = segs[2].clone();
    let gone_seq =
        engine::parse_segment_name(gone.file_name().and_then(|n| n.to_str()).expect("name"))
            .expect("name");
    std::fs::remove_file(&gone).expect("remove");
    let c = refuse(dir.path());
    assert_eq!(c.file, segs[3]);
    assert_eq!(c.seq, Some(gone_seq));
    assert!(
        matches!(c.kind, CorruptionKind::MissingSegment { expected_first_seq, .. } if expected_first_seq == gone_seq),
        "{:?}",
        c.kind
    );
}

#[test]
fn a_deleted_first_segment_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_log(dir.path(), 100);
    let segs = segment_paths(dir.path());
    std::fs::remove_file(&segs[0]).expect("remove");
    let c = refuse(dir.path());
    assert!(matches!(
        c.kind,
        CorruptionKind::MissingSegment {
            expected_first_seq: 0,
            ..
        }
    ));
}

#[test]
fn a_header_that_does_not_link_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_log(dir.path(), 200);
    let segs = segment_paths(dir.path());
    let victim = segs[2].clone();
    make_writable(&victim);
    let mut bytes = std::fs::read(&victim).expect("read");
    // Rewrite prev_hash (bytes 48..80) and fix the header CRC, so that only
    // the link is wrong.
    bytes[48..80].copy_from_slice(&[0xab; 32]);
    let crc = crc32fast::hash(&bytes[..124]);
    bytes[124..128].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&victim, &bytes).expect("write");
    let seq =
        engine::parse_segment_name(victim.file_name().and_then(|n| n.to_str()).expect("name"))
            .expect("name");
    let c = refuse(dir.path());
    assert_eq!(c.file, victim);
    assert_eq!(c.offset, 0);
    assert_eq!(c.seq, Some(seq));
    match c.kind {
        CorruptionKind::BrokenLink { found, .. } => assert_eq!(found, [0xab; 32]),
        other => panic!("wrong kind {other:?}"),
    }
}

#[test]
fn a_garbled_header_or_a_missing_footer_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_log(dir.path(), 200);
    let segs = segment_paths(dir.path());
    // A sealed middle segment cut short loses its footer.
    let victim = segs[1].clone();
    make_writable(&victim);
    let len = std::fs::metadata(&victim).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .expect("open")
        .set_len(len - 10)
        .expect("truncate");
    let c = refuse(dir.path());
    assert_eq!(c.file, victim);
    assert!(
        matches!(c.kind, CorruptionKind::UnsealedSegment { .. }),
        "{:?}",
        c.kind
    );

    let dir = tempfile::tempdir().expect("tempdir");
    make_log(dir.path(), 200);
    let segs = segment_paths(dir.path());
    let victim = segs[1].clone();
    make_writable(&victim);
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes[20] ^= 0xff; // inside log_id
    std::fs::write(&victim, &bytes).expect("write");
    let c = refuse(dir.path());
    assert_eq!(c.file, victim);
    assert!(
        matches!(
            c.kind,
            CorruptionKind::ChecksumMismatch {
                what: engine::format::Structure::SegmentHeader,
                ..
            }
        ),
        "{:?}",
        c.kind
    );
}
