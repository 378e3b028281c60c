//! The on-disk format: pure encoding and decoding, no I/O.
//!
//! `docs/format.md` is the specification; the golden-bytes test in
//! `engine/tests/format_golden.rs` fails if this code and that document drift
//! apart. Every multi-byte integer is little-endian. Every structure starts
//! with 8 magic bytes and a 2-byte format version.

use std::fmt;

pub mod footer;
pub mod header;
pub mod index;
pub mod levels;
pub mod record;
pub mod tree;

pub use footer::Footer;
pub use header::SegmentHeader;
pub use index::{IndexHeader, OffsetEntry, TimeEntry};
pub use record::{Record, RecordRef};

pub use crate::chain::{Hash, LogId, HASH_LEN, LOG_ID_LEN};
use crate::corruption::CorruptionKind;
pub use crate::corruption::Structure;

/// The format version this build writes and reads, for every structure.
pub const FORMAT_VERSION: u16 = 1;

/// CRC-32 (IEEE 802.3 polynomial, as computed by `crc32fast`) over `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

// Little-endian field access. Callers check lengths first; these take
// exact-size windows so that an out-of-range read is a bug, not a parse.
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

pub(crate) fn get_array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Checks the magic, version and trailing checksum shared by every
/// fixed-size structure (header, footer, index header). `crc_at` is the
/// offset of the 4-byte CRC, which covers every byte before it.
pub(crate) fn check_fixed(
    what: Structure,
    b: &[u8],
    magic: &[u8; 8],
    crc_at: usize,
) -> Result<(), CorruptionKind> {
    if b.len() < crc_at + 4 {
        return Err(CorruptionKind::Truncated {
            what,
            needed: (crc_at + 4) as u64,
            available: b.len() as u64,
        });
    }
    let found_magic: [u8; 8] = get_array(b, 0);
    if &found_magic != magic {
        return Err(CorruptionKind::BadMagic {
            what,
            found: found_magic,
        });
    }
    let stored = get_u32(b, crc_at);
    let computed = crc32(&b[..crc_at]);
    if stored != computed {
        return Err(CorruptionKind::ChecksumMismatch {
            what,
            expected: stored,
            found: computed,
        });
    }
    let version = get_u16(b, 8);
    if version != FORMAT_VERSION {
        return Err(CorruptionKind::UnsupportedVersion {
            what,
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

pub(crate) fn bad_field(
    what: Structure,
    field: &'static str,
    expected: impl fmt::Display,
    found: impl fmt::Display,
) -> CorruptionKind {
    CorruptionKind::BadField {
        what,
        field,
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

/// Checks that a reserved range is all zero (so that a later version can
/// give it meaning without ambiguity).
pub(crate) fn check_reserved(
    what: Structure,
    field: &'static str,
    bytes: &[u8],
) -> Result<(), CorruptionKind> {
    if bytes.iter().any(|&x| x != 0) {
        return Err(bad_field(what, field, "all zero", "non-zero bytes"));
    }
    Ok(())
}
