//! Index files: derived data beside each sealed segment.
//!
//! Both index files have the same 64-byte header followed by fixed-size
//! entries, one per sampled record (the first record of the segment, then
//! the first record at least `index_interval` bytes after the previous
//! sample).
//!
//! ```text
//! header
//! offset len field
//!      0   8 magic        "CLOGIDX\0" (offset index) or "CLOGTIX\0" (time index)
//!      8   2 version      1
//!     10   2 entry_len    8 (offset index) or 16 (time index)
//!     12   4 flags        0 (reserved)
//!     16   8 first_seq    the segment's first seq
//!     24   8 entry_count
//!     32   4 entries_crc  CRC-32 of all entry bytes
//!     36  24 reserved     zero
//!     60   4 crc          CRC-32 of bytes 0..60
//!
//! offset index entry (8 bytes)      time index entry (16 bytes)
//!      0   4 rel_seq                     0   8 created_at
//!      4   4 pos                         8   4 rel_seq
//!                                       12   4 pos
//! ```
//! `rel_seq` is the record's seq minus `first_seq`; `pos` is the record's
//! byte offset in the segment file.

use super::{
    bad_field, check_fixed, check_reserved, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64,
    Structure, FORMAT_VERSION,
};
use crate::corruption::CorruptionKind;

/// Magic bytes of the offset index file.
pub const OFFSET_INDEX_MAGIC: [u8; 8] = *b"CLOGIDX\0";
/// Magic bytes of the time index file.
pub const TIME_INDEX_MAGIC: [u8; 8] = *b"CLOGTIX\0";
/// Length of an index file's header.
pub const INDEX_HEADER_LEN: usize = 64;
/// Length of one offset index entry.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Length of one time index entry.
pub const TIME_ENTRY_LEN: usize = 16;

const FLAGS_AT: usize = 12;
const FIRST_SEQ_AT: usize = 16;
const COUNT_AT: usize = 24;
const ENTRIES_CRC_AT: usize = 32;
const RESERVED_AT: usize = 36;
const CRC_AT: usize = INDEX_HEADER_LEN - 4;

const _: () = assert!(RESERVED_AT + 24 == CRC_AT);

/// One offset index entry: record `first_seq + rel_seq` starts at `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Seq relative to the segment's first seq.
    pub rel_seq: u32,
    /// Byte offset of the record in the segment file.
    pub pos: u32,
}

/// One time index entry: record `first_seq + rel_seq`, at `pos`, was
/// created at `created_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// The record's `created_at`.
    pub created_at: u64,
    /// Seq relative to the segment's first seq.
    pub rel_seq: u32,
    /// Byte offset of the record in the segment file.
    pub pos: u32,
}

impl OffsetEntry {
    /// Encodes the entry.
    pub fn encode(&self) -> [u8; OFFSET_ENTRY_LEN] {
        let mut b = [0u8; OFFSET_ENTRY_LEN];
        put_u32(&mut b, 0, self.rel_seq);
        put_u32(&mut b, 4, self.pos);
        b
    }

    /// Decodes an entry from exactly [`OFFSET_ENTRY_LEN`] bytes.
    pub fn decode(b: &[u8]) -> OffsetEntry {
        OffsetEntry {
            rel_seq: get_u32(b, 0),
            pos: get_u32(b, 4),
        }
    }
}

impl TimeEntry {
    /// Encodes the entry.
    pub fn encode(&self) -> [u8; TIME_ENTRY_LEN] {
        let mut b = [0u8; TIME_ENTRY_LEN];
        put_u64(&mut b, 0, self.created_at);
        put_u32(&mut b, 8, self.rel_seq);
        put_u32(&mut b, 12, self.pos);
        b
    }

    /// Decodes an entry from exactly [`TIME_ENTRY_LEN`] bytes.
    pub fn decode(b: &[u8]) -> TimeEntry {
        TimeEntry {
            created_at: get_u64(b, 0),
            rel_seq: get_u32(b, 8),
            pos: get_u32(b, 12),
        }
    }
}

/// Which index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// The sparse offset index (`.idx`).
    Offset,
    /// The time index (`.tix`).
    Time,
}

impl IndexKind {
    /// The structure name used in errors.
    pub fn structure(self) -> Structure {
        match self {
            IndexKind::Offset => Structure::OffsetIndex,
            IndexKind::Time => Structure::TimeIndex,
        }
    }

    fn magic(self) -> &'static [u8; 8] {
        match self {
            IndexKind::Offset => &OFFSET_INDEX_MAGIC,
            IndexKind::Time => &TIME_INDEX_MAGIC,
        }
    }

    /// Bytes per entry.
    pub fn entry_len(self) -> usize {
        match self {
            IndexKind::Offset => OFFSET_ENTRY_LEN,
            IndexKind::Time => TIME_ENTRY_LEN,
        }
    }
}

/// The decoded header of an index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexHeader {
    /// Which index.
    pub kind: IndexKind,
    /// The segment's first seq.
    pub first_seq: u64,
    /// Number of entries that follow the header.
    pub entry_count: u64,
}

/// Encodes a whole index file: header plus the already-encoded entries.
pub fn encode_file(kind: IndexKind, first_seq: u64, entries: &[u8]) -> Vec<u8> {
    assert!(
        entries.len().is_multiple_of(kind.entry_len()),
        "index entries must be whole"
    );
    let mut out = vec![0u8; INDEX_HEADER_LEN];
    out[..8].copy_from_slice(kind.magic());
    put_u16(&mut out, 8, FORMAT_VERSION);
    put_u16(&mut out, 10, kind.entry_len() as u16);
    put_u64(&mut out, FIRST_SEQ_AT, first_seq);
    put_u64(
        &mut out,
        COUNT_AT,
        (entries.len() / kind.entry_len()) as u64,
    );
    put_u32(&mut out, ENTRIES_CRC_AT, super::crc32(entries));
    let crc = super::crc32(&out[..CRC_AT]);
    put_u32(&mut out, CRC_AT, crc);
    out.extend_from_slice(entries);
    out
}

/// Validates a whole index file's framing: header, size and entry checksum.
/// Whether the entries point at the right records is checked against the
/// segment by the caller.
pub fn decode_file(kind: IndexKind, b: &[u8]) -> Result<IndexHeader, CorruptionKind> {
    let what = kind.structure();
    check_fixed(what, b, kind.magic(), CRC_AT)?;
    let entry_len = get_u16(b, 10) as usize;
    if entry_len != kind.entry_len() {
        return Err(bad_field(what, "entry_len", kind.entry_len(), entry_len));
    }
    let flags = get_u32(b, FLAGS_AT);
    if flags != 0 {
        return Err(bad_field(what, "flags", 0, flags));
    }
    check_reserved(what, "reserved", &b[RESERVED_AT..CRC_AT])?;
    let count = get_u64(b, COUNT_AT);
    let body = (b.len() - INDEX_HEADER_LEN) as u64;
    if count.checked_mul(entry_len as u64) != Some(body) {
        return Err(bad_field(
            what,
            "entry_count",
            body / entry_len as u64,
            count,
        ));
    }
    let stored = get_u32(b, ENTRIES_CRC_AT);
    let computed = super::crc32(&b[INDEX_HEADER_LEN..]);
    if stored != computed {
        return Err(CorruptionKind::ChecksumMismatch {
            what,
            expected: stored,
            found: computed,
        });
    }
    Ok(IndexHeader {
        kind,
        first_seq: get_u64(b, FIRST_SEQ_AT),
        entry_count: count,
    })
}
