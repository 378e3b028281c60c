//! Shared by the tests that damage segment files by hand: finding the
//! segments and their records, and recomputing checksums after an edit.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The segment files of a log directory, in seq order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// Record offsets, lengths and seqs of a segment (before its footer), read
/// by hand from the layout in docs/format.md; stops at the footer or at
/// bytes that cannot be a record.
pub fn records(path: &Path) -> Vec<(usize, usize, u64)> {
    let b = std::fs::read(path).expect("read");
    let mut out = Vec::new();
    let mut pos = 128;
    while pos + 64 <= b.len() && &b[pos..pos + 8] != b"CLOGEND\0" {
        let len = u32::from_le_bytes(b[pos..pos + 4].try_into().expect("4")) as usize;
        let seq = u64::from_le_bytes(b[pos + 8..pos + 16].try_into().expect("8"));
        if pos + 64 + len > b.len() {
            break;
        }
        out.push((pos, 64 + len, seq));
        pos += 64 + len;
    }
    out
}

/// Recomputes the CRC of the record at `at` of `len` bytes.
pub fn fix_record_crc(b: &mut [u8], at: usize, len: usize) {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[at..at + 4]);
    h.update(&b[at + 8..at + len]);
    let crc = h.finalize();
    b[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Recomputes a header's or footer's CRC, stored at `crc_at` over the bytes
/// before it.
pub fn fix_crc(b: &mut [u8], crc_at: usize) {
    let crc = crc32fast::hash(&b[..crc_at]);
    b[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
}
